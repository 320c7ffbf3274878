//! The writer as a service for async code: a dedicated thread owns the [`Ledger`] (and so the
//! writer lock) for as long as any [`Writer`] handle lives, and performs every read and write
//! the async side asks for, so that SQLite never runs on a runtime worker.
//!
//! Outcomes are group-committed: whatever [`Writer::record`] calls are queued when the thread
//! gets to them go into one transaction (one fsync for many batches), and each caller is
//! answered only after that commit. A batch counts as done only once `record` returns Ok.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::{AccountSummary, Ledger, LedgerError, Record, Refreshed, Snapshot};

/// The ledger could not record an outcome; the run must stop.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot record outcomes in the ledger: {0}")]
pub struct RecordError(String);

impl RecordError {
    pub fn new(message: impl Into<String>) -> RecordError {
        RecordError(message.into())
    }
}

type Reply<T> = oneshot::Sender<Result<T, LedgerError>>;

enum Job {
    Snapshot(Reply<Snapshot>),
    Accounts(Reply<Vec<AccountSummary>>),
    BeginRun {
        command: String,
        revision: Option<String>,
        reply: Reply<i64>,
    },
    Record {
        run: i64,
        records: Vec<Record>,
        reply: oneshot::Sender<Result<(), RecordError>>,
    },
    FinishRun {
        run: i64,
        result: String,
        summary: serde_json::Value,
        reply: Reply<()>,
    },
    /// Forget what an earlier refresh of the account staged.
    RefreshStart(String),
    /// Stage one page; not answered (a failure surfaces at `RefreshFinish`).
    Observe(String, Vec<String>),
    RefreshFinish {
        run: i64,
        account: String,
        subscriber_num: Option<u64>,
        max_subscribers: Option<u64>,
        reply: Reply<Refreshed>,
    },
}

/// Most `record` calls folded into one transaction.
const GROUP: usize = 256;

/// A handle on the writer thread; clones share it. The thread, the open database and the
/// writer lock go away with the last handle.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    path: PathBuf,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("path", &self.path).finish()
    }
}

fn stopped(path: &Path) -> LedgerError {
    LedgerError::Io {
        path: path.to_owned(),
        source: std::io::Error::other("the ledger writer thread stopped"),
    }
}

impl Writer {
    /// Takes the writer lock (refused at once if held) and opens the ledger, on the writer's
    /// own thread.
    pub async fn open(state_dir: &Path, command: &str) -> Result<Writer, LedgerError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (opened, ready) = oneshot::channel();
        let (dir, command) = (state_dir.to_owned(), command.to_owned());
        std::thread::Builder::new()
            .name("subsync-ledger".into())
            .spawn(move || match Ledger::open(&dir, &command) {
                Ok(ledger) => {
                    let _ = opened.send(Ok(()));
                    serve(ledger, rx);
                }
                Err(e) => {
                    let _ = opened.send(Err(e));
                }
            })
            .map_err(|source| LedgerError::Io {
                path: state_dir.to_owned(),
                source,
            })?;
        let path = super::db_path(state_dir);
        ready.await.map_err(|_| stopped(&path))??;
        Ok(Writer { tx, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(job(reply)).map_err(|_| stopped(&self.path))?;
        answer.await.map_err(|_| stopped(&self.path))?
    }

    pub async fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        self.ask(Job::Snapshot).await
    }

    /// Counts per account, as `status` shows them.
    pub async fn accounts(&self) -> Result<Vec<AccountSummary>, LedgerError> {
        self.ask(Job::Accounts).await
    }

    /// Opens an audit-log entry; returns its id.
    pub async fn begin_run(
        &self,
        command: &str,
        revision: Option<&str>,
    ) -> Result<i64, LedgerError> {
        let (command, revision) = (command.to_owned(), revision.map(str::to_owned));
        self.ask(|reply| Job::BeginRun {
            command,
            revision,
            reply,
        })
        .await
    }

    /// Closes an audit-log entry with its result and summary.
    pub async fn finish_run(
        &self,
        run: i64,
        result: &str,
        summary: serde_json::Value,
    ) -> Result<(), LedgerError> {
        let result = result.to_owned();
        self.ask(|reply| Job::FinishRun {
            run,
            result,
            summary,
            reply,
        })
        .await
    }

    /// Returns once `records` of `run` are committed.
    pub async fn record(&self, run: i64, records: Vec<Record>) -> Result<(), RecordError> {
        let (reply, done) = oneshot::channel();
        let gone = || RecordError::new("the ledger writer stopped");
        self.tx
            .send(Job::Record {
                run,
                records,
                reply,
            })
            .map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }

    /// Starts (or restarts) staging `account`'s live list.
    pub fn refresh_start(&self, account: &str) {
        let _ = self.tx.send(Job::RefreshStart(account.to_owned()));
    }

    /// Stages one page of `account`'s live list. Queued without waiting: the network is far
    /// slower than the writer, and [`Writer::refresh_finish`] reports a failure.
    pub fn observe(&self, account: &str, page: Vec<String>) {
        let _ = self.tx.send(Job::Observe(account.to_owned(), page));
    }

    /// Makes the ledger match the staged list of `account`, in one transaction.
    pub async fn refresh_finish(
        &self,
        run: i64,
        account: &str,
        subscriber_num: Option<u64>,
        max_subscribers: Option<u64>,
    ) -> Result<Refreshed, LedgerError> {
        let account = account.to_owned();
        self.ask(|reply| Job::RefreshFinish {
            run,
            account,
            subscriber_num,
            max_subscribers,
            reply,
        })
        .await
    }

    /// The view of the writer one run records through.
    pub fn recorder(&self, run: i64) -> Recorder {
        Recorder {
            writer: self.clone(),
            run,
        }
    }
}

/// Records the outcomes of one run.
#[derive(Debug, Clone)]
pub struct Recorder {
    writer: Writer,
    run: i64,
}

impl Recorder {
    pub fn run(&self) -> i64 {
        self.run
    }

    /// Returns once `records` are committed.
    pub async fn record(&self, records: Vec<Record>) -> Result<(), RecordError> {
        self.writer.record(self.run, records).await
    }
}

/// The writer thread: one job at a time, consecutive `Record`s of a run in one transaction.
fn serve(mut ledger: Ledger, rx: mpsc::Receiver<Job>) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    // Accounts whose staging failed since their refresh started, with the reason.
    let mut spoilt: std::collections::HashMap<String, String> = Default::default();
    loop {
        let job = match queue.pop_front() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Snapshot(reply) => {
                let _ = reply.send(ledger.snapshot());
            }
            Job::Accounts(reply) => {
                let _ = reply.send(ledger.accounts());
            }
            Job::BeginRun {
                command,
                revision,
                reply,
            } => {
                let _ = reply.send(ledger.begin_run(&command, revision.as_deref()));
            }
            Job::FinishRun {
                run,
                result,
                summary,
                reply,
            } => {
                let _ = reply.send(ledger.finish_run(run, &result, &summary));
            }
            Job::RefreshStart(account) => {
                spoilt.remove(&account);
                if let Err(e) = ledger.refresh_start(&account) {
                    spoilt.insert(account, e.to_string());
                }
            }
            Job::Observe(account, page) => {
                if !spoilt.contains_key(&account)
                    && let Err(e) = ledger.observe(&account, &page)
                {
                    spoilt.insert(account, e.to_string());
                }
            }
            Job::RefreshFinish {
                run,
                account,
                subscriber_num,
                max_subscribers,
                reply,
            } => {
                let result = match spoilt.remove(&account) {
                    Some(why) => {
                        let _ = ledger.refresh_start(&account);
                        Err(LedgerError::Io {
                            path: ledger.path().to_owned(),
                            source: std::io::Error::other(format!(
                                "cannot stage the live list: {why}"
                            )),
                        })
                    }
                    None => ledger.refresh_finish(run, &account, subscriber_num, max_subscribers),
                };
                let _ = reply.send(result);
            }
            Job::Record {
                run,
                records,
                reply,
            } => {
                let mut group = vec![(records, reply)];
                while group.len() < GROUP {
                    match rx.try_recv() {
                        Ok(Job::Record {
                            run: r,
                            records,
                            reply,
                        }) if r == run => group.push((records, reply)),
                        Ok(other) => {
                            queue.push_back(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let records: Vec<Record> = group
                    .iter_mut()
                    .flat_map(|(r, _)| std::mem::take(r))
                    .collect();
                let result = ledger
                    .record(run, &records)
                    .map_err(|e| RecordError::new(e.to_string()));
                for (_, reply) in group {
                    let _ = reply.send(result.clone());
                }
            }
        }
    }
}

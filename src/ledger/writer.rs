//! The writer as a service for async code: a dedicated thread owns the [`Ledger`] (and so the
//! writer lock) for as long as any [`Writer`] handle lives, and performs every read and write
//! the async side asks for, so that neither SQLite nor the PostgreSQL driver ever runs on a
//! runtime worker.
//!
//! Outcomes are group-committed: whatever [`Writer::record`] calls are queued when the thread
//! gets to them go into one transaction (one fsync for many batches), and each caller is
//! answered only after that commit. A batch counts as done only once `record` returns Ok.
//!
//! Every few seconds the thread also checks that the lock is still held (a PostgreSQL session
//! can end under it). Once it is lost, [`Writer::lost`] fires and every later write is refused
//! without reaching the database: a replica that lost the lead writes nothing further.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{AccountSummary, Ledger, LedgerError, Location, Record, Refreshed, Snapshot};

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

/// How often the thread confirms that the writer lock is still held.
const CHECK_LOCK: Duration = Duration::from_secs(5);

/// A handle on the writer thread; clones share it. The thread, the open database and the
/// writer lock go away with the last handle.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    location: Arc<str>,
    lost: Lost,
}

/// Whether, and why, the writer lock was lost.
#[derive(Clone, Default)]
struct Lost {
    token: CancellationToken,
    why: Arc<Mutex<Option<String>>>,
}

impl Lost {
    fn set(&self, why: &str) {
        let mut slot = self.why.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(why.to_owned());
            tracing::error!(
                reason = why,
                "lost the ledger's writer lock; writing nothing further"
            );
        }
        self.token.cancel();
    }

    fn why(&self) -> Option<String> {
        self.why.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("location", &self.location)
            .finish()
    }
}

fn stopped(at: &str) -> LedgerError {
    LedgerError::Io {
        at: at.to_owned(),
        source: std::io::Error::other("the ledger writer thread stopped"),
    }
}

impl Writer {
    /// Takes the writer lock (refused at once, naming the holder, if held) and opens the
    /// ledger, on the writer's own thread.
    pub async fn open(location: impl Into<Location>, command: &str) -> Result<Writer, LedgerError> {
        let location = location.into();
        let shown: Arc<str> = location.to_string().into();
        let (tx, rx) = mpsc::channel::<Job>();
        let (opened, ready) = oneshot::channel();
        let command = command.to_owned();
        let lost = Lost::default();
        let thread_lost = lost.clone();
        std::thread::Builder::new()
            .name("subsync-ledger".into())
            .spawn(move || match Ledger::open(location, &command) {
                Ok(ledger) => {
                    let _ = opened.send(Ok(()));
                    serve(ledger, rx, thread_lost);
                }
                Err(e) => {
                    let _ = opened.send(Err(e));
                }
            })
            .map_err(|source| LedgerError::Io {
                at: shown.to_string(),
                source,
            })?;
        ready.await.map_err(|_| stopped(&shown))??;
        Ok(Writer {
            tx,
            location: shown,
            lost,
        })
    }

    /// Where the ledger is, as it is safe to show.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Cancelled once the writer lock is lost; from then on every write fails.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost.token
    }

    /// Why the lock was lost, once it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.why()
    }

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(job(reply))
            .map_err(|_| stopped(&self.location))?;
        answer.await.map_err(|_| stopped(&self.location))?
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
fn serve(ledger: Ledger, rx: mpsc::Receiver<Job>, lost: Lost) {
    let mut ledger = Guarded {
        ledger,
        lost,
        checked: Instant::now(),
    };
    let mut queue: VecDeque<Job> = VecDeque::new();
    // Accounts whose staging failed since their refresh started, with the reason.
    let mut spoilt: std::collections::HashMap<String, String> = Default::default();
    loop {
        if ledger.checked.elapsed() >= CHECK_LOCK {
            ledger.check();
        }
        let job = match queue.pop_front() {
            Some(job) => job,
            None => match rx.recv_timeout(CHECK_LOCK) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
        };
        match job {
            Job::Snapshot(reply) => {
                let _ = reply.send(ledger.call(|l| l.snapshot()));
            }
            Job::Accounts(reply) => {
                let _ = reply.send(ledger.call(|l| l.summaries().map(|(_, rows)| rows)));
            }
            Job::BeginRun {
                command,
                revision,
                reply,
            } => {
                let _ = reply.send(ledger.call(|l| l.begin_run(&command, revision.as_deref())));
            }
            Job::FinishRun {
                run,
                result,
                summary,
                reply,
            } => {
                let _ = reply.send(ledger.call(|l| l.finish_run(run, &result, &summary)));
            }
            Job::RefreshStart(account) => {
                spoilt.remove(&account);
                if let Err(e) = ledger.call(|l| l.refresh_start(&account)) {
                    spoilt.insert(account, e.to_string());
                }
            }
            Job::Observe(account, page) => {
                if !spoilt.contains_key(&account)
                    && let Err(e) = ledger.call(|l| l.observe(&account, &page))
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
                        let _ = ledger.call(|l| l.refresh_start(&account));
                        Err(LedgerError::Io {
                            at: ledger.ledger.location().to_owned(),
                            source: std::io::Error::other(format!(
                                "cannot stage the live list: {why}"
                            )),
                        })
                    }
                    None => ledger
                        .call(|l| l.refresh_finish(run, &account, subscriber_num, max_subscribers)),
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
                    .call(|l| l.record(run, &records))
                    .map_err(|e| RecordError::new(e.to_string()));
                for (_, reply) in group {
                    let _ = reply.send(result.clone());
                }
            }
        }
    }
}

/// The ledger as the thread uses it: once the lock is lost, nothing reaches the database.
struct Guarded {
    ledger: Ledger,
    lost: Lost,
    checked: Instant,
}

impl Guarded {
    fn check(&mut self) {
        self.checked = Instant::now();
        if self.lost.token.is_cancelled() {
            return;
        }
        let result = self.ledger.check_lock();
        match self.watch(result) {
            Ok(()) | Err(LedgerError::LockLost { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "cannot confirm that the writer lock is held"),
        }
    }

    /// Notes a lost lock in any answer.
    fn watch<T>(&self, result: Result<T, LedgerError>) -> Result<T, LedgerError> {
        if let Err(LedgerError::LockLost { detail, .. }) = &result {
            self.lost.set(detail);
        }
        result
    }

    fn guard(&self) -> Result<(), LedgerError> {
        match self.lost.why() {
            Some(detail) => Err(LedgerError::LockLost {
                at: self.ledger.location().to_owned(),
                detail,
            }),
            None => Ok(()),
        }
    }

    /// Runs `f` unless the lock is already lost, and notes a loss it reports.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut dyn super::Store) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        self.guard()?;
        let result = f(&mut *self.ledger);
        self.watch(result)
    }
}

//! The writer as a service for async code: a dedicated thread owns the [`Ledger`] (and so the
//! writer lock) and performs every read and write the async side asks for, so that neither
//! SQLite nor the PostgreSQL driver ever runs on a runtime worker.
//!
//! Outcomes are group-committed: whatever [`Writer::record`] calls are queued when the thread
//! gets to them go into one transaction (one fsync for many batches), and each caller is
//! answered only after that commit. A batch counts as done only once `record` returns Ok.
//! The queue is bounded: a caller waits for room instead of memory growing with a slow disk.
//!
//! Every few seconds the thread also checks that the lock is still held (a PostgreSQL session
//! can end under it). Once it is lost, [`Writer::lost`] fires and every later write is refused
//! without reaching the database: a replica that lost the lead writes nothing further.
//!
//! [`Writer::close`] finishes what is queued, releases the lock and joins the thread; handles
//! still held elsewhere fail from then on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{AccountSource, AccountSummary, Ledger, LedgerError, Location, Record, Refreshed};

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
    /// A read of its own (it answers itself).
    Read(Box<dyn FnOnce(&mut Guarded) + Send>),
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
        max_subscribers: Option<u64>,
        adopt: bool,
        reply: Reply<Refreshed>,
    },
    /// Finish what is queued before this, then stop.
    Close,
}

/// Most `record` calls folded into one transaction.
const GROUP: usize = 256;

/// Most jobs waiting for the thread: a page of a live list is the largest (about 8 KB).
const QUEUE: usize = 1024;

/// How often the thread confirms that the writer lock is still held.
const CHECK_LOCK: Duration = Duration::from_secs(5);

/// A handle on the writer; clones share it.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

struct Inner {
    route: Route,
    location: String,
    lost: Lost,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

enum Route {
    Thread(mpsc::Sender<Job>),
    /// Jobs run at once in the caller's task (tests: deterministic under paused time).
    #[cfg(any(test, feature = "testing"))]
    Inline(Mutex<Service>),
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
            .field("location", &self.inner.location)
            .finish()
    }
}

impl Writer {
    /// Takes the writer lock (refused at once, naming the holder, if held) and opens the
    /// ledger, on the writer's own thread.
    pub async fn open(location: impl Into<Location>, command: &str) -> Result<Writer, LedgerError> {
        let location = location.into();
        let shown = location.to_string();
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let (opened, ready) = oneshot::channel();
        let command = command.to_owned();
        let lost = Lost::default();
        let thread_lost = lost.clone();
        let thread = std::thread::Builder::new()
            .name("subsync-ledger".into())
            .spawn(move || match Ledger::open(location, &command) {
                Ok(ledger) => {
                    let _ = opened.send(Ok(()));
                    serve(Service::new(ledger, thread_lost), rx);
                }
                Err(e) => {
                    let _ = opened.send(Err(e));
                }
            })
            .map_err(|e| LedgerError::Io {
                at: shown.clone(),
                detail: format!("cannot start the ledger's thread: {e}"),
            })?;
        let stopped = || LedgerError::WriterStopped { at: shown.clone() };
        ready.await.map_err(|_| stopped())??;
        Ok(Writer {
            inner: Arc::new(Inner {
                route: Route::Thread(tx),
                location: shown,
                lost,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// The writer running every job at once on the caller's thread: for tests, which stay
    /// deterministic under paused time.
    #[cfg(any(test, feature = "testing"))]
    pub fn inline(location: impl Into<Location>, command: &str) -> Result<Writer, LedgerError> {
        let ledger = Ledger::open(location, command)?;
        let lost = Lost::default();
        Ok(Writer {
            inner: Arc::new(Inner {
                location: ledger.location().to_owned(),
                route: Route::Inline(Mutex::new(Service::new(ledger, lost.clone()))),
                lost,
                thread: Mutex::new(None),
            }),
        })
    }

    /// Where the ledger is, as it is safe to show.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// Cancelled once the writer lock is lost; from then on every write fails.
    pub fn lost(&self) -> &CancellationToken {
        &self.inner.lost.token
    }

    /// Why the lock was lost, once it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.inner.lost.why()
    }

    fn stopped(&self) -> LedgerError {
        LedgerError::WriterStopped {
            at: self.inner.location.clone(),
        }
    }

    async fn send(&self, job: Job) -> Result<(), LedgerError> {
        match &self.inner.route {
            Route::Thread(tx) => tx.send(job).await.map_err(|_| self.stopped()),
            #[cfg(any(test, feature = "testing"))]
            Route::Inline(service) => {
                service.lock().unwrap_or_else(|e| e.into_inner()).handle(
                    job,
                    &mut VecDeque::new(),
                    None,
                );
                Ok(())
            }
        }
    }

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.send(job(reply)).await?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// The whole ledger in memory, as the writer sees it: for tests only, since nothing in
    /// the tool may hold every account's subscribers at once.
    #[cfg(any(test, feature = "testing"))]
    pub async fn snapshot(&self) -> Result<super::Snapshot, LedgerError> {
        self.ask(|reply| {
            Job::Read(Box::new(move |ledger: &mut Guarded| {
                let _ = reply.send(ledger.call(|l| l.snapshot()));
            }))
        })
        .await
    }

    /// Runs `f` on the writer's thread over one read transaction: planning reads the ledger
    /// an account at a time this way, never the whole of it.
    pub async fn view<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn AccountSource) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        self.ask(|reply| {
            Job::Read(Box::new(move |ledger: &mut Guarded| {
                let _ = reply.send(ledger.call(|l| l.view(f)));
            }))
        })
        .await
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
        let gone = || RecordError::new(self.stopped().to_string());
        self.send(Job::Record {
            run,
            records,
            reply,
        })
        .await
        .map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }

    /// Starts (or restarts) staging `account`'s live list.
    pub async fn refresh_start(&self, account: &str) {
        let _ = self.send(Job::RefreshStart(account.to_owned())).await;
    }

    /// Stages one page of `account`'s live list. Waits for room in the queue, not for the
    /// write: [`Writer::refresh_finish`] reports a failure.
    pub async fn observe(&self, account: &str, page: Vec<String>) {
        let _ = self.send(Job::Observe(account.to_owned(), page)).await;
    }

    /// Makes the ledger match the staged list of `account`, in one transaction.
    pub async fn refresh_finish(
        &self,
        run: i64,
        account: &str,
        max_subscribers: Option<u64>,
        adopt: bool,
    ) -> Result<Refreshed, LedgerError> {
        let account = account.to_owned();
        self.ask(|reply| Job::RefreshFinish {
            run,
            account,
            max_subscribers,
            adopt,
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

    /// Finishes the jobs queued so far, releases the writer lock and waits for the thread to
    /// end. Other handles of this writer fail from now on.
    pub async fn close(self) {
        match &self.inner.route {
            Route::Thread(tx) => {
                let _ = tx.send(Job::Close).await;
            }
            #[cfg(any(test, feature = "testing"))]
            Route::Inline(_) => {}
        }
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
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
    /// Returns once `records` are committed.
    pub async fn record(&self, records: Vec<Record>) -> Result<(), RecordError> {
        self.writer.record(self.run, records).await
    }
}

/// The writer thread: one job at a time, consecutive `Record`s of a run in one transaction.
fn serve(mut service: Service, mut rx: mpsc::Receiver<Job>) {
    // A runtime of this thread's own, only to wait for jobs with a timeout: the lock is
    // checked between jobs, and every few seconds when there are none.
    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build();
    let mut queue: VecDeque<Job> = VecDeque::new();
    loop {
        if service.ledger.checked.elapsed() >= CHECK_LOCK {
            service.ledger.check();
        }
        let job = match queue.pop_front() {
            Some(job) => job,
            None => match &waiter {
                Ok(rt) => {
                    match rt.block_on(async { tokio::time::timeout(CHECK_LOCK, rx.recv()).await }) {
                        Ok(Some(job)) => job,
                        Ok(None) => return,
                        Err(_) => continue,
                    }
                }
                Err(_) => match rx.blocking_recv() {
                    Some(job) => job,
                    None => return,
                },
            },
        };
        if matches!(job, Job::Close) {
            return;
        }
        service.handle(job, &mut queue, Some(&mut rx));
    }
}

/// What the writer does with each job.
struct Service {
    ledger: Guarded,
    /// Accounts whose staging failed since their refresh started, with the reason.
    spoilt: HashMap<String, String>,
}

impl Service {
    fn new(ledger: Ledger, lost: Lost) -> Service {
        Service {
            ledger: Guarded {
                ledger,
                lost,
                checked: Instant::now(),
            },
            spoilt: HashMap::new(),
        }
    }

    /// Does `job`. A `Record` takes the `Record`s of the same run queued behind it in `rx`
    /// along into its transaction; other jobs met on the way wait in `later`.
    fn handle(
        &mut self,
        job: Job,
        later: &mut VecDeque<Job>,
        rx: Option<&mut mpsc::Receiver<Job>>,
    ) {
        let ledger = &mut self.ledger;
        match job {
            Job::Read(read) => read(ledger),
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
                self.spoilt.remove(&account);
                if let Err(e) = ledger.call(|l| l.refresh_start(&account)) {
                    self.spoilt.insert(account, e.to_string());
                }
            }
            Job::Observe(account, page) => {
                if !self.spoilt.contains_key(&account)
                    && let Err(e) = ledger.call(|l| l.observe(&account, &page))
                {
                    self.spoilt.insert(account, e.to_string());
                }
            }
            Job::RefreshFinish {
                run,
                account,
                max_subscribers,
                adopt,
                reply,
            } => {
                let result = match self.spoilt.remove(&account) {
                    Some(detail) => {
                        let _ = ledger.call(|l| l.refresh_start(&account));
                        Err(LedgerError::Staging {
                            at: ledger.ledger.location().to_owned(),
                            account,
                            detail,
                        })
                    }
                    None => {
                        ledger.call(|l| l.refresh_finish(run, &account, max_subscribers, adopt))
                    }
                };
                let _ = reply.send(result);
            }
            Job::Record {
                run,
                records,
                reply,
            } => {
                let mut group = vec![(records, reply)];
                if let Some(rx) = rx {
                    while group.len() < GROUP {
                        match rx.try_recv() {
                            Ok(Job::Record {
                                run: r,
                                records,
                                reply,
                            }) if r == run => group.push((records, reply)),
                            Ok(other) => {
                                later.push_back(other);
                                break;
                            }
                            Err(_) => break,
                        }
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
            Job::Close => {}
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
        f: impl FnOnce(&mut Ledger) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        self.guard()?;
        let result = f(&mut self.ledger);
        self.watch(result)
    }
}

//! The writer as a service for async code: one task owns the open ledger (and so the writer
//! lock) and performs every read and write the rest of the process asks for, in order.
//!
//! Outcomes are group-committed: whatever [`Writer::record`] calls of one run are queued when
//! the task gets to them go into one transaction (one fsync for many batches), and each caller
//! is answered only after that commit. A batch counts as done only once `record` returns Ok.
//! The queue is bounded: a caller waits for room instead of memory growing with a slow disk.
//!
//! Every few seconds the task also checks that the lock is still held (a PostgreSQL session
//! can end under it). Once it is lost, [`Writer::lost`] fires and every later write is refused
//! without reaching the database: a replica that lost the lead writes nothing further.
//!
//! Once a run has finished (not one stopped by a signal), and after answering it, the task
//! settles what it wrote ([`WriterStore::settle`]: a vacuum on PostgreSQL after a bulk write)
//! before its next job, so that the next reader does not pay for it.
//!
//! [`Writer::close`] finishes what is queued, releases the lock and waits for the task; the
//! lock is also released once the last handle is dropped. Handles still held after `close`
//! fail from then on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::access::ended;
use super::changes::Ids;
use super::store::WriterStore;
use super::view::Planner;
use super::{
    AccountOverview, AccountSource, Cause, LedgerError, Location, LockLoss, Record, Refreshed,
    RunOutcome, read, write,
};

/// The ledger could not record what a run did; the run must stop.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    #[error("cannot record outcomes in the ledger")]
    Ledger(#[source] LedgerError),
    #[error("cannot read the run's work from the ledger")]
    Read(#[source] LedgerError),
    #[error("a task recording the run failed")]
    Task(#[source] Cause),
}

type Reply<T> = oneshot::Sender<Result<T, LedgerError>>;

enum Order {
    View(Planner, Reply<()>),
    #[cfg(test)]
    Snapshot(Reply<super::Snapshot>),
    Accounts(Reply<Vec<AccountOverview>>),
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
        result: RunOutcome,
        summary: String,
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

/// Most jobs waiting for the task: a page of a live list is the largest (about 8 KB).
const QUEUE: usize = 1024;

/// How often the task confirms that the writer lock is still held.
const CHECK_LOCK: Duration = Duration::from_secs(5);

/// A handle on the writer; clones share it.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: mpsc::Sender<Order>,
    location: String,
    lost: Lost,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Whether, and why, the writer lock was lost.
#[derive(Clone, Default)]
struct Lost {
    token: CancellationToken,
    why: Arc<Mutex<Option<LockLoss>>>,
}

impl Lost {
    fn set(&self, why: &LockLoss) {
        let mut slot = self.why.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(why.clone());
            tracing::error!(
                reason = %crate::errors::chain(why),
                "lost the ledger's writer lock; writing nothing further"
            );
        }
        self.token.cancel();
    }

    fn why(&self) -> Option<LockLoss> {
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
    /// Takes the writer lock (refused at once, naming the holder, if held), opens the ledger
    /// (creating or upgrading it) and starts the writer's task.
    pub async fn open(location: impl Into<Location>, command: &str) -> Result<Writer, LedgerError> {
        let location = location.into();
        let store = location.target().open_write(command).await?;
        Ok(Writer::start(store))
    }

    /// Like [`Writer::open`], but waits while another process holds the lock, taking it the
    /// moment the holder lets go, where the backend can wait (PostgreSQL); elsewhere refused
    /// at once, as `open` is. `None` once `stop` is cancelled (the wait withdrawn).
    pub async fn wait(
        location: &Location,
        command: &str,
        stop: &CancellationToken,
    ) -> Result<Option<Writer>, LedgerError> {
        let store = location.target().wait_write(command, stop).await?;
        Ok(store.map(Writer::start))
    }

    /// Whether [`Writer::wait`] waits for the lock at `location`.
    pub fn can_wait(location: &Location) -> bool {
        location.target().waits_for_lock()
    }

    fn start(store: Box<dyn WriterStore>) -> Writer {
        let shown = store.location().to_owned();
        let (jobs, rx) = mpsc::channel::<Order>(QUEUE);
        let lost = Lost::default();
        let service = OpenLedger {
            store,
            lost: lost.clone(),
            checked: Instant::now(),
            ids: Ids::default(),
            spoilt: HashMap::new(),
        };
        let task = tokio::spawn(serve(service, rx));
        Writer {
            inner: Arc::new(Inner {
                jobs,
                location: shown,
                lost,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// Where the ledger is, as it is safe to show.
    pub(crate) fn location(&self) -> &str {
        &self.inner.location
    }

    /// Cancelled once the writer lock is lost; from then on every write fails.
    pub(crate) fn lost(&self) -> &CancellationToken {
        &self.inner.lost.token
    }

    /// Why the lock was lost, once it was.
    pub(crate) fn lost_reason(&self) -> Option<LockLoss> {
        self.inner.lost.why()
    }

    fn stopped(&self) -> LedgerError {
        LedgerError::WriterStopped {
            at: self.inner.location.clone(),
        }
    }

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Order) -> Result<T, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .jobs
            .send(job(reply))
            .await
            .map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// The whole ledger in memory, as the writer sees it: for tests only, since nothing in
    /// the tool may hold every account's subscribers at once.
    #[cfg(test)]
    pub(crate) async fn snapshot(&self) -> Result<super::Snapshot, LedgerError> {
        self.ask(Order::Snapshot).await
    }

    /// Runs `f` on the blocking pool over one read transaction of the writer's: planning
    /// reads the ledger an account at a time this way, never the whole of it.
    pub(crate) async fn view<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn AccountSource) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let (planner, out) = super::view::planner(f);
        self.ask(|reply| Order::View(planner, reply)).await?;
        out.await.map_err(|_| self.stopped())
    }

    /// Counts per account, as `status` shows them.
    pub(crate) async fn accounts(&self) -> Result<Vec<AccountOverview>, LedgerError> {
        self.ask(Order::Accounts).await
    }

    /// Opens an audit-log entry; returns its id.
    pub(crate) async fn begin_run(
        &self,
        command: &str,
        revision: Option<&str>,
    ) -> Result<i64, LedgerError> {
        let (command, revision) = (command.to_owned(), revision.map(str::to_owned));
        self.ask(|reply| Order::BeginRun {
            command,
            revision,
            reply,
        })
        .await
    }

    /// Closes an audit-log entry with its outcome and summary (stored as JSON; see
    /// [`super::Reader::runs`] for reading it back).
    pub(crate) async fn finish_run(
        &self,
        run: i64,
        result: RunOutcome,
        summary: &impl Serialize,
    ) -> Result<(), LedgerError> {
        let summary = serde_json::to_string(summary).map_err(|e| LedgerError::Summary {
            at: self.inner.location.clone(),
            run,
            cause: Cause::new(e),
        })?;
        self.ask(|reply| Order::FinishRun {
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
        let gone = || RecordError::Ledger(self.stopped());
        self.inner
            .jobs
            .send(Order::Record {
                run,
                records,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }

    /// Starts (or restarts) staging `account`'s live list.
    pub(crate) async fn refresh_start(&self, account: &str) {
        let _ = self
            .inner
            .jobs
            .send(Order::RefreshStart(account.to_owned()))
            .await;
    }

    /// Stages one page of `account`'s live list. Waits for room in the queue, not for the
    /// write: [`Writer::refresh_finish`] reports a failure.
    pub(crate) async fn observe(&self, account: &str, page: Vec<String>) {
        let _ = self
            .inner
            .jobs
            .send(Order::Observe(account.to_owned(), page))
            .await;
    }

    /// Makes the ledger match the staged list of `account`, in one transaction.
    pub(crate) async fn refresh_finish(
        &self,
        run: i64,
        account: &str,
        max_subscribers: Option<u64>,
        adopt: bool,
    ) -> Result<Refreshed, LedgerError> {
        let account = account.to_owned();
        self.ask(|reply| Order::RefreshFinish {
            run,
            account,
            max_subscribers,
            adopt,
            reply,
        })
        .await
    }

    /// The view of the writer one run records through.
    pub(crate) fn recorder(&self, run: i64) -> Recorder {
        Recorder {
            writer: self.clone(),
            run,
        }
    }

    /// Finishes the jobs queued so far, releases the writer lock and waits for the task to
    /// end. Other handles of this writer fail from now on.
    pub async fn close(self) {
        let _ = self.inner.jobs.send(Order::Close).await;
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Records the outcomes of one run.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    writer: Writer,
    run: i64,
}

impl Recorder {
    /// Returns once `records` are committed.
    pub(crate) async fn record(&self, records: Vec<Record>) -> Result<(), RecordError> {
        self.writer.record(self.run, records).await
    }
}

/// Settles what the writer wrote ([`WriterStore::settle`]); a failure only costs the next
/// reader time, so it is logged.
pub(super) async fn settle(store: &mut dyn WriterStore) {
    if let Err(e) = store.settle().await {
        tracing::warn!(error = %crate::errors::chain(&e), "cannot settle what was written to the ledger; the next read may be slower");
    }
}

/// The writer's task: one job at a time, consecutive `Record`s of a run in one transaction,
/// the lock checked between jobs and every few seconds when there are none.
async fn serve(mut service: OpenLedger, mut rx: mpsc::Receiver<Order>) {
    let mut later: VecDeque<Order> = VecDeque::new();
    loop {
        if service.checked.elapsed() >= CHECK_LOCK {
            service.check().await;
        }
        let job = match later.pop_front() {
            Some(job) => job,
            None => match tokio::time::timeout(CHECK_LOCK, rx.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(_) => continue,
            },
        };
        if matches!(job, Order::Close) {
            break;
        }
        service.handle(job, &mut later, &mut rx).await;
    }
    service.store.close().await;
}

/// The open ledger as the task uses it: once the lock is lost, nothing reaches the database.
struct OpenLedger {
    store: Box<dyn WriterStore>,
    lost: Lost,
    checked: Instant,
    ids: Ids,
    /// Accounts whose staging failed since their refresh started, with the error.
    spoilt: HashMap<String, LedgerError>,
}

impl OpenLedger {
    async fn check(&mut self) {
        self.checked = Instant::now();
        if self.lost.token.is_cancelled() {
            return;
        }
        let result = self.store.check_lock().await;
        match self.watch(result) {
            Ok(()) | Err(LedgerError::LockLost { .. }) => {}
            Err(e) => tracing::warn!(
                error = %crate::errors::chain(&e),
                "cannot confirm that the writer lock is held"
            ),
        }
    }

    /// Notes a lost lock in any answer.
    fn watch<T>(&self, result: Result<T, LedgerError>) -> Result<T, LedgerError> {
        if let Err(LedgerError::LockLost { loss, .. }) = &result {
            self.lost.set(loss);
        }
        result
    }

    /// Refuses to go on once the lock is lost.
    fn guard(&self) -> Result<(), LedgerError> {
        match self.lost.why() {
            Some(loss) => Err(LedgerError::LockLost {
                at: self.store.location().to_owned(),
                loss,
            }),
            None => Ok(()),
        }
    }

    /// Does `job`. A `Record` takes the `Record`s of the same run queued behind it in `rx`
    /// along into its transaction; other jobs met on the way wait in `later`.
    async fn handle(
        &mut self,
        job: Order,
        later: &mut VecDeque<Order>,
        rx: &mut mpsc::Receiver<Order>,
    ) {
        match job {
            Order::View(planner, reply) => {
                let result = self.view(planner).await;
                let _ = reply.send(self.watch(result));
            }
            #[cfg(test)]
            Order::Snapshot(reply) => {
                let result = self.snapshot().await;
                let _ = reply.send(self.watch(result));
            }
            Order::Accounts(reply) => {
                let result = self.accounts().await;
                let _ = reply.send(self.watch(result));
            }
            Order::BeginRun {
                command,
                revision,
                reply,
            } => {
                let result = match self.guard() {
                    Ok(()) => {
                        write::begin_run(self.store.as_mut(), &mut self.ids, command, revision)
                            .await
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(self.watch(result));
            }
            Order::FinishRun {
                run,
                result,
                summary,
                reply,
            } => {
                let done = match self.guard() {
                    Ok(()) => {
                        let (store, ids) = (self.store.as_mut(), &mut self.ids);
                        write::finish_run(store, ids, run, result, summary).await
                    }
                    Err(e) => Err(e),
                };
                let done = self.watch(done);
                // Not after a stop signal: a replica standing by waits for this lock. The run
                // is told first: it has finished, what follows only serves the next reader.
                let settles = done.is_ok() && result != RunOutcome::Interrupted;
                let _ = reply.send(done);
                if settles {
                    settle(self.store.as_mut()).await;
                }
            }
            Order::RefreshStart(account) => {
                self.spoilt.remove(&account);
                let result = match self.guard() {
                    Ok(()) => self.store.unstage(account.clone()).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = self.watch(result) {
                    self.spoilt.insert(account, e);
                }
            }
            Order::Observe(account, page) => {
                if !self.spoilt.contains_key(&account) {
                    let result = match self.guard() {
                        Ok(()) => self.store.stage(account.clone(), page).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = self.watch(result) {
                        self.spoilt.insert(account, e);
                    }
                }
            }
            Order::RefreshFinish {
                run,
                account,
                max_subscribers,
                adopt,
                reply,
            } => {
                let result = self
                    .refresh_finish(run, account, max_subscribers, adopt)
                    .await;
                let _ = reply.send(self.watch(result));
            }
            Order::Record {
                run,
                records,
                reply,
            } => {
                let mut group = vec![(records, reply)];
                while group.len() < GROUP {
                    match rx.try_recv() {
                        Ok(Order::Record {
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
                let records: Vec<Record> = group
                    .iter_mut()
                    .flat_map(|(r, _)| std::mem::take(r))
                    .collect();
                let result = match self.guard() {
                    Ok(()) => write::record(self.store.as_mut(), &mut self.ids, run, records).await,
                    Err(e) => Err(e),
                };
                let result = self.watch(result).map_err(RecordError::Ledger);
                for (_, reply) in group {
                    let _ = reply.send(result.clone());
                }
            }
            Order::Close => {}
        }
    }

    async fn view(&mut self, planner: Planner) -> Result<(), LedgerError> {
        self.guard()?;
        self.store.view(planner).await
    }

    #[cfg(test)]
    async fn snapshot(&mut self) -> Result<super::Snapshot, LedgerError> {
        self.guard()?;
        let mut tx = self.store.read().await?;
        let result = read::snapshot(&mut *tx).await;
        ended(tx, result).await
    }

    async fn accounts(&mut self) -> Result<Vec<AccountOverview>, LedgerError> {
        self.guard()?;
        let mut tx = self.store.read().await?;
        let result = read::overviews(&mut *tx).await;
        ended(tx, result).await.map(|(_, rows)| rows)
    }

    async fn refresh_finish(
        &mut self,
        run: i64,
        account: String,
        max_subscribers: Option<u64>,
        adopt: bool,
    ) -> Result<Refreshed, LedgerError> {
        self.guard()?;
        if let Some(cause) = self.spoilt.remove(&account) {
            // Start afresh next time: what was staged is incomplete.
            let _ = self.store.unstage(account.clone()).await;
            return Err(LedgerError::Staging {
                at: self.store.location().to_owned(),
                account,
                cause: Box::new(cause),
            });
        }
        let (store, ids) = (self.store.as_mut(), &mut self.ids);
        write::refresh_finish(store, ids, run, account, max_subscribers, adopt).await
    }
}

//! The contract between the ledger's meaning and the databases it can live in.
//!
//! A backend is one module that implements these traits in its own SQL:
//! - [`Target`]: where a ledger is, as the backend understands it (its own configuration), and
//!   how to open it: for reading ([`Store`], `None` while there is no ledger yet) or, holding
//!   the writer lock, for writing ([`WriterStore`], creating or upgrading the ledger);
//! - [`ReadTx`] and [`WriteTx`]: one transaction, and what can be read and written in it,
//!   as typed rows ([`super::rows`]) and [`Step`]s.
//!
//! Everything here is async, and no backend blocks a runtime worker or runs a runtime of its
//! own: SQLite does its work on the blocking pool, PostgreSQL's driver is async. What the
//! ledger *means* (which changes record a run, how a plan reads an account, how a ledger is
//! copied) is written once, above these traits.
//!
//! Every backend keeps these promises:
//! - a writer exists only while it holds the writer lock; a second writer is refused at once
//!   ([`LedgerError::Locked`], naming the holder), never made to wait, unless it asked to
//!   wait ([`Target::wait_write`], a replica standing by);
//! - [`WriteTx::commit`] increments `serial` and commits durably; a transaction that is not
//!   committed leaves nothing behind; a writer that lost its lock (its session ended, another
//!   replica fenced it off) fails with [`LedgerError::LockLost`];
//! - a [`ReadTx`] sees one consistent state of the ledger;
//! - text compares in byte order (confirmed subscribers come in the order of `str::cmp`);
//! - staging survives nothing: not a crash, not a reconnect;
//! - errors are [`LedgerError`]s naming the ledger as it is safe to show (never a password),
//!   with the driver's error as their source; every call returns within a bounded time.

use std::any::Any;
use std::fmt;
use std::path::Path;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::changes::Step;
use super::rows::{AccountRow, ConfirmedRow, DriftRow, FailedRow, Identity, IntentRow, RunRow};
use super::view::Planner;
use super::write::RefreshStep;
use super::{AccountOverview, KnownProperties, LedgerError, RunOutcome};

/// What every backend call returns.
pub(crate) type Fut<'a, T> = BoxFuture<'a, Result<T, LedgerError>>;

/// Confirmed subscribers, a chunk at a time, in byte order.
pub(crate) type Chunks = mpsc::Sender<Chunk>;

/// Subscribers in one chunk of [`Chunks`].
pub(crate) const CHUNK: usize = 4096;

/// Subscribers in order, kept as one buffer: a chunk costs two allocations however many it
/// holds, and none is made or freed per subscriber on either side of the channel.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    text: String,
    ends: Vec<usize>,
}

impl Chunk {
    pub(crate) fn new() -> Chunk {
        Chunk {
            // About 16 bytes an id: small enough for malloc to reuse freed chunks' memory
            // (large blocks would be mapped and zeroed afresh each time).
            text: String::with_capacity(CHUNK * 16),
            ends: Vec::with_capacity(CHUNK),
        }
    }

    pub(crate) fn push(&mut self, subscriber: &str) {
        self.text.push_str(subscriber);
        self.ends.push(self.text.len());
    }

    /// Whether it holds [`CHUNK`] subscribers.
    pub(crate) fn is_full(&self) -> bool {
        self.ends.len() >= CHUNK
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The subscribers, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, end)| &self.text[start..*end])
    }
}

/// Where a ledger lives, as its backend understands it.
pub(crate) trait Target: Send + Sync + fmt::Debug + 'static {
    /// Where the ledger is, as it is safe to show (never a password).
    fn shown(&self) -> &str;
    /// The local directory the ledger writes, if it writes one.
    fn local_dir(&self) -> Option<&Path> {
        None
    }
    /// Opens the ledger read-only: `None` while there is none yet (never created).
    fn open_read(&self) -> Fut<'_, Option<Box<dyn Store>>>;
    /// Takes the writer lock (refused at once if held) and opens the ledger, creating it or
    /// upgrading its schema (saying so on the log when it creates one).
    fn open_write<'a>(&'a self, command: &'a str) -> Fut<'a, Box<dyn WriterStore>>;
    /// Whether [`Target::wait_write`] waits for a held lock (rather than being refused).
    fn waits_for_lock(&self) -> bool {
        false
    }
    /// Waits until the writer lock is free and takes it at once, then opens the ledger as
    /// [`Target::open_write`] does; `None` once `stop` is cancelled, the wait withdrawn.
    /// A backend that cannot wait is refused at once, as by `open_write`.
    fn wait_write<'a>(
        &'a self,
        command: &'a str,
        stop: &'a CancellationToken,
    ) -> Fut<'a, Option<Box<dyn WriterStore>>> {
        let _ = stop;
        Box::pin(async move { self.open_write(command).await.map(Some) })
    }
    fn as_any(&self) -> &dyn Any;
}

/// An open ledger.
pub(crate) trait Store: Send {
    fn location(&self) -> &str;
    /// Starts one consistent read.
    fn read(&mut self) -> Fut<'_, Box<dyn ReadTx<'_> + '_>>;
    /// Runs the synchronous `planner` on the blocking pool over one consistent read. By
    /// default its reads are requests answered on the async side (`view::view`); a backend
    /// whose reads are synchronous anyway may answer them on the planner's own thread.
    fn view(&mut self, planner: Planner) -> Fut<'_, ()> {
        Box::pin(async move {
            let at = self.location().to_owned();
            let mut tx = self.read().await?;
            let result = super::view::view(&mut *tx, &at, planner).await;
            super::access::ended(tx, result).await
        })
    }
    /// Closes the connection (off the runtime's workers).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// An open ledger whose writer lock this process holds.
pub(crate) trait WriterStore: Store {
    /// Starts a write transaction.
    fn write(&mut self) -> Fut<'_, Box<dyn WriteTx<'_> + '_>>;
    /// Fails once the writer lock is no longer certainly held.
    fn check_lock(&mut self) -> Fut<'_, ()>;
    /// After a bulk write (a finished run, a copy): leaves what was written cheap to read,
    /// where the backend needs that and enough was written since the last time to be worth
    /// it (PostgreSQL: a vacuum). Nothing changes in the ledger's content.
    fn settle(&mut self) -> Fut<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    /// Adds one page of `account`'s live list to the staging area (outside any transaction).
    fn stage(&mut self, account: String, page: Vec<String>) -> Fut<'_, ()>;
    /// Empties `account`'s staging area.
    fn unstage(&mut self, account: String) -> Fut<'_, ()>;
}

/// What one read transaction can read. `'c` is the connection it runs on.
pub(crate) trait ReadTx<'c>: Send {
    fn identity(&mut self) -> Fut<'_, Identity>;
    /// The accounts holding confirmed subscribers.
    fn held(&mut self) -> Fut<'_, Vec<String>>;
    /// Every account, by name.
    fn accounts(&mut self) -> Fut<'_, Vec<AccountRow>>;
    /// The account named `name`, with its rows but its confirmed subscribers (in one call:
    /// planning asks for this once per account).
    fn account(&mut self, name: String) -> Fut<'_, Option<AccountRows>>;
    /// The account's own properties as stored (nothing yet reads as empty).
    fn properties(&mut self, account: i64) -> Fut<'_, KnownProperties>;
    /// Sends the account's confirmed subscribers to `out` in byte order, [`CHUNK`] at a
    /// time, as the database hands them over; stops early, without an error, once `out` is
    /// closed.
    fn confirmed(&mut self, account: i64, out: Chunks) -> Fut<'_, ()>;
    /// The account's confirmed rows, whole (`ledger copy`).
    fn confirmed_rows(&mut self, account: i64) -> Fut<'_, Vec<ConfirmedRow>>;
    /// Counts and facts per account, by name.
    fn overviews(&mut self) -> Fut<'_, Vec<AccountOverview>>;
    /// The latest `limit` runs, newest first; every run when `None`.
    fn runs(&mut self, limit: Option<u64>) -> Fut<'_, Vec<RunRow>>;
    /// Ends the transaction.
    fn end(self: Box<Self>) -> Fut<'c, ()>;
}

/// A run about to open its audit-log entry.
#[derive(Debug, Clone)]
pub(crate) struct NewRun {
    pub(crate) command: String,
    pub(crate) revision: Option<String>,
    pub(crate) started_at: i64,
    pub(crate) pid: i64,
    pub(crate) version: &'static str,
}

/// The end of an account's refresh: make the ledger match its staged live list.
#[derive(Debug, Clone)]
pub(crate) struct RefreshEnd {
    pub(crate) account: i64,
    pub(crate) official_account: String,
    pub(crate) run: i64,
    pub(crate) now: i64,
    pub(crate) max_subscribers: Option<i64>,
    /// `import`: what is found is adopted, managed from now on, and not drift.
    pub(crate) adopt: bool,
}

/// One account's rows but its confirmed subscribers, each list in byte order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccountRows {
    pub(crate) account: AccountRow,
    pub(crate) failed: Vec<FailedRow>,
    pub(crate) drift: Vec<DriftRow>,
    pub(crate) intents: Vec<IntentRow>,
    /// The confirmed subscribers subsync does not manage.
    pub(crate) out_of_band: Vec<String>,
    pub(crate) properties: KnownProperties,
}

/// One account, row for row (`ledger copy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccountDump {
    pub(crate) rows: AccountRows,
    pub(crate) confirmed: Vec<ConfirmedRow>,
}

/// What one write transaction can write (and read).
pub(crate) trait WriteTx<'c>: ReadTx<'c> {
    /// The id of the account named `name`, creating its row when it has none.
    fn account_id(&mut self, name: String, now: i64) -> Fut<'_, i64>;
    /// Runs `steps` in order, for `run` at `now` (see [`Step`]).
    fn apply(&mut self, run: i64, now: i64, steps: Vec<Step>) -> Fut<'_, ()>;
    /// Opens an audit-log entry numbered after the last one; returns its id.
    fn begin_run(&mut self, run: NewRun) -> Fut<'_, i64>;
    fn finish_run(
        &mut self,
        run: i64,
        now: i64,
        result: RunOutcome,
        summary: String,
    ) -> Fut<'_, ()>;
    /// Runs one statement of the end of a refresh (the order is `write::refresh`'s); answers
    /// the rows it changed, or counted.
    fn refresh_step<'a>(&'a mut self, step: RefreshStep, end: &'a RefreshEnd) -> Fut<'a, u64>;
    /// Whether the ledger holds no account and no run.
    fn is_empty(&mut self) -> Fut<'_, bool>;
    /// Inserts copied runs as they are.
    fn insert_runs(&mut self, runs: Vec<RunRow>) -> Fut<'_, ()>;
    /// Inserts a copied account and its rows as they are.
    fn insert_account(&mut self, dump: AccountDump) -> Fut<'_, ()>;
    /// Takes over a copied ledger's identity (the commit's serial bump still follows).
    fn set_identity(&mut self, identity: Identity) -> Fut<'_, ()>;
    /// Increments `serial` and commits.
    fn commit(self: Box<Self>) -> Fut<'c, ()>;
    /// Leaves everything as it was.
    fn rollback(self: Box<Self>) -> Fut<'c, ()>;
}

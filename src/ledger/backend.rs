//! The contract between the ledger's meaning and the databases it can live in.
//!
//! A backend provides transactions ([`Backend::read`], [`Backend::write`]), statements inside
//! them ([`Tx`]: the shared SQL of `sql.rs`, plus the bulk statements and the read of an account's
//! subscribers that each database spells its own fastest way) and a session-private staging area for live lists. What the
//! ledger *means* (recording a batch, finishing a refresh, copying a ledger, assembling a
//! snapshot) is written once, above this trait, in `read.rs` and `write.rs`.
//!
//! Every backend keeps these promises:
//! - it exists as a writer only while it holds the writer lock; a second writer is refused at
//!   once ([`super::LedgerError::Locked`], naming the holder), never made to wait;
//! - [`Backend::write`] runs its closure in one transaction that ends by incrementing `serial`
//!   and commits durably; a write that fails leaves nothing behind; a writer that lost its lock
//!   (its session ended, another replica fenced it off) fails every write with `LockLost`;
//! - [`Backend::read`] runs its closure in one consistent read transaction;
//! - text compares in byte order (`ORDER BY subscriber` is the order of `str::cmp`);
//! - staging survives nothing: not a crash, not a reconnect;
//! - driver errors become [`super::LedgerError`] variants inside the backend, with the ledger's
//!   location and never a password; every call returns within a bounded time.
//!
//! Adding a backend: a module implementing [`Backend`] and [`Tx`], a variant of
//! [`super::Location`], and its arms in `location.rs`.

use super::{AccountFacts, LedgerError, Op, Run};

/// A value bound to a statement parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Bool(bool),
}

/// One row of an answer, by column index.
pub trait Row {
    fn int(&self, column: usize) -> Result<i64, LedgerError>;
    fn opt_int(&self, column: usize) -> Result<Option<i64>, LedgerError>;
    fn text(&self, column: usize) -> Result<String, LedgerError>;
    fn opt_text(&self, column: usize) -> Result<Option<String>, LedgerError>;
    fn flag(&self, column: usize) -> Result<bool, LedgerError>;
}

/// Implements [`Row`] for a driver's row type whose inherent `get(column)` reads any column
/// type the driver converts (each backend's own conversions, one spelling).
macro_rules! row_by_get {
    ($row:ty) => {
        impl $crate::ledger::backend::Row for $row {
            fn int(&self, column: usize) -> Result<i64, LedgerError> {
                self.get(column)
            }

            fn opt_int(&self, column: usize) -> Result<Option<i64>, LedgerError> {
                self.get(column)
            }

            fn text(&self, column: usize) -> Result<String, LedgerError> {
                self.get(column)
            }

            fn opt_text(&self, column: usize) -> Result<Option<String>, LedgerError> {
                self.get(column)
            }

            fn flag(&self, column: usize) -> Result<bool, LedgerError> {
                self.get(column)
            }
        }
    };
}
pub(crate) use row_by_get;

/// Statements inside one transaction.
pub trait Tx {
    /// Runs one of the shared statements; returns the rows it changed.
    fn execute(&mut self, sql: &'static str, params: &[Param<'_>]) -> Result<u64, LedgerError>;
    /// Runs a shared query, handing each row to `row` as it arrives (nothing is collected).
    fn query(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn Row) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError>;
    /// Inserts or updates the `confirmed` rows of `subscribers` in `account` (by id) as
    /// confirmed at `now` by `run` and managed; `already` marks them drift; `observed` is
    /// cleared.
    fn confirm(
        &mut self,
        account: i64,
        subscribers: &[String],
        now: i64,
        run: i64,
        already: bool,
    ) -> Result<(), LedgerError>;
    /// Deletes the `confirmed` rows of `subscribers`.
    fn unconfirm(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError>;
    /// Deletes the `failed` rows of `subscribers`.
    fn clear_failed(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError>;
    /// Records `failed` (subscriber, code) for `op`: a repeat of the same operation counts one
    /// more attempt, another operation starts again at one. A subscriber listed twice keeps its
    /// last code.
    fn fail(
        &mut self,
        account: i64,
        failed: &[(String, i64)],
        op: Op,
        now: i64,
        run: i64,
    ) -> Result<(), LedgerError>;
    /// Hands every confirmed subscriber of `account` (by id), in byte order, to `each`, as
    /// the database streams them.
    fn confirmed(&mut self, account: i64, each: &mut dyn FnMut(String)) -> Result<(), LedgerError>;
    /// Marks the `confirmed` rows of `subscribers` managed.
    fn manage(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError>;
    /// Records that `run` is about to send `op` for `subscribers`.
    fn intend(
        &mut self,
        account: i64,
        subscribers: &[String],
        op: Op,
        run: i64,
    ) -> Result<(), LedgerError>;
    /// Forgets the intents of `subscribers`: their outcome is known.
    fn clear_intents(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError>;
    /// Inserts copied `confirmed` rows as they are (`ledger copy`).
    fn copy_confirmed(&mut self, account: i64, rows: &[ConfirmedRow]) -> Result<(), LedgerError>;
}

/// Closures run inside a transaction.
pub type TxFn<'f> = dyn FnMut(&mut dyn Tx) -> Result<(), LedgerError> + 'f;

/// A database holding one ledger, open for reading or, with its writer lock, for writing.
pub trait Backend: Send {
    /// Where the ledger is, as it is safe to show (never a password).
    fn location(&self) -> &str;
    /// Runs `f` in one consistent read transaction.
    fn read(&mut self, f: &mut TxFn<'_>) -> Result<(), LedgerError>;
    /// Runs `f` in one write transaction that ends with the serial bump, and commits.
    fn write(&mut self, f: &mut TxFn<'_>) -> Result<(), LedgerError>;
    /// Fails once the writer lock is no longer certainly held.
    fn check_lock(&mut self) -> Result<(), LedgerError>;
    /// Adds one page of `account`'s live list to the staging area (outside any transaction).
    fn stage(&mut self, account: &str, page: &[String]) -> Result<(), LedgerError>;
    /// Empties `account`'s staging area.
    fn unstage(&mut self, account: &str) -> Result<(), LedgerError>;
}

/// What `ledger copy` copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub accounts: u64,
    pub confirmed: u64,
    pub failed: u64,
    pub runs: u64,
}

/// The ledger's identity and every account, for `ledger copy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub lineage: String,
    pub serial: u64,
    pub created_at: i64,
    /// Every account, sorted.
    pub accounts: Vec<String>,
}

/// One account, row for row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountDump {
    pub official_account: String,
    pub facts: AccountFacts,
    pub properties: super::KnownProperties,
    pub refreshed_at: Option<i64>,
    pub updated_at: i64,
    pub confirmed: Vec<ConfirmedRow>,
    pub failed: Vec<FailedRow>,
    pub drift: Vec<DriftRow>,
    pub intents: Vec<IntentRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentRow {
    pub subscriber: String,
    pub op: Op,
    pub run_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedRow {
    pub subscriber: String,
    pub confirmed_at: i64,
    pub run_id: i64,
    pub already: bool,
    pub observed: bool,
    pub managed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRow {
    pub subscriber: String,
    pub op: Op,
    pub code: i64,
    pub attempts: u32,
    pub first_at: i64,
    pub last_at: i64,
    pub run_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftRow {
    /// `added` or `removed`.
    pub direction: String,
    pub subscriber: String,
    pub observed_at: i64,
}

/// An audit-log entry with the version of subsync that wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub run: Run,
    pub version: String,
}

//! What a ledger backend provides: [`View`] to read and [`Store`] to write. SQLite and
//! PostgreSQL implement both; everything above this module works with either.
//!
//! Every backend keeps the same promises:
//! - a [`Store`] exists only while its writer lock is held, and a second writer is refused at
//!   once, naming the holder;
//! - every write is one durable transaction that also increments `serial`; a write that fails
//!   leaves nothing behind;
//! - `lineage` is fixed at creation; a schema newer than this build is refused, an older one is
//!   upgraded by the next writer, under its lock, and refused by readers until then;
//! - snapshots are consistent (one read transaction) and list subscribers in byte order.

use super::{AccountFacts, AccountSummary, LedgerError, Op, Record, Refreshed, Run, Snapshot};

/// Reading a ledger.
pub trait View: Send {
    /// The whole ledger as planning needs it.
    fn snapshot(&mut self) -> Result<Snapshot, LedgerError>;
    /// Lineage and serial (in a snapshot without accounts) and the counts per account.
    fn summaries(&mut self) -> Result<(Snapshot, Vec<AccountSummary>), LedgerError>;
    /// The latest `limit` runs, newest first.
    fn runs(&mut self, limit: usize) -> Result<Vec<Run>, LedgerError>;
    /// Everything about one account, for `ledger copy`.
    fn export_account(&mut self, account: &str) -> Result<AccountDump, LedgerError>;
    /// Lineage, serial and creation time, for `ledger copy`.
    fn export_meta(&mut self) -> Result<Meta, LedgerError>;
    /// The whole audit log, oldest first, for `ledger copy`.
    fn export_runs(&mut self) -> Result<Vec<RunRow>, LedgerError>;
}

/// Writing a ledger, with its writer lock held.
pub trait Store: View {
    /// Where the ledger is, as it is safe to show.
    fn location(&self) -> &str;
    /// Opens an audit-log entry; returns its id.
    fn begin_run(&mut self, command: &str, revision: Option<&str>) -> Result<i64, LedgerError>;
    /// Closes an audit-log entry with its result and summary.
    fn finish_run(
        &mut self,
        run: i64,
        result: &str,
        summary: &serde_json::Value,
    ) -> Result<(), LedgerError>;
    /// Records outcomes of `run`, all in one transaction.
    fn record(&mut self, run: i64, records: &[Record]) -> Result<(), LedgerError>;
    /// Starts (or restarts) the refresh of `account`: forgets what an earlier one staged.
    fn refresh_start(&mut self, account: &str) -> Result<(), LedgerError>;
    /// Stages one page of `account`'s live list; the ledger itself is unchanged until
    /// [`Store::refresh_finish`].
    fn observe(&mut self, account: &str, page: &[String]) -> Result<(), LedgerError>;
    /// Makes the ledger match `account`'s staged live list in one transaction: subscribers seen
    /// but unknown are adopted as confirmed, confirmed ones not seen are dropped, both are kept
    /// as the account's drift, and failures the live list settled are cleared.
    fn refresh_finish(
        &mut self,
        run: i64,
        account: &str,
        subscriber_num: Option<u64>,
        max_subscribers: Option<u64>,
    ) -> Result<Refreshed, LedgerError>;
    /// Fails once the writer lock is no longer certainly held (a lost database session).
    fn check_lock(&mut self) -> Result<(), LedgerError>;
    /// Fills this ledger, which must be empty, with everything `from` holds, lineage and serial
    /// included, in one transaction.
    fn import(&mut self, from: &mut dyn View) -> Result<Copied, LedgerError>;
}

/// What `ledger copy` copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub accounts: u64,
    pub confirmed: u64,
    pub failed: u64,
    pub runs: u64,
}

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
    pub refreshed_at: Option<i64>,
    pub updated_at: i64,
    pub confirmed: Vec<ConfirmedRow>,
    pub failed: Vec<FailedRow>,
    pub drift: Vec<DriftRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedRow {
    pub subscriber: String,
    pub confirmed_at: i64,
    pub run_id: i64,
    pub already: bool,
    pub observed: bool,
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

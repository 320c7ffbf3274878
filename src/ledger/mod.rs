//! The state ledger: per official account, the confirmed subscribers, the failed ones, facts
//! learned from the API, what the last refresh found, and an audit log of runs.
//!
//! Two backends behind one interface ([`backend`]): SQLite in a state directory (the default)
//! and PostgreSQL for replicas that share one ledger. [`Location`] says which.
//!
//! Invariants, on both:
//! - one writer at a time, refused at once while another holds the lock; readers ([`Reader`])
//!   never block on it;
//! - every write transaction increments `serial` (a saved plan is stale when it changed);
//! - `lineage` is fixed at creation, so a plan made against another ledger is recognisable;
//! - something that is not a subsync ledger is reported, never recreated or modified.

pub mod backend;
mod location;
mod pg;
mod sql;
mod sqlite;
mod writer;

use std::path::{Path, PathBuf};

pub use backend::{Copied, Store, View};
pub use location::{Location, PgHost, PgTarget, RootCert, TlsMode, UrlError};
pub use writer::{RecordError, Recorder, Writer};

/// File name of the ledger inside the state directory.
pub const FILE_NAME: &str = "ledger.db";

/// The schema this build reads and writes; both backends migrate up to it.
pub const SCHEMA_VERSION: i64 = 2;

pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {at} is locked by {holder}; wait for that run to finish or stop it")]
    Locked { at: String, holder: String },
    #[error(
        "{at} is not a subsync ledger ({what}); move it away or choose another --state (subsync will not change it)"
    )]
    Foreign { at: String, what: String },
    #[error(
        "ledger {at} is corrupt or not a SQLite database ({detail}); restore it from a backup or move it away (subsync will not recreate it)"
    )]
    Corrupt { at: String, detail: String },
    #[error(
        "ledger {at} has schema version {version}, newer than this subsync understands ({SCHEMA_VERSION}); upgrade subsync"
    )]
    TooNew { at: String, version: i64 },
    #[error(
        "ledger {at} has schema version {version}, older than this subsync's {SCHEMA_VERSION}; upgrade it with `subsync ledger migrate` (apply, import and watch also upgrade it)"
    )]
    TooOld { at: String, version: i64 },
    #[error("cannot access {at}: {source}")]
    Io { at: String, source: std::io::Error },
    #[error("ledger {at}: {source}")]
    Sqlite { at: String, source: rusqlite::Error },
    #[error("ledger {at}: {detail}")]
    Postgres { at: String, detail: String },
    #[error("cannot connect to the ledger at {at}: {detail}")]
    Connect { at: String, detail: String },
    #[error(
        "lost the writer lock on {at} ({detail}); another replica may lead now, so nothing more is written"
    )]
    LockLost { at: String, detail: String },
    #[error("{at} already holds a ledger; `ledger copy` only writes into an empty one")]
    NotEmpty { at: String },
}

impl LedgerError {
    /// Refuses a schema this build cannot read as it is.
    fn check_version(at: &str, version: i64) -> Result<(), LedgerError> {
        if version > SCHEMA_VERSION {
            Err(LedgerError::TooNew {
                at: at.to_owned(),
                version,
            })
        } else if version < SCHEMA_VERSION {
            Err(LedgerError::TooOld {
                at: at.to_owned(),
                version,
            })
        } else {
            Ok(())
        }
    }
}

/// A new ledger's lineage: 128 random bits in hex.
fn new_lineage() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read-only access: snapshots for planning, summaries for status. Never writes, never
/// creates a ledger, never waits for the writer.
pub struct Reader {
    view: Option<Box<dyn View>>,
    location: Location,
}

impl Reader {
    /// Opens the ledger at `location`; one that does not exist yet reads as empty.
    pub fn open(location: impl Into<Location>) -> Result<Reader, LedgerError> {
        let location = location.into();
        let view: Option<Box<dyn View>> = match &location {
            Location::Dir(dir) => sqlite::Sqlite::open_read(dir)?.map(|v| Box::new(v) as _),
            Location::Postgres(target) => {
                pg::Postgres::open_read(target)?.map(|v| Box::new(v) as _)
            }
        };
        Ok(Reader { view, location })
    }

    pub fn exists(&self) -> bool {
        self.view.is_some()
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn snapshot(&mut self) -> Result<Snapshot, LedgerError> {
        match &mut self.view {
            Some(view) => view.snapshot(),
            None => Ok(Snapshot::default()),
        }
    }

    pub fn summaries(&mut self) -> Result<(Snapshot, Vec<AccountSummary>), LedgerError> {
        match &mut self.view {
            Some(view) => view.summaries(),
            None => Ok((Snapshot::default(), Vec::new())),
        }
    }

    /// The latest `limit` runs, newest first.
    pub fn runs(&mut self, limit: usize) -> Result<Vec<Run>, LedgerError> {
        match &mut self.view {
            Some(view) => view.runs(limit),
            None => Ok(Vec::new()),
        }
    }
}

/// The ledger open for writing, its writer lock held until it is dropped. Synchronous: async
/// code uses it through a [`Writer`].
pub struct Ledger(Box<dyn Store>);

impl Ledger {
    /// Takes the writer lock (refused at once, naming the holder, if held) and opens the
    /// ledger, creating it or upgrading its schema.
    pub fn open(location: impl Into<Location>, command: &str) -> Result<Ledger, LedgerError> {
        Ok(Ledger(match location.into() {
            Location::Dir(dir) => Box::new(sqlite::Sqlite::open_write(&dir, command)?),
            Location::Postgres(target) => Box::new(pg::Postgres::open_write(&target, command)?),
        }))
    }
}

impl std::ops::Deref for Ledger {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.0
    }
}

impl std::ops::DerefMut for Ledger {
    fn deref_mut(&mut self) -> &mut (dyn Store + 'static) {
        &mut *self.0
    }
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Ledger").field(&self.0.location()).finish()
    }
}

/// Copies everything the ledger at `from` holds into the empty ledger at `to`, holding both
/// writer locks so that neither changes meanwhile.
pub fn copy(from: &Location, to: &Location) -> Result<Copied, LedgerError> {
    let mut source = Ledger::open(from, "ledger copy")?;
    let mut target = Ledger::open(to, "ledger copy")?;
    let source: &mut dyn Store = &mut *source;
    target.import(source)
}

/// What a batch does to its subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// add_subscriber.
    Add,
    /// delete_subscriber (prune).
    Remove,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
        }
    }

    pub(crate) fn parse(text: &str) -> Op {
        if text == "remove" {
            Op::Remove
        } else {
            Op::Add
        }
    }
}

/// A subscriber whose last add (or removal) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub subscriber: String,
    pub op: Op,
    /// The service's code, or a negative pseudo-code (see `tencent::client::pseudo_code`).
    pub code: i64,
    pub attempts: u32,
    /// Milliseconds since the epoch.
    pub last_at: i64,
}

/// What the last refresh of an account found: subscribers present remotely that the ledger did
/// not know (now adopted as confirmed), and confirmed ones gone remotely (now dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// Sorted.
    pub added: Vec<String>,
    /// Sorted.
    pub removed: Vec<String>,
    /// When that refresh was recorded (milliseconds since the epoch).
    pub at: Option<i64>,
}

/// The counts of one account's refresh, as recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Subscribers seen in the live list.
    pub seen: u64,
    pub added: u64,
    pub removed: u64,
}

/// What the API told us about an account. Times are milliseconds since the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFacts {
    pub max_subscribers: Option<u64>,
    pub subscriber_num: Option<u64>,
    pub limit_reached_at: Option<i64>,
    pub missing_since: Option<i64>,
    pub invalid_since: Option<i64>,
}

/// One account as the ledger knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    /// Believed subscribed remotely: added or found already subscribed by subsync, or seen in
    /// a refresh. Sorted (byte order).
    pub confirmed: Vec<String>,
    /// Sorted by subscriber.
    pub failed: Vec<FailedEntry>,
    pub facts: AccountFacts,
    pub drift: Drift,
}

/// A consistent view of the whole ledger, as of one serial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `None` when no ledger exists yet.
    pub lineage: Option<String>,
    pub serial: u64,
    pub accounts: std::collections::BTreeMap<String, AccountState>,
}

/// Counts per account, for `status` and the daemon's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub official_account: String,
    pub confirmed: u64,
    pub failed: u64,
    pub facts: AccountFacts,
    /// When the live list was last refreshed (milliseconds since the epoch), and what that
    /// refresh found.
    pub refreshed_at: Option<i64>,
    pub drift_added: u64,
    pub drift_removed: u64,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: i64,
    pub command: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub revision: Option<String>,
    /// `None` while running, or when the run was killed before it could finish.
    pub result: Option<String>,
    pub summary: Option<serde_json::Value>,
    pub pid: i64,
}

/// A fact to record about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountFact {
    /// From get_official_account_info; clears `missing`.
    Info {
        max_subscribers: Option<u64>,
        subscriber_num: Option<u64>,
    },
    /// 130006 seen for a single subscriber: the account is full.
    LimitReached,
    /// 130004.
    Missing,
    /// 130007.
    Invalid,
    /// Every planned subscriber was sent without a limit error: clears the flags.
    Healthy,
}

/// One durable fact about the remote side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The outcome of one add_subscriber or delete_subscriber batch.
    Batch {
        account: String,
        op: Op,
        /// Result 1: added, or removed.
        done: Vec<String>,
        /// Result 2: already subscribed (drift: the ledger did not know), or was not
        /// subscribed. Either way the remote side now matches.
        unchanged: Vec<String>,
        /// Result 0 or an isolated per-subscriber error, with its code.
        failed: Vec<(String, i64)>,
    },
    Account {
        account: String,
        fact: AccountFact,
    },
}

#[cfg(test)]
mod tests;

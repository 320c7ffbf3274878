//! The state ledger: a SQLite file at `STATE/ledger.db` recording, per official account, the
//! confirmed subscribers, the failed ones, facts learned from the API, and an audit log of runs.
//!
//! Invariants:
//! - one writer at a time ([`lock`]); readers ([`Reader`]) open read-only and never block on it;
//! - every write transaction increments `serial` (a saved plan is stale when it changed);
//! - `lineage` is fixed at creation, so a plan made against another ledger is recognisable;
//! - a file that is not a subsync ledger is reported, never recreated or modified.

mod lock;
mod read;
mod store;
mod write;
mod writer;

use std::path::{Path, PathBuf};

pub use read::Reader;
pub use write::Ledger;
pub use writer::{RecordError, Recorder, Writer};

/// File name of the ledger inside the state directory.
pub const FILE_NAME: &str = "ledger.db";

pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path} is locked by {holder}; wait for that run to finish or stop it")]
    Locked { path: PathBuf, holder: String },
    #[error(
        "{path} is not a subsync ledger (SQLite application_id {application_id:#x}); move it away or choose another --state directory"
    )]
    Foreign { path: PathBuf, application_id: i32 },
    #[error(
        "ledger {path} is corrupt or not a SQLite database ({detail}); restore it from a backup or move it away (subsync will not recreate it)"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "ledger {path} has schema version {version}, newer than this subsync understands; upgrade subsync"
    )]
    TooNew { path: PathBuf, version: i64 },
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ledger {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl LedgerError {
    fn from_sqlite(path: &Path, e: rusqlite::Error) -> LedgerError {
        use rusqlite::ffi::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => LedgerError::Corrupt {
                path: path.to_owned(),
                detail: e.to_string(),
            },
            _ => LedgerError::Sqlite {
                path: path.to_owned(),
                source: e,
            },
        }
    }
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

    fn parse(text: &str) -> Op {
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

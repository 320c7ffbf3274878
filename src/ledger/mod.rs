//! The state ledger: per official account, the confirmed subscribers, the failed ones, facts
//! learned from the API, its own properties (as learnt, declared and last in force), what the
//! last refresh found, and an audit log of runs.
//!
//! Layers, top down:
//! - [`Writer`]: the ledger as an async service, on a thread of its own (group commits, lock
//!   checks); [`Ledger`] and [`Reader`]: synchronous write and read access;
//! - `read` and `write`: what the ledger *means* (recording a batch, finishing a refresh,
//!   assembling a snapshot, copying a ledger), written once in the SQL both databases share;
//! - [`backend`]: the small contract a database implements, and its two implementations,
//!   `sqlite` (the default) and `pg` (replicas sharing one ledger). [`Location`] says which.
//!
//! Invariants, on every backend:
//! - one writer at a time, refused at once while another holds the lock; readers never block
//!   on it;
//! - every write transaction increments `serial` (a saved plan is stale when it changed);
//! - `lineage` is fixed at creation, so a plan made against another ledger is recognisable;
//! - something that is not a subsync ledger is reported, never recreated or modified.

mod access;
pub mod backend;
mod location;
mod model;
mod pg;
mod properties;
mod read;
mod source;
mod sql;
mod sqlite;
mod write;
mod writer;

pub use access::{Ledger, Reader, copy};
pub use backend::{Copied, Meta};
pub use location::{Location, PgHost, PgTarget, RootCert, TlsMode, UrlError};
pub use model::*;
pub use source::{AccountSource, Confirmed, Listed, View};
pub use writer::{RecordError, Recorder, Writer};

/// File name of the SQLite ledger inside the state directory.
pub const FILE_NAME: &str = "ledger.db";

/// The schema this build reads and writes; both backends migrate up to it.
pub const SCHEMA_VERSION: i64 = 4;

/// Why the ledger could not be opened, read or written. Every message names the ledger and,
/// where there is one, the fix; the causes of database failures are in `detail`, said once.
#[derive(Debug, Clone, thiserror::Error)]
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
    #[error("cannot use {at}: {detail}")]
    Io { at: String, detail: String },
    #[error("cannot reach the ledger at {at}: {detail}")]
    Unavailable { at: String, detail: String },
    #[error("ledger {at}: {detail}")]
    Database { at: String, detail: String },
    #[error(
        "lost the writer lock on {at} ({detail}); another replica may lead now, so nothing more is written"
    )]
    LockLost { at: String, detail: String },
    #[error("{at} already holds a ledger; `ledger copy` only writes into an empty one")]
    NotEmpty { at: String },
    #[error("the ledger writer for {at} has stopped; nothing more can be recorded in this run")]
    WriterStopped { at: String },
    #[error("ledger {at}: cannot stage the live list of {account}: {detail}")]
    Staging {
        at: String,
        account: String,
        detail: String,
    },
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

#[cfg(test)]
mod tests;

//! The state ledger: per official account, the confirmed subscribers, the failed ones, facts
//! learned from the API, its own properties (as learnt, declared and last in force), what the
//! last refresh found, and an audit log of runs.
//!
//! Layers, top down:
//! - the API, async: [`Writer`] (one task owning the open ledger and its writer lock: group
//!   commits, lock checks), [`Reader`] (reads, never waiting for the writer) and [`copy`];
//!   [`Location`] says where a ledger lives and picks its backend;
//! - the meaning, written once for every backend: `changes` (which changes record a run's
//!   outcomes), `write` (transactions: runs, records, the end of a refresh), `read` (an
//!   account's view, overviews, the audit log), `properties` (an account's own fields: how a
//!   record merges over what is stored), `view` (the synchronous planner's [`AccountSource`]
//!   over an async read, on the blocking pool), typed rows (`rows`);
//! - `store`: the contract a backend implements in its own SQL, and the two backends,
//!   `sqlite` (the default; its work on the blocking pool) and `pg` (replicas sharing one
//!   ledger; an async driver). Each owns its configuration, its SQL and its schema.
//!
//! Invariants, on every backend:
//! - one writer at a time, refused at once while another holds the lock; readers never block
//!   on it;
//! - every write transaction increments `serial` (a saved plan is stale when it changed);
//! - `lineage` is fixed at creation, so a plan made against another ledger is recognisable;
//! - something that is not a subsync ledger is reported, never recreated or modified;
//! - what the ledger stores as text is read back strictly: a value this build does not know
//!   is an error, never a default.

mod access;
mod changes;
mod error;
mod location;
mod model;
mod pg;
mod properties;
mod read;
mod rows;
mod source;
mod sqlite;
mod store;
mod view;
mod write;
mod writer;

pub use access::Reader;
pub(crate) use access::copy;
pub(crate) use error::{Cause, Hint, LedgerError, LockLoss};
pub use location::Location;
pub(crate) use location::{LocationError, ResolveError};
pub(crate) use model::*;
pub use model::{Op, Record, Run, RunOutcome, Snapshot};
/// Where a password the `--state` URL leaves out may come from (listed by the reference).
pub(crate) use pg::PASSWORD_SOURCES;
pub(crate) use pg::PasswordSource;
#[cfg(any(test, feature = "testing"))]
pub(crate) use pg::UrlError;
pub use pg::{Target as PgTarget, TlsMode};
pub(crate) use source::{AccountSource, Confirmed, InMemory};
pub use writer::Writer;
pub(crate) use writer::{RecordError, Recorder};

/// The schema this build reads and writes; both backends migrate up to it.
pub const SCHEMA_VERSION: i64 = 4;

/// A new ledger's lineage: 128 random bits in hex.
fn new_lineage() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;

//! Why the ledger could not be opened, read or written.
//!
//! Every variant names the ledger (`at`, as it is safe to show: never a password) and, where
//! there is one, the fix. A database's or the system's own error is kept whole as the
//! variant's `source` ([`Cause`]) and is not repeated in the message: [`crate::errors::chain`]
//! (or anyhow's `{:#}`) says each cause once. Nothing here is made up to fit the plumbing:
//! each error is raised where it happens, by the code that knows the ledger's location.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::SCHEMA_VERSION;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {at} is locked by {holder}; wait for that run to finish or stop it")]
    Locked { at: String, holder: String },
    #[error(
        "{at} is not a subsync ledger ({what}); move it away or choose another --state (subsync will not change it)"
    )]
    Foreign { at: String, what: String },
    #[error(
        "ledger {at} has no schema to keep the ledger in: the search_path names none that exists; create it (CREATE SCHEMA …) or fix options=-c search_path=… in the URL"
    )]
    NoSchema { at: String },
    #[error(
        "ledger {at} is corrupt; restore it from a backup or move it away (subsync will not recreate it)"
    )]
    Corrupt {
        at: String,
        #[source]
        cause: Cause,
    },
    #[error(
        "ledger {at} has schema version {version}, newer than this subsync understands ({SCHEMA_VERSION}); upgrade subsync"
    )]
    TooNew { at: String, version: i64 },
    #[error(
        "ledger {at} has schema version {version}, older than this subsync's {SCHEMA_VERSION}; upgrade it with `subsync ledger migrate` (apply, import and watch also upgrade it)"
    )]
    TooOld { at: String, version: i64 },
    #[error("cannot {action} {at}")]
    Io {
        at: String,
        action: &'static str,
        #[source]
        cause: Cause,
    },
    #[error("{at} is {what}; remove it (subsync recreates the lock file)")]
    LockFile { at: String, what: &'static str },
    #[error("directory {dir} does not exist; create it or fix --state")]
    NoDirectory { dir: String },
    #[error("cannot reach the ledger at {at}{hint}")]
    Unavailable {
        at: String,
        hint: Hint,
        #[source]
        cause: Cause,
    },
    #[error("ledger {at}: the database refused a statement{hint}")]
    Database {
        at: String,
        hint: Hint,
        #[source]
        cause: Cause,
    },
    #[error(
        "lost the writer lock on {at}; another replica may lead now, so nothing more is written"
    )]
    LockLost {
        at: String,
        #[source]
        loss: LockLoss,
    },
    #[error("{at} already holds a ledger; `ledger copy` only writes into an empty one")]
    NotEmpty { at: String },
    #[error("the ledger writer for {at} has stopped; nothing more can be recorded in this run")]
    WriterStopped { at: String },
    #[error("ledger {at}: cannot stage the live list of {account}")]
    Staging {
        at: String,
        account: String,
        #[source]
        cause: Box<LedgerError>,
    },
    #[error(
        "ledger {at}: {what} holds {value}, which this subsync does not know; upgrade subsync (or restore the ledger from a backup)"
    )]
    Unknown {
        at: String,
        what: &'static str,
        value: String,
    },
    #[error("ledger {at}: the summary of run {run} cannot be read")]
    Summary {
        at: String,
        run: i64,
        #[source]
        cause: Cause,
    },
    #[error("ledger {at}: the task working on it failed")]
    Task {
        at: String,
        #[source]
        cause: Cause,
    },
}

impl LedgerError {
    /// Refuses a schema this build cannot read as it is.
    pub(crate) fn check_version(at: &str, version: i64) -> Result<(), LedgerError> {
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

    /// Stored text this build does not know (quoted, cut).
    pub(crate) fn unknown(at: &str, what: &'static str, value: &str) -> LedgerError {
        LedgerError::Unknown {
            at: at.to_owned(),
            what,
            value: crate::quote::quote(value),
        }
    }

    /// A blocking task or a helper task that ended without answering (it panicked).
    pub(crate) fn task(at: &str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        LedgerError::Task {
            at: at.to_owned(),
            cause: Cause::new(e),
        }
    }
}

/// Why a writer no longer holds the lock.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LockLoss {
    #[error("fenced: another replica took the lock over")]
    Fenced,
    #[error("another replica took the lock over (epoch {held} is now {now})")]
    TakenOver { held: i64, now: String },
    #[error(
        "this session no longer holds the advisory lock (is a pooler in transaction mode in between?)"
    )]
    AdvisoryGone,
    #[error("the database session ended")]
    SessionEnded(#[source] Cause),
    #[error("the server did not answer within {}s; check that it is up and reachable", .0.as_secs())]
    Silent(Duration),
    #[error("the session was given up on after the server fell silent")]
    Abandoned,
    #[error("this process does not hold the writer lock")]
    NotLeading,
}

/// What to do about a database's refusal, when there is something to say; shown after the
/// message (`; check the user and the password …`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hint(pub(crate) Option<&'static str>);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(hint) => write!(f, "; {hint}"),
            None => Ok(()),
        }
    }
}

/// A driver's or the system's error, kept whole as a source. Shared, so that every caller of
/// a group commit gets the same answer.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub(crate) fn new(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(e))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

// Transparent: the wrapped error's text, then its own causes.
impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_a_source_said_once() {
        let e = LedgerError::Io {
            at: "/x/ledger.db".into(),
            action: "open",
            cause: Cause::new(std::io::Error::other("permission denied")),
        };
        assert_eq!(e.to_string(), "cannot open /x/ledger.db");
        assert_eq!(
            crate::errors::chain(&e),
            "cannot open /x/ledger.db: permission denied"
        );
    }
}

//! How the driver's failures become [`LedgerError`]s, and the bound on every wait.
//!
//! A session that fell silent for longer than its answer deadline is given up for good (a
//! late answer could belong to anything); a session that ended takes its advisory lock with
//! it. For the writer both are a lost lock ([`LedgerError::LockLost`]); for a reader, an
//! unreachable ledger. A statement the server refused is [`LedgerError::Database`], with
//! what to do about it when there is something to say; damaged data is
//! [`LedgerError::Corrupt`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::ledger::{Cause, Hint, LedgerError, LockLoss};

/// What every call on one session needs to know to bound itself and report its failures.
#[derive(Debug)]
pub(super) struct Session {
    /// The URL without its password.
    pub(crate) at: String,
    /// How long to wait for any one answer.
    pub(crate) deadline: Duration,
    /// Whether this session holds the writer lock.
    pub(crate) writer: bool,
    /// Set once the session is given up on.
    abandoned: AtomicBool,
}

impl Session {
    pub(super) fn new(at: String, deadline: Duration, writer: bool) -> Session {
        Session {
            at,
            deadline,
            writer,
            abandoned: AtomicBool::new(false),
        }
    }

    /// Fails at once when the session was given up on.
    pub(super) fn usable(&self) -> Result<(), LedgerError> {
        if self.abandoned.load(Ordering::Acquire) {
            return Err(self.lost(LockLoss::Abandoned));
        }
        Ok(())
    }

    /// `fut` within the answer deadline; a silent server gives the session up.
    pub(super) async fn within<T>(
        &self,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, LedgerError> {
        self.usable()?;
        self.bounded(self.deadline, fut).await
    }

    /// `fut` within `deadline`.
    pub(super) async fn bounded<T>(
        &self,
        deadline: Duration,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, LedgerError> {
        match tokio::time::timeout(deadline, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => Err(self.silent(deadline)),
        }
    }

    /// The server said nothing for `after`: the session is given up on.
    pub(super) fn silent(&self, after: Duration) -> LedgerError {
        self.abandoned.store(true, Ordering::Release);
        self.lost(LockLoss::Silent(after))
    }

    /// The session can no longer be used.
    fn lost(&self, loss: LockLoss) -> LedgerError {
        if self.writer {
            LedgerError::LockLost {
                at: self.at.clone(),
                loss,
            }
        } else {
            LedgerError::Unavailable {
                at: self.at.clone(),
                hint: Hint::default(),
                cause: Cause::new(loss),
            }
        }
    }

    /// What a failed call means.
    pub(super) fn error(&self, e: tokio_postgres::Error) -> LedgerError {
        if lost_session(&e) {
            self.abandoned.store(true, Ordering::Release);
            return if self.writer {
                self.lost(LockLoss::SessionEnded(Cause::new(e)))
            } else {
                unavailable(&self.at, e)
            };
        }
        let corrupt = e
            .code()
            .is_some_and(|c| *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED);
        if corrupt {
            return LedgerError::Corrupt {
                at: self.at.clone(),
                cause: Cause::new(e),
            };
        }
        LedgerError::Database {
            at: self.at.clone(),
            hint: hint(&e),
            cause: Cause::new(e),
        }
    }
}

/// A session that could not be made, or that ended under a reader.
pub(super) fn unavailable(at: &str, e: tokio_postgres::Error) -> LedgerError {
    LedgerError::Unavailable {
        at: at.to_owned(),
        hint: hint(&e),
        cause: Cause::new(e),
    }
}

/// True when `e` means the session is gone (and with it any lock it held).
fn lost_session(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || is_io(e)
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("57P") || c.starts_with("08")
        })
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// What to do about `e`, when there is something to say.
fn hint(e: &tokio_postgres::Error) -> Hint {
    let Some(code) = e.code() else {
        return Hint(
            (e.is_closed() || is_io(e))
                .then_some("check that the server runs and is reachable at that host and port"),
        );
    };
    Hint(Some(if *code == SqlState::INVALID_PASSWORD {
        "check the user and the password (in the URL, SUBSYNC_STATE_PASSWORD_FILE or PGPASSWORD)"
    } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
        "the server refused this user from this host (see its pg_hba.conf)"
    } else if *code == SqlState::INVALID_CATALOG_NAME {
        "create the database or fix its name in the URL"
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        "grant the user USAGE and CREATE on the schema, or connect as its owner"
    } else if *code == SqlState::TOO_MANY_CONNECTIONS {
        "the server has no free connection; raise max_connections or try again"
    } else if *code == SqlState::QUERY_CANCELED {
        "a statement ran past statement_timeout (raise it with options=-c statement_timeout=… in the URL)"
    } else if *code == SqlState::LOCK_NOT_AVAILABLE {
        "a table lock was not granted within lock_timeout; another session holds it"
    } else if code.code().starts_with("57P") {
        "the server is restarting or shutting down; try again shortly"
    } else {
        return Hint(None);
    }))
}

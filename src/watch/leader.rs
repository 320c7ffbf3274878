//! Leadership: whether this replica holds the ledger's writer lock, and so reconciles.
//!
//! Every replica runs the whole daemon (manifests, health, metrics); only the one holding the
//! lock reconciles. At start, a lock held elsewhere stops the daemon unless `--standby`; a
//! replica standing by waits on the lock itself where the ledger allows it (PostgreSQL: a
//! blocking request on a session of its own, so that it leads the moment the old leader's
//! session ends; `daemon::Daemon::wait_for_lock`), and otherwise tries to take it every
//! `--takeover-every`, which also paces new attempts after a wait failed. A leader that loses the
//! lock (its database session ended, or another replica fenced it off) stops its run at once,
//! lets go of the ledger and stands by like the others; it may well take the lock back.
//! Standing by because another replica leads is healthy; standing by because the ledger cannot
//! be reached is not, and readiness says so (`daemon::react`).

use crate::engine::Engine;
use crate::ledger::LedgerError;

/// How an attempt to take the lock went.
#[derive(Debug)]
pub(super) enum Attempt {
    /// This replica leads now, holding the lock of the ledger named.
    Leading(String),
    /// Another replica holds the lock.
    Standing(LedgerError),
    /// The ledger could not be reached, or refused us otherwise.
    Failing(LedgerError),
}

/// Tries to take the writer lock.
pub(super) async fn attempt(engine: &mut Engine) -> Attempt {
    match engine.lead("watch").await {
        Ok(()) => Attempt::Leading(
            engine
                .writer()
                .map(|w| w.location().to_owned())
                .unwrap_or_default(),
        ),
        Err(e @ LedgerError::Locked { .. }) => Attempt::Standing(e),
        Err(e) => Attempt::Failing(e),
    }
}

/// The first attempt, at start: a lock held elsewhere is fatal unless `standby`; a ledger that
/// cannot be reached now is waited for, unready; anything else (a wrong password, a database
/// holding something else) needs a new deployment, not a retry, and is fatal.
pub(super) async fn first(engine: &mut Engine, standby: bool) -> Result<Attempt, LedgerError> {
    match attempt(engine).await {
        Attempt::Standing(e) if !standby => Err(e),
        Attempt::Failing(e) if !matches!(e, LedgerError::Unavailable { .. }) => Err(e),
        attempt => Ok(attempt),
    }
}

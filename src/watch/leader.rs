//! Leadership: whether this replica holds the ledger's writer lock, and so reconciles.
//!
//! Every replica runs the whole daemon (manifests, health, metrics); only the one holding the
//! lock reconciles. At start, a lock held elsewhere stops the daemon unless `--standby`; a
//! replica standing by waits on the lock itself where the ledger allows it (PostgreSQL: a
//! blocking request on a session of its own, so that it leads the moment the old leader's
//! session ends), and otherwise tries to take it every `--takeover-every`, which also paces
//! new attempts after a wait failed. A leader that loses the
//! lock (its database session ended, or another replica fenced it off) stops its run at once,
//! lets go of the ledger and stands by like the others; it may well take the lock back.
//! Standing by because another replica leads is healthy; standing by because the ledger cannot
//! be reached is not, and readiness says so.

use super::health::{Health, LastRun};
use crate::engine::Engine;
use crate::ledger::{LedgerError, LockLoss};
use crate::metrics::Metrics;

/// How an attempt to take the lock went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// This replica leads now.
    Leading,
    /// Another replica holds the lock.
    Standing,
    /// The ledger could not be reached (or refused us otherwise).
    Failing,
}

#[derive(Default)]
pub struct Leadership {
    /// Why this replica last stood by, so that each reason is logged once.
    standing: Option<String>,
}

impl Leadership {
    /// The first attempt, at start: a lock held elsewhere is fatal unless `standby`; a ledger
    /// that cannot be reached now is waited for, unready; anything else (a wrong password, a
    /// database holding something else) needs a new deployment, not a retry, and is fatal.
    pub async fn first(
        &mut self,
        engine: &mut Engine,
        standby: bool,
        metrics: &Metrics,
        health: &Health,
    ) -> Result<Attempt, LedgerError> {
        match engine.lead("watch").await {
            Ok(()) => {
                self.leading(engine, metrics);
                Ok(Attempt::Leading)
            }
            Err(e @ LedgerError::Locked { .. }) if standby => {
                self.stand_by(&e, metrics, health);
                Ok(Attempt::Standing)
            }
            Err(e @ LedgerError::Unavailable { .. }) => {
                self.stand_by(&e, metrics, health);
                Ok(Attempt::Failing)
            }
            Err(e) => Err(e),
        }
    }

    /// A later attempt. A failure is logged (each reason once); one that is not another
    /// replica's lock makes this replica unready.
    pub async fn try_take(
        &mut self,
        engine: &mut Engine,
        metrics: &Metrics,
        health: &Health,
    ) -> Attempt {
        match engine.lead("watch").await {
            Ok(()) => {
                self.took(engine, metrics, health);
                Attempt::Leading
            }
            Err(e) => {
                self.stand_by(&e, metrics, health);
                match e {
                    LedgerError::Locked { .. } => Attempt::Standing,
                    _ => Attempt::Failing,
                }
            }
        }
    }

    /// This replica leads now: it took the lock, or the lock it waited for came to it.
    pub fn took(&mut self, engine: &Engine, metrics: &Metrics, health: &Health) {
        health.last_run(LastRun::Fine);
        self.leading(engine, metrics);
    }

    /// Waiting for the lock failed (the connection to the ledger was lost): unready until an
    /// attempt reaches the ledger again.
    pub fn wait_failed(&mut self, why: &LedgerError, metrics: &Metrics, health: &Health) {
        self.stand_by(why, metrics, health);
    }

    /// Notes that the lock was lost.
    pub fn lost(&mut self, why: Option<LockLoss>, metrics: &Metrics) {
        metrics.leader(false);
        let why = why.map_or_else(
            || "the ledger writer stopped".into(),
            |why| crate::errors::chain(&why),
        );
        tracing::warn!(reason = %why, "no longer leading; standing by");
        self.standing = None;
    }

    fn leading(&mut self, engine: &Engine, metrics: &Metrics) -> bool {
        metrics.leader(true);
        let at = engine
            .writer()
            .map(|w| w.location().to_owned())
            .unwrap_or_default();
        tracing::info!(ledger = %at, "leading: holding the ledger's writer lock");
        self.standing = None;
        true
    }

    fn stand_by(&mut self, why: &LedgerError, metrics: &Metrics, health: &Health) {
        metrics.leader(false);
        let text = crate::errors::chain(why);
        let locked = matches!(why, LedgerError::Locked { .. });
        health.last_run(if locked {
            LastRun::Fine
        } else {
            LastRun::Blocked(text.clone())
        });
        if self.standing.as_deref() != Some(text.as_str()) {
            if locked {
                tracing::info!(reason = %text, "standing by");
            } else {
                tracing::error!(reason = %text, "standing by: cannot take the ledger's lock");
            }
            self.standing = Some(text);
        }
    }
}

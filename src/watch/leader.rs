//! Leadership: whether this replica holds the ledger's writer lock, and so reconciles.
//!
//! Every replica runs the whole daemon (manifests, health, metrics); only the one holding the
//! lock reconciles. At start, a lock held elsewhere stops the daemon unless `--standby`; a
//! replica standing by tries to take the lock every `--takeover-every`. A leader that loses the
//! lock (its database session ended, or another replica fenced it off) stops its run at once,
//! lets go of the ledger and stands by like the others; it may well take the lock back.

use std::time::Duration;

use crate::ledger::{LedgerError, Location, Writer};
use crate::metrics::Metrics;

pub struct Leadership {
    location: Location,
    pub every: Duration,
    /// Why this replica last stood by, so that each reason is logged once.
    standing: Option<String>,
}

impl Leadership {
    pub fn new(location: Location, every: Duration) -> Leadership {
        Leadership {
            location,
            every,
            standing: None,
        }
    }

    /// The first attempt, at start: a lock held elsewhere is fatal unless `standby`, and so is
    /// any other failure (a wrong URL or password needs a new deployment, not a retry).
    pub async fn first(
        &mut self,
        standby: bool,
        metrics: &Metrics,
    ) -> Result<Option<Writer>, LedgerError> {
        match Writer::open(&self.location, "watch").await {
            Ok(writer) => Ok(Some(self.leading(writer, metrics))),
            Err(e @ LedgerError::Locked { .. }) if standby => {
                self.stand_by(&e, metrics);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A later attempt: failures are logged (each reason once) and tried again later.
    pub async fn try_take(&mut self, metrics: &Metrics) -> Option<Writer> {
        match Writer::open(&self.location, "watch").await {
            Ok(writer) => Some(self.leading(writer, metrics)),
            Err(e) => {
                self.stand_by(&e, metrics);
                None
            }
        }
    }

    /// Notes that the lock was lost.
    pub fn lost(&mut self, writer: &Writer, metrics: &Metrics) {
        metrics.leader(false);
        let why = writer
            .lost_reason()
            .unwrap_or_else(|| "the ledger writer stopped".into());
        tracing::warn!(reason = %why, "no longer leading; standing by");
        self.standing = None;
    }

    fn leading(&mut self, writer: Writer, metrics: &Metrics) -> Writer {
        metrics.leader(true);
        tracing::info!(
            ledger = writer.location(),
            "leading: holding the ledger's writer lock"
        );
        self.standing = None;
        writer
    }

    fn stand_by(&mut self, why: &LedgerError, metrics: &Metrics) {
        metrics.leader(false);
        let text = why.to_string();
        if self.standing.as_deref() != Some(text.as_str()) {
            match why {
                LedgerError::Locked { .. } => tracing::info!(reason = %text, "standing by"),
                _ => tracing::warn!(reason = %text, "standing by: cannot take the ledger's lock"),
            }
            self.standing = Some(text);
        }
    }
}

//! Making the service match the manifests, durably: `apply` does it once, `watch` again and
//! again, through the same [`Reconciler`].
//!
//! Order of events in one reconcile: the plan is computed from the manifests and a ledger
//! snapshot (a saved plan must agree with it); an audit entry opens; one
//! get_official_account_info call per 50 accounts learns the limits and the declared accounts'
//! own properties (and stops the run at once on bad credentials or an unreachable endpoint);
//! [`own`] decides each account's own call from what it learnt; the executor sends, per
//! account, a creation first, then the removals, then one modify of the properties that
//! differ, then the adds; the summary closes the audit entry. Bad manifests never get this far: loading them is
//! all-or-nothing. See [`executor`] for what a crash or a stop signal may lose.
//!
//! Nothing here knows about terminals or the command line: progress reaches the caller through
//! an [`Observer`], and how a run behaves (pace, patience, guards) comes in a [`Policy`].

mod account;
pub(crate) mod decide;
mod executor;
mod observe;
mod outline;
mod own;
mod probe;
pub(crate) mod read;
mod reconcile;
mod refresh;
mod summary;
mod work;

#[cfg(test)]
pub(crate) mod tests;

use std::time::Duration;

pub(crate) use decide::RetryPolicy;
pub(crate) use observe::{Counts, Nobody, Observer};
pub(crate) use own::OwnResult;
pub(crate) use reconcile::{Job, Reconciler};
#[cfg(test)]
pub(crate) use refresh::{AccountRead, RefreshFailure};
pub(crate) use refresh::{Refresh, RefreshSummary};
pub use summary::RunSummary;
pub(crate) use summary::{
    AccountProperties, AccountStatus, FailedSubscriber, RunResult, Summary, Trigger,
};
#[cfg(test)]
pub(crate) use summary::{AccountSummary, Totals};

use crate::backoff::Backoff;
use crate::ledger::{LedgerError, RecordError};
use crate::plan::{PlanOptions, PlanSummary, StalePlan};
use crate::tencent::ApiError;

/// How runs behave. `apply` and `watch` differ only in these named fields (see
/// `settings::Purpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Most calls in flight at once.
    pub(crate) concurrency: usize,
    /// Retries of one call.
    pub(crate) retry: RetryPolicy,
    /// How long requests in flight may take to finish after a stop signal or a fatal answer.
    pub(crate) drain: Duration,
    /// When set, a subscriber whose add failed is retried only once its pause has passed (the
    /// daemon); otherwise at every run (`apply`, which a person runs on purpose).
    pub(crate) retry_backoff: Option<Backoff>,
    /// Open an audit entry even for a run with nothing to send (`apply`: yes; `watch`, which
    /// resyncs every few minutes: no).
    pub(crate) audit_idle_runs: bool,
    /// The prune guards.
    pub(crate) prune: PlanOptions,
    /// The most subscribers an account is believed to hold when the service does not say
    /// (bounds a live list).
    pub(crate) max_subscribers: u64,
}

/// A run refused before anything happened: nothing was sent or recorded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Stale(#[from] StalePlan),
}

/// Why a run stopped before finishing its plan.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Stop {
    /// An answer no retry can fix (credentials, permissions), or an endpoint that never
    /// answered.
    #[error("{prefix}{0}", prefix = if .0.is_answer() { "stopped by the service's answer: " } else { "" })]
    Fatal(ApiError),
    /// The ledger could not record an outcome.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// What one reconcile did.
#[derive(Debug)]
pub(crate) struct Reconciled {
    /// The plan's counts, before retries not yet due were deferred.
    pub(crate) plan: PlanSummary,
    /// Retries left for a later run because their pause has not passed.
    pub(crate) deferred: u64,
    /// The plan's warnings, each prefixed with its account.
    pub(crate) warnings: Vec<String>,
    pub(crate) summary: Summary,
    pub(crate) stop: Option<Stop>,
}

/// How a run ended, as every caller (exit codes, readiness, logs) reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Everything planned is done.
    Converged,
    /// Finished, but some subscribers could not be added or removed.
    Partial,
    /// A stop signal ended it early.
    Interrupted,
    /// A fatal answer, an unreachable endpoint or the ledger ended it; the reason.
    Stopped(String),
}

impl Reconciled {
    pub(crate) fn ending(&self) -> Ending {
        match (&self.stop, self.summary.interrupted, self.summary.result) {
            (Some(stop), _, _) => Ending::Stopped(crate::errors::chain(stop)),
            (None, true, _) => Ending::Interrupted,
            (None, false, RunResult::Converged) => Ending::Converged,
            (None, false, _) => Ending::Partial,
        }
    }
}

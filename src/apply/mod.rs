//! Making the service match the manifests, durably: `apply` does it once, `watch` again and
//! again, through the same [`Reconciler`].
//!
//! Order of events in one reconcile: the plan is computed from the manifests and a ledger
//! snapshot (a saved plan must agree with it); an audit entry opens; one
//! get_official_account_info call per 50 accounts learns the limits (and stops the run at once
//! on bad credentials or an unreachable endpoint); the executor sends the adds; the summary
//! closes the audit entry. Bad manifests never get this far: loading them is all-or-nothing.
//! See [`executor`] for what a crash or a stop signal may lose.

mod account;
pub mod decide;
mod executor;
mod observe;
mod probe;
mod progress;
mod read;
mod reconcile;
mod refresh;
mod summary;
mod work;

use std::time::Duration;

pub use decide::RetryPolicy;
pub use observe::{Both, Counts, Nobody, Observer};
pub use progress::Progress;
pub use reconcile::{Job, Reconciler};
pub use refresh::{RefreshFailure, RefreshSummary};
pub use summary::{
    AccountStatus, AccountSummary, FailedSubscriber, RunResult, Summary, Totals, Trigger,
};
pub use work::{End, Known, Report, Tally, Work};

use crate::ledger::{LedgerError, RecordError};
use crate::plan::{PlanOptions, PlanSummary, StalePlan};
use crate::settings::Output;
use crate::tencent::ApiError;

/// The documented limit is 200 calls per second per command; staying just under it means a run
/// never provokes a rate-limit answer by itself.
pub const DEFAULT_QPS: u32 = 190;

/// Calls in flight needed to keep `qps` calls a second going (Little's law: in flight = rate ×
/// round trip), for round trips up to a second: a far region (250 ms) needs 48 at 190/s. Calls
/// beyond the rate only wait for the limiter, so the bound costs nothing on short paths.
pub fn default_concurrency(qps: u32) -> usize {
    (qps as usize).clamp(8, 1024)
}

#[derive(Debug, Clone)]
pub struct Options {
    pub qps: u32,
    pub concurrency: usize,
    pub policy: RetryPolicy,
    /// How long requests in flight may take to finish after a stop signal or a fatal answer.
    pub drain: Duration,
    /// The PATH arguments, recorded with the plan.
    pub manifest_paths: Vec<String>,
    /// When set, a subscriber whose add failed is retried only once its pause has passed (the
    /// daemon); otherwise at every run (`apply`, which a person runs on purpose).
    pub retry_backoff: Option<RetryBackoff>,
    /// Open an audit entry even for a run with nothing to send (`apply`: yes; `watch`, which
    /// resyncs every few minutes: no).
    pub audit_idle_runs: bool,
    /// The prune guards.
    pub plan: PlanOptions,
    pub output: Output,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            qps: DEFAULT_QPS,
            concurrency: default_concurrency(DEFAULT_QPS),
            policy: RetryPolicy::default(),
            drain: Duration::from_secs(5),
            manifest_paths: Vec::new(),
            retry_backoff: None,
            audit_idle_runs: true,
            plan: PlanOptions::default(),
            output: Output::default(),
        }
    }
}

/// Pauses between retries of a subscriber whose add failed: doubling from `first`, at most
/// `longest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBackoff {
    pub first: Duration,
    pub longest: Duration,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff {
            first: Duration::from_secs(60),
            longest: Duration::from_secs(6 * 3600),
        }
    }
}

impl RetryBackoff {
    /// The pause after `attempts` failed attempts.
    pub fn after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.first
            .saturating_mul(1u32 << doublings)
            .min(self.longest)
    }
}

/// A run refused before anything happened: nothing was sent or recorded.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Stale(#[from] StalePlan),
}

/// Why a run stopped before finishing its plan.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Stop {
    /// An answer no retry can fix (credentials, permissions), or an endpoint that never
    /// answered.
    #[error("{0}")]
    Fatal(ApiError),
    /// The ledger could not record an outcome.
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// What one reconcile did.
#[derive(Debug)]
pub struct Reconciled {
    /// The plan's counts, before retries not yet due were deferred.
    pub plan: PlanSummary,
    /// Retries left for a later run because their pause has not passed.
    pub deferred: u64,
    /// The plan's warnings, each prefixed with its account.
    pub warnings: Vec<String>,
    pub summary: Summary,
    pub stop: Option<Stop>,
    /// False when there was nothing to send and no audit entry was written.
    pub recorded: bool,
}

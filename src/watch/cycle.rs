//! The steps of a daemon's cycle, each returning what it found or did as a value: reading the
//! manifests ([`read`]), reconciling the set in force ([`reconcile`]), and reading the ledger's
//! counts ([`counts`]). None of them logs an outcome, counts a metric, tells a notification
//! sink or changes readiness: the daemon does all of that in one place, from these values
//! (`daemon::react`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::schedule::CycleEnd;
use crate::apply::{Ending, Job, Reconciled, RunError, Trigger};
use crate::engine::Engine;
use crate::ledger::{AccountOverview, LedgerError};
use crate::manifest::{self, Diagnostic, Limits, ManifestSet};
use crate::task::blocking;

/// What reading the manifests gave.
pub(super) enum Reading {
    /// The files are exactly those the valid set in force was read from: nothing was read.
    AsInForce,
    /// A valid set.
    Valid(ManifestSet),
    /// The manifests were refused, with every problem found.
    Invalid(Vec<Diagnostic>),
    /// This machine could not read them now (out of file descriptors, say): not the
    /// manifests' fault. The first problem met.
    Unreadable(String),
}

/// Reads the manifests under `paths`, unless `in_force` (the last valid set), while `valid`,
/// was read from exactly the files they hold now.
pub(super) async fn read(
    paths: &[PathBuf],
    limits: Limits,
    in_force: Option<Arc<ManifestSet>>,
    valid: bool,
) -> Reading {
    let paths = paths.to_vec();
    let read = blocking(move || {
        if let Some(set) = in_force.as_deref().filter(|_| valid)
            && manifest::unchanged(&paths, set)
        {
            return Ok(None);
        }
        // What did not change is taken from the set in force, not read again: one copy of
        // each account's subscribers, and only the changed files' reading.
        manifest::reload(&paths, &limits, in_force.as_deref()).map(Some)
    })
    .await;
    match read {
        Ok(Ok(None)) => Reading::AsInForce,
        Ok(Ok(Some(set))) => Reading::Valid(set),
        Ok(Err(unread)) if unread.is_local() => {
            let first = unread.problems.iter().find(|p| p.local);
            Reading::Unreadable(first.map(ToString::to_string).unwrap_or_default())
        }
        Ok(Err(invalid)) => Reading::Invalid(invalid.problems),
        Err(e) => Reading::Unreadable(format!("{e:#}")),
    }
}

/// What one reconcile of the set in force did.
pub(super) struct Ran {
    pub trigger: Trigger,
    pub revision: Option<String>,
    /// The digest of the set reconciled.
    pub digest: String,
    /// From the start of the cycle.
    pub took: Duration,
    /// What the run did, or why it could not start.
    pub result: Result<Reconciled, RunError>,
    /// The writer lock was lost during the run: another replica may lead already.
    pub lost_lead: bool,
    /// The ledger's serial right after a run that converged with nothing held for later.
    pub settled_at: Option<u64>,
}

impl Ran {
    /// How the cycle ended, as far as the schedule cares.
    pub(super) fn end(&self) -> CycleEnd {
        match &self.result {
            _ if self.lost_lead => CycleEnd::LostLead,
            Err(_) => CycleEnd::Fatal,
            Ok(reconciled) => match reconciled.ending() {
                Ending::Stopped(_) => CycleEnd::Fatal,
                _ => CycleEnd::Done,
            },
        }
    }
}

/// Runs `job` through `engine`, which leads; `beat` is called every `beat_every` while the
/// run goes on (a long reconcile is not a stuck loop). A lost lock stops the run at once, as
/// does `stop`. `started`: when the cycle began.
pub(super) async fn reconcile(
    engine: &Engine,
    job: Job,
    started: Instant,
    stop: &CancellationToken,
    beat_every: Duration,
    mut beat: impl FnMut(),
) -> Ran {
    let (trigger, revision) = (job.trigger, job.revision.clone());
    let digest = job.manifests.digest.clone();
    let lost = engine
        .writer()
        .map(|w| w.lost().clone())
        .unwrap_or_default();
    let run_stop = stop.child_token();
    let result = {
        let run = engine.reconcile(job, &run_stop);
        tokio::pin!(run);
        let mut ticks = tokio::time::interval(beat_every);
        loop {
            tokio::select! {
                result = &mut run => break result,
                _ = ticks.tick() => beat(),
                () = lost.cancelled(), if !run_stop.is_cancelled() => run_stop.cancel(),
            }
        }
    };
    let took = started.elapsed();
    let lost_lead = lost.is_cancelled();
    let converged = result
        .as_ref()
        .is_ok_and(|r| r.ending() == Ending::Converged && r.deferred == 0);
    let settled_at = match converged && !lost_lead {
        true => engine.serial().await.ok(),
        false => None,
    };
    Ran {
        trigger,
        revision,
        digest,
        took,
        result,
        lost_lead,
        settled_at,
    }
}

/// The ledger's per-account counts, when this replica leads with its lock intact.
pub(super) async fn counts(engine: &Engine) -> Option<Result<Vec<AccountOverview>, LedgerError>> {
    if engine.writer().is_none_or(|w| w.lost().is_cancelled()) {
        return None;
    }
    Some(engine.accounts().await)
}

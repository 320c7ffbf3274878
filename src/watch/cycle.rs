//! One cycle of the daemon: read the manifests, and reconcile them when this replica leads.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{BEAT, Daemon};
use crate::apply::{self, Job, Reconciled, Trigger};
use crate::manifest::{self, ManifestSet};
use crate::task::blocking;

impl Daemon {
    /// Reads the manifests and reconciles; returns true when a fatal error stopped the run.
    pub(super) async fn cycle(&mut self, trigger: Trigger, stop: &CancellationToken) -> bool {
        let started = Instant::now();
        let (paths, limits) = (self.settings.paths.clone(), self.settings.limits);
        match blocking(move || manifest::load(&paths, &limits)).await {
            Ok(Ok(set)) => {
                for w in &set.warnings {
                    w.log(tracing::Level::WARN, self.settings.output.json);
                }
                self.health.manifests(Ok(()));
                self.metrics.manifests_valid(true);
                self.metrics.desired(&set.sets);
                let unchanged = self.reconciled.as_deref() == Some(set.digest.as_str());
                if trigger == Trigger::Change && unchanged {
                    tracing::debug!("the manifests did not change");
                    self.current = Some(set);
                    return false;
                }
                self.current = Some(set);
            }
            Ok(Err(invalid)) => {
                for p in &invalid.problems {
                    p.log(tracing::Level::ERROR, self.settings.output.json);
                }
                let n = invalid.problems.len();
                let first = invalid.problems.first().map(ToString::to_string);
                let reason = format!("{n} problems, the first: {}", first.unwrap_or_default());
                tracing::error!(
                    problems = n,
                    "the manifests are invalid; nothing is changed and the last valid set stays in force"
                );
                self.health.manifests(Err(reason));
                self.metrics.manifests_valid(false);
                self.metrics.reconciled("invalid", started.elapsed());
                // A resync or a retry still reconciles the last valid set.
                if trigger == Trigger::Change || trigger == Trigger::Start {
                    return false;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the manifests");
                return false;
            }
        }
        // A replica standing by keeps reading the manifests (for its readiness) and no more.
        if self.reconciler.is_none() {
            return false;
        }
        let Some(set) = self.current.take() else {
            return false;
        };
        let fatal = self.reconcile(&set, trigger, started, stop).await;
        self.current = Some(set);
        fatal
    }

    async fn reconcile(
        &mut self,
        set: &ManifestSet,
        trigger: Trigger,
        started: Instant,
        stop: &CancellationToken,
    ) -> bool {
        if let Some(sandbox) = &self.sandbox {
            sandbox.ensure_accounts(set).await;
        }
        let revision = match &self.settings.revision {
            Some(r) => Some(r.clone()),
            None => {
                let paths = self.settings.paths.clone();
                blocking(move || manifest::git_revision(&paths))
                    .await
                    .ok()
                    .flatten()
            }
        };
        let job = Job {
            manifests: set,
            saved: None,
            revision: revision.clone(),
            trigger,
            refresh: self.refresh_due(set),
        };
        let Some(reconciler) = &self.reconciler else {
            return false;
        };
        // A lost lock stops the run at once: another replica may be leading already.
        let run_stop = stop.child_token();
        let lost = reconciler.writer().lost().clone();
        // Beat while the run goes on: a long reconcile is not a stuck loop.
        let result = {
            let run = reconciler.reconcile(job, &run_stop);
            tokio::pin!(run);
            let mut beat = tokio::time::interval(BEAT);
            loop {
                tokio::select! {
                    result = &mut run => break result,
                    _ = beat.tick() => self.health.beat(),
                    () = lost.cancelled(), if !run_stop.is_cancelled() => run_stop.cancel(),
                }
            }
        };
        let took = started.elapsed();
        let fatal = match result {
            Ok(reconciled) => {
                log_reconciled(&reconciled, trigger, revision.as_deref(), took);
                self.metrics
                    .reconciled(reconciled.summary.result.name(), took);
                match &reconciled.stop {
                    Some(stop) => {
                        self.health.stopped(Some(stop.to_string()));
                        matches!(stop, apply::Stop::Fatal(_) | apply::Stop::Record(_))
                    }
                    None => {
                        self.health.stopped(None);
                        self.metrics
                            .succeeded(crate::clock::unix_millis() as f64 / 1000.0);
                        if !reconciled.summary.interrupted {
                            self.reconciled = Some(set.digest.clone());
                        }
                        false
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, %trigger, "the reconcile could not start");
                self.health.stopped(Some(e.to_string()));
                self.metrics.reconciled("failed", took);
                true
            }
        };
        self.read_ledger_counts().await;
        fatal
    }
}

/// One event per reconcile, with what a log collector needs to follow the daemon.
fn log_reconciled(r: &Reconciled, trigger: Trigger, revision: Option<&str>, took: Duration) {
    for warning in &r.warnings {
        tracing::warn!("{warning}");
    }
    let t = &r.summary.totals;
    tracing::info!(
        %trigger,
        revision = revision.unwrap_or(""),
        result = r.summary.result.name(),
        interrupted = r.summary.interrupted,
        plan_add = r.plan.add,
        plan_retry = r.plan.retry,
        plan_unmanaged = r.plan.unmanaged,
        plan_remove = r.plan.remove,
        held_back = r.plan.held_back,
        deferred = r.deferred,
        removed = t.removed,
        refreshed = r.summary.refresh.as_ref().map_or(0, |f| f.accounts),
        drift_added = r.summary.refresh.as_ref().map_or(0, |f| f.out_of_band_added),
        drift_removed = r.summary.refresh.as_ref().map_or(0, |f| f.out_of_band_removed),
        added = t.added,
        already_subscribed = t.already_subscribed,
        failed = t.failed,
        not_added_limit = t.not_added_limit,
        requests = r.summary.requests,
        duration_ms = took.as_millis() as u64,
        error = r.summary.error.as_deref().unwrap_or(""),
        "reconciled"
    );
}

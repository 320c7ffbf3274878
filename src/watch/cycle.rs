//! One cycle of the daemon: read the manifests, and reconcile them when this replica leads.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::daemon::{BEAT, Daemon};
use super::health::LastRun;
use super::schedule::Ended;
use crate::apply::{Ending, Job, Reconciled, RunError, Stop, Trigger};
use crate::manifest::{self, ManifestSet};
use crate::notifications::event;
use crate::task::blocking;
use crate::tencent::ErrorClass;

impl Daemon {
    /// Reads the manifests and reconciles; says how the cycle ended.
    pub(super) async fn cycle(&mut self, trigger: Trigger, stop: &CancellationToken) -> Ended {
        let started = Instant::now();
        if self.on_disk_as_read().await {
            // The set in force is what the files still hold: nothing to read again.
            let unchanged =
                self.reconciled.as_deref() == self.current.as_ref().map(|s| s.digest.as_str());
            if trigger == Trigger::Change && unchanged {
                tracing::debug!("the manifests did not change");
                return Ended::Done;
            }
            return self.reconcile_current(trigger, started, stop).await;
        }
        let (paths, limits) = (self.paths.clone(), self.limits);
        // What did not change is taken from the set in force, not read again: one copy of
        // each account's subscribers, and only the changed files' reading.
        let previous = self.current.clone();
        match blocking(move || manifest::reload(&paths, &limits, previous.as_deref())).await {
            Ok(Ok(set)) => {
                if self.validity.valid() {
                    tracing::info!("the manifests are valid again");
                    self.announce.manifests_valid(self.leading());
                }
                let (fresh, _) = self
                    .manifest_warnings
                    .update(set.warnings.iter().map(ToString::to_string));
                for w in set
                    .warnings
                    .iter()
                    .filter(|w| fresh.contains(&w.to_string()))
                {
                    w.log(tracing::Level::WARN, self.json_logs);
                }
                self.health.manifests(Ok(()));
                self.metrics.manifests_valid(true);
                self.metrics.desired(&set.sets);
                let unchanged = self.reconciled.as_deref() == Some(set.digest.as_str());
                self.current = Some(Arc::new(set));
                if trigger == Trigger::Change && unchanged {
                    tracing::debug!("the manifests did not change");
                    return Ended::Done;
                }
            }
            Ok(Err(unread)) if unread.is_local() => {
                // This machine's trouble (out of file descriptors, say), not the manifests':
                // the set in force stays, and so does what readiness said about it.
                let first = unread
                    .problems
                    .iter()
                    .find(|p| p.local)
                    .map(ToString::to_string);
                tracing::error!(
                    problem = first.unwrap_or_default(),
                    "cannot read the manifests on this machine now; the last valid set stays in force"
                );
                return Ended::Unread;
            }
            Ok(Err(invalid)) => {
                let n = invalid.problems.len();
                let first = invalid
                    .problems
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let reason = format!("{}, the first: {first}", event::count(n, "problem"));
                // The same problems at every resync are news only once.
                let news = self
                    .validity
                    .invalid(invalid.problems.iter().map(ToString::to_string).collect());
                if news {
                    log_problems(&invalid.problems, self.json_logs);
                } else {
                    tracing::debug!(problems = n, "the manifests are still invalid");
                }
                // The leader fails the revision's commit status, as apply does.
                let leading = self.leading();
                let revision = if leading {
                    self.engine.revision(&self.paths).await
                } else {
                    None
                };
                self.announce
                    .manifests_invalid(leading, news, revision.as_deref(), n, &first);
                self.health.manifests(Err(reason));
                self.metrics.manifests_valid(false);
                self.metrics.reconciled("invalid", started.elapsed());
                // A resync or a retry still reconciles the last valid set; a change that was
                // refused makes the next change wait a little (a tree that churns).
                if matches!(trigger, Trigger::Change | Trigger::Start) {
                    return Ended::Refused;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the manifests");
                return Ended::Unread;
            }
        }
        self.reconcile_current(trigger, started, stop).await
    }

    /// True when the valid set in force was read from exactly the files the paths hold now,
    /// unchanged (see `manifest::unchanged`).
    async fn on_disk_as_read(&self) -> bool {
        let Some(current) = self.current.clone().filter(|_| self.validity.is_valid()) else {
            return false;
        };
        let paths = self.paths.clone();
        blocking(move || manifest::unchanged(&paths, &current))
            .await
            .unwrap_or(false)
    }

    /// Reconciles the set in force, unless this is a resync of a set already converged
    /// against a ledger that has not changed since: then there is nothing to plan.
    async fn reconcile_current(
        &mut self,
        trigger: Trigger,
        started: Instant,
        stop: &CancellationToken,
    ) -> Ended {
        // A replica standing by keeps reading the manifests (for its readiness) and no more.
        if self.engine.writer().is_none() {
            return Ended::Done;
        }
        let Some(set) = self.current.clone() else {
            return Ended::Done;
        };
        if trigger == Trigger::Resync && !self.refresh_due(&set) {
            let serial = self.engine.serial().await.ok();
            if serial.is_some() && self.settled == serial.map(|s| (set.digest.clone(), s)) {
                tracing::debug!(
                    "resync: the set in force has converged and the ledger has not changed since"
                );
                // Still converged: as good as a successful reconcile, for the staleness alert.
                self.metrics
                    .succeeded(crate::clock::unix_millis() as f64 / 1000.0);
                return Ended::Done;
            }
        }
        self.reconcile(set, trigger, started, stop).await
    }

    async fn reconcile(
        &mut self,
        set: Arc<ManifestSet>,
        trigger: Trigger,
        started: Instant,
        stop: &CancellationToken,
    ) -> Ended {
        let Some(lost) = self.engine.writer().map(|w| w.lost().clone()) else {
            return Ended::Done;
        };
        let revision = self.engine.revision(&self.paths).await;
        // Pending once per revision: a resync of a revision already told is not news.
        self.announce.run_started(revision.as_deref());
        let refresh = self.refresh_due(&set);
        let digest = set.digest.clone();
        let job = Job {
            manifests: set,
            manifest_paths: self.paths.iter().map(|p| p.display().to_string()).collect(),
            saved: None,
            revision: revision.clone(),
            trigger,
            refresh,
        };
        // A lost lock stops the run at once: another replica may be leading already.
        let run_stop = stop.child_token();
        // Beat while the run goes on: a long reconcile is not a stuck loop.
        let result = {
            let run = self.engine.reconcile(job, &run_stop);
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
        let ended = match result {
            Ok(reconciled) => {
                let (fresh, gone) = self.plan_warnings.update(reconciled.warnings.clone());
                for warning in fresh {
                    tracing::warn!("{warning}");
                }
                if gone > 0 {
                    tracing::info!(count = gone, "earlier warnings no longer apply");
                }
                log_reconciled(&reconciled, trigger, revision.as_deref(), took);
                if reconciled.ending() != Ending::Interrupted {
                    self.announce.run_ended(&reconciled, revision.as_deref());
                }
                self.metrics
                    .reconciled(reconciled.summary.result.name(), took);
                match reconciled.ending() {
                    _ if lost.is_cancelled() => Ended::LostLead,
                    Ending::Stopped(why) => {
                        self.health
                            .last_run(last_run(reconciled.stop.as_ref(), why));
                        Ended::Fatal
                    }
                    ending => {
                        self.health.last_run(LastRun::Fine);
                        self.metrics
                            .succeeded(crate::clock::unix_millis() as f64 / 1000.0);
                        // Converged with nothing held for later: a resync has nothing to do
                        // until the manifests or the ledger change.
                        self.settled = match (&ending, reconciled.deferred) {
                            (Ending::Converged, 0) => {
                                self.engine.serial().await.ok().map(|s| (digest.clone(), s))
                            }
                            _ => None,
                        };
                        if ending != Ending::Interrupted {
                            self.reconciled = Some(digest);
                        }
                        Ended::Done
                    }
                }
            }
            Err(_) if lost.is_cancelled() => Ended::LostLead,
            Err(e) => {
                let why = crate::errors::chain(&e);
                tracing::error!(error = %why, %trigger, "the reconcile could not start");
                self.announce.not_started(revision.as_deref(), &why);
                let blocked = match &e {
                    RunError::Ledger(_) | RunError::Stale(_) => LastRun::Blocked(why),
                };
                self.health.last_run(blocked);
                self.metrics.reconciled("failed", took);
                Ended::Fatal
            }
        };
        self.read_ledger_counts().await;
        ended
    }
}

impl Daemon {
    /// True while this replica holds the ledger's lock: it reconciles, and it alone tells.
    pub(super) fn leading(&self) -> bool {
        self.engine.writer().is_some()
    }
}

/// Logs the manifests' problems: the first [`MAX_LOGGED_PROBLEMS`] and how many more, so that
/// a tree full of bad files costs a few lines, not one per file.
fn log_problems(problems: &[crate::manifest::Diagnostic], json: bool) {
    for p in problems.iter().take(MAX_LOGGED_PROBLEMS) {
        p.log(tracing::Level::ERROR, json);
    }
    let more = problems.len().saturating_sub(MAX_LOGGED_PROBLEMS);
    if more > 0 {
        tracing::error!(
            more,
            "... and {} (`subsync validate` lists them all)",
            event::count(more, "more problem")
        );
    }
    tracing::error!(
        problems = problems.len(),
        "the manifests are invalid; nothing is changed and the last valid set stays in force"
    );
}

/// Problems of an invalid set logged, at most.
pub const MAX_LOGGED_PROBLEMS: usize = 20;

/// Readiness after a run that `stop` ended: an unreachable service passes by itself; refused
/// credentials, a refused app or a ledger that cannot record need someone to act.
fn last_run(stop: Option<&Stop>, why: String) -> LastRun {
    match stop {
        Some(Stop::Fatal(e)) if e.class() == ErrorClass::Unreachable => LastRun::Degraded(why),
        _ => LastRun::Blocked(why),
    }
}

/// One event per account that changed, then one per reconcile, with what a log collector
/// needs to follow the daemon.
fn log_reconciled(r: &Reconciled, trigger: Trigger, revision: Option<&str>, took: Duration) {
    for a in &r.summary.accounts {
        let touched = a.added
            + a.removed
            + a.already_subscribed
            + a.recovered
            + a.not_added_limit
            + (a.failed.len() + a.remove_failed.len()) as u64;
        if touched == 0 && a.properties.is_none() {
            continue;
        }
        let properties_set = a.properties.as_ref().map_or(0, |p| p.set());
        tracing::info!(
            account = %a.official_account,
            name = a.name.as_deref().unwrap_or(""),
            status = a.status.name(),
            added = a.added,
            removed = a.removed,
            already_subscribed = a.already_subscribed,
            recovered = a.recovered,
            failed = a.failed.len() as u64,
            remove_failed = a.remove_failed.len() as u64,
            not_added_limit = a.not_added_limit,
            properties_set,
            "account changed"
        );
    }
    let t = &r.summary.totals;
    let message = "reconciled";
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(
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
                recovered = t.recovered,
                failed = t.failed,
                not_added_limit = t.not_added_limit,
                properties_set = t.properties_set,
                created = t.created,
                requests = r.summary.requests,
                duration_ms = took.as_millis() as u64,
                error = r.summary.error.as_deref().unwrap_or(""),
                "{message}"
            )
        };
    }
    // A run a fatal answer stopped needs someone to act: say so at the level that pages.
    if r.stop.is_some() {
        event!(error);
    } else {
        event!(info);
    }
}

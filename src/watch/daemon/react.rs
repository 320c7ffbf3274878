//! The one place where what happened becomes what the daemon says and does next: logs,
//! metrics, notifications (through the [`Announcer`](crate::watch::announce::Announcer)),
//! readiness, the daemon's memory (the set in force, what converged, what was said) and the
//! schedule's next step. It awaits nothing, so each value is acted on whole, in the order the
//! loop met them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Daemon;
use crate::apply::{Ending, Reconciled, Stop, Trigger};
use crate::ledger::{AccountOverview, LedgerError, LockLoss};
use crate::manifest::Diagnostic;
use crate::notifications::event::count;
use crate::settings::SettingsError;
use crate::tencent::ErrorClass;
use crate::watch::cycle::{Ran, Reading};
use crate::watch::health::LastRun;
use crate::watch::leader::Attempt;
use crate::watch::schedule::CycleEnd;

/// Problems of an invalid set logged, at most.
const MAX_LOGGED_PROBLEMS: usize = 20;

/// What happened, as the loop and the steps of a cycle report it.
pub(super) enum Happened {
    /// The first attempt to take the lock, at start.
    Started(Attempt),
    /// A later attempt, by a replica standing by.
    TakenOver(Attempt),
    /// The wait for the lock ended: the lock came (to the ledger named), or the wait was
    /// withdrawn or failed.
    LockCame(Result<String, super::Waited>),
    /// The lock was lost; why, when the writer knows.
    LeadLost(Option<LockLoss>),
    /// Something under the watched paths changed (`key`: the key file).
    Changed { key: bool },
    /// The watches were re-resolved: what is watched now when it moved, or why watching
    /// failed. `reading_now`: at the start of a cycle, which reads the manifests anyway.
    Rewatched {
        moved: Result<Option<Vec<PathBuf>>, String>,
        reading_now: bool,
    },
    /// The key file was read again: true when the key changed and is used from now on.
    KeyReread(Result<bool, SettingsError>),
    /// The manifests were read (`revision`: of refused manifests, when leading), `took`
    /// since the cycle began.
    Read {
        reading: Reading,
        revision: Option<String>,
        took: Duration,
    },
    /// The cycle has nothing to reconcile.
    Skipped(Skip),
    /// A reconcile of `revision` starts.
    Reconciling { revision: Option<String> },
    /// A reconcile ended.
    Reconciled(Box<Ran>),
    /// The ledger's per-account counts were read.
    Counted(Result<Vec<AccountOverview>, LedgerError>),
    /// A cycle ended.
    CycleEnded(CycleEnd),
}

/// Why a cycle reconciles nothing.
pub(super) enum Skip {
    /// A change that left the set as it was last reconciled.
    Unchanged,
    /// A resync of a set converged against a ledger that has not changed since.
    StillConverged,
}

impl Daemon {
    /// Acts on what happened.
    pub(super) fn on(&mut self, happened: Happened) {
        let now = Instant::now();
        match happened {
            Happened::Started(attempt) => {
                if let Attempt::Failing(_) = &attempt {
                    self.schedule.ledger_unreachable(now);
                }
                self.lead_attempted(&attempt);
                if let Attempt::Standing(_) = &attempt {
                    self.wait_for_lock();
                }
            }
            Happened::TakenOver(attempt) => {
                self.lead_attempted(&attempt);
                match attempt {
                    Attempt::Leading(_) => self.took_over(now),
                    Attempt::Standing(_) => {
                        self.schedule.stand_by(now);
                        self.wait_for_lock();
                    }
                    Attempt::Failing(_) => self.schedule.ledger_unreachable(now),
                }
            }
            Happened::LockCame(Ok(at)) => {
                self.lead_attempted(&Attempt::Leading(at));
                self.took_over(now);
            }
            // Withdrawn: nothing to say.
            Happened::LockCame(Err(Ok(Ok(None)))) => {}
            // Waiting failed (the connection to the ledger was lost): unready until an
            // attempt reaches the ledger again.
            Happened::LockCame(Err(Ok(Err(e)))) => {
                self.lead_attempted(&Attempt::Failing(e));
                self.schedule.ledger_unreachable(now);
            }
            Happened::LockCame(Err(Ok(Ok(Some(_))))) => {}
            Happened::LockCame(Err(Err(e))) => {
                tracing::error!(error = %e, "the wait for the ledger's lock failed");
                self.schedule.ledger_unreachable(now);
            }
            Happened::LeadLost(why) => {
                self.metrics.leader(false);
                let why = why.map_or_else(
                    || "the ledger writer stopped".into(),
                    |why| crate::errors::chain(&why),
                );
                tracing::warn!(reason = %why, "no longer leading; standing by");
                self.standing = None;
                self.announce.leader_lost();
                self.schedule.stand_by(now);
                self.wait_for_lock();
            }
            Happened::Changed { key: false } => self.schedule.manifests_changed(now),
            Happened::Changed { key: true } => self.schedule.key_changed(now),
            Happened::Rewatched { moved, reading_now } => match moved {
                Ok(Some(watching)) => {
                    tracing::info!(watching = ?crate::logs::Array(&watching), "the watched paths moved");
                    if !reading_now {
                        self.schedule.manifests_changed(now);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "cannot watch the manifests any more"),
            },
            Happened::KeyReread(Ok(true)) => {
                tracing::info!("the secret key changed; using the new one")
            }
            Happened::KeyReread(Ok(false)) => {}
            Happened::KeyReread(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the credentials; keeping the ones in use")
            }
            Happened::Read {
                reading,
                revision,
                took,
            } => self.read(reading, revision, took),
            Happened::Skipped(Skip::Unchanged) => {
                tracing::debug!("the manifests did not change")
            }
            Happened::Skipped(Skip::StillConverged) => {
                tracing::debug!(
                    "resync: the set in force has converged and the ledger has not changed since"
                );
                // Still converged: as good as a successful reconcile, for the staleness alert.
                self.metrics
                    .succeeded(crate::clock::unix_millis() as f64 / 1000.0);
            }
            // Pending once per revision: a resync of a revision already told is not news.
            Happened::Reconciling { revision } => self.announce.run_started(revision.as_deref()),
            Happened::Reconciled(ran) => self.reconciled(*ran),
            Happened::Counted(Ok(accounts)) => {
                self.metrics.ledger(&accounts);
                self.refreshes.learn(
                    accounts
                        .into_iter()
                        .map(|a| (a.official_account, a.refreshed_at)),
                );
            }
            Happened::Counted(Err(e)) => {
                let e = crate::errors::chain(&e);
                tracing::warn!(error = %e, "cannot read the ledger's counts")
            }
            Happened::CycleEnded(end) => {
                if let Some(pause) = self.schedule.finished(now, end) {
                    tracing::warn!("trying again in {}s", pause.as_secs());
                }
                let next = self.in_force.as_ref().and_then(|set| {
                    let accounts = set.sets.iter().map(|s| s.official_account.as_str());
                    self.refreshes.next(accounts, crate::clock::unix_millis())
                });
                self.schedule.refresh_due_at(next.map(|after| now + after));
            }
        }
    }

    /// This replica leads now, having taken the lock or been given it by its wait.
    fn took_over(&mut self, now: Instant) {
        self.health.last_run(LastRun::Fine);
        self.announce.leader_gained();
        // The previous leader may have left anything behind: reconcile in full.
        self.reconciled = None;
        self.settled = None;
        self.schedule.took_over(now);
    }

    /// The lock taken or not: the leader gauge, readiness, and each reason to stand by once.
    fn lead_attempted(&mut self, attempt: &Attempt) {
        let why = match attempt {
            Attempt::Leading(at) => {
                self.metrics.leader(true);
                tracing::info!(ledger = %at, "leading: holding the ledger's writer lock");
                self.standing = None;
                return;
            }
            Attempt::Standing(why) | Attempt::Failing(why) => why,
        };
        self.metrics.leader(false);
        let text = crate::errors::chain(why);
        let locked = matches!(why, LedgerError::Locked { .. });
        self.health.last_run(if locked {
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

    /// The manifests as read: the set in force, readiness, what is logged and told.
    fn read(&mut self, reading: Reading, revision: Option<String>, took: Duration) {
        match reading {
            // The set in force is what the files still hold: nothing new to say.
            Reading::AsInForce => {}
            Reading::Valid(set) => {
                if self.validity.mark_valid() {
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
                self.in_force = Some(Arc::new(set));
            }
            // This machine's trouble (out of file descriptors, say), not the manifests': the
            // set in force stays, and so does what readiness said about it.
            Reading::Unreadable(problem) => tracing::error!(
                problem,
                "cannot read the manifests on this machine now; the last valid set stays in force"
            ),
            Reading::Invalid(problems) => {
                let n = problems.len();
                let first = problems
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                // The same problems at every resync are news only once.
                let news = self
                    .validity
                    .mark_invalid(problems.iter().map(ToString::to_string).collect());
                if news {
                    log_problems(&problems, self.json_logs);
                } else {
                    tracing::debug!(problems = n, "the manifests are still invalid");
                }
                let leading = self.leading();
                self.announce
                    .manifests_invalid(leading, news, revision.as_deref(), n, &first);
                let reason = format!("{}, the first: {first}", count(n, "problem"));
                self.health.manifests(Err(reason));
                self.metrics.manifests_valid(false);
                self.metrics.reconciled("invalid", took);
            }
        }
    }

    /// A reconcile's end: what it changed, logged and told; readiness; what converged.
    fn reconciled(&mut self, ran: Ran) {
        let Ran {
            trigger,
            revision,
            digest,
            took,
            result,
            lost_lead,
            settled_at,
        } = ran;
        let reconciled = match result {
            Ok(reconciled) => reconciled,
            Err(_) if lost_lead => return,
            Err(e) => {
                let why = crate::errors::chain(&e);
                tracing::error!(error = %why, %trigger, "the reconcile could not start");
                self.announce.not_started(revision.as_deref(), &why);
                self.health.last_run(LastRun::Blocked(why));
                self.metrics.reconciled("failed", took);
                return;
            }
        };
        let (fresh, gone) = self.plan_warnings.update(reconciled.warnings.clone());
        for warning in fresh {
            tracing::warn!("{warning}");
        }
        if gone > 0 {
            tracing::info!(count = gone, "earlier warnings no longer apply");
        }
        log_reconciled(&reconciled, trigger, revision.as_deref(), took);
        let ending = reconciled.ending();
        if ending != Ending::Interrupted {
            self.announce.run_ended(&reconciled, revision.as_deref());
        }
        self.metrics
            .reconciled(reconciled.summary.result.name(), took);
        match ending {
            _ if lost_lead => {}
            Ending::Stopped(why) => self
                .health
                .last_run(last_run(reconciled.stop.as_ref(), why)),
            ending => {
                self.health.last_run(LastRun::Fine);
                self.metrics
                    .succeeded(crate::clock::unix_millis() as f64 / 1000.0);
                // Converged with nothing held for later: a resync has nothing to do until the
                // manifests or the ledger change.
                self.settled = settled_at.map(|serial| (digest.clone(), serial));
                if ending != Ending::Interrupted {
                    self.reconciled = Some(digest);
                }
            }
        }
    }
}

/// Logs the manifests' problems: the first [`MAX_LOGGED_PROBLEMS`] and how many more, so that
/// a tree full of bad files costs a few lines, not one per file.
fn log_problems(problems: &[Diagnostic], json: bool) {
    for p in problems.iter().take(MAX_LOGGED_PROBLEMS) {
        p.log(tracing::Level::ERROR, json);
    }
    let more = problems.len().saturating_sub(MAX_LOGGED_PROBLEMS);
    if more > 0 {
        tracing::error!(
            more,
            "... and {} (`subsync validate` lists them all)",
            count(more, "more problem")
        );
    }
    tracing::error!(
        problems = problems.len(),
        "the manifests are invalid; nothing is changed and the last valid set stays in force"
    );
}

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

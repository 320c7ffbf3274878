//! The daemon's loop: it waits for whatever comes first (a signal, a file event, a lost lock,
//! a heartbeat, or the moment the [`Schedule`] says something is due) and does it, one thing
//! at a time.
//!
//! Two halves, as a controller acting on what its reconciler returns: this file chooses and
//! performs the steps (taking the lock, reading the manifests, reconciling: see
//! [`super::cycle`] and [`super::leader`]), each of which returns what happened as a value;
//! [`react`] is the one place that turns those values into logs, metrics, notifications,
//! readiness, the daemon's memory and the schedule's next step. Nothing here logs an outcome
//! or touches a metric; nothing there awaits. Every decision about *when* is the schedule's.
//!
//! The daemon's state is private to this module (and `react`, its child).

mod react;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::WatchConfig;
use super::announce::Announcer;
use super::cycle::{self, Reading};
use super::health::Health;
use super::leader::{self, Attempt};
use super::notices::{Said, Validity};
use super::refreshes::Refreshes;
use super::schedule::{Action, CycleEnd, Schedule};
use super::source::Source;
use crate::apply::{Job, Trigger};
use crate::engine::Engine;
use crate::ledger::{LedgerError, Writer};
use crate::manifest::{Limits, ManifestSet};
use crate::metrics::Metrics;
use crate::notifications::Notifier;
use crate::task::blocking;
use react::{Happened, Skip};

/// The safety net under file events: symlink targets are re-resolved this often.
const REWATCH: Duration = Duration::from_secs(30);
/// How long notifications still queued at shutdown may take.
const NOTIFY_DRAIN: Duration = Duration::from_secs(5);
/// How often the loop proves it is alive.
const BEAT: Duration = Duration::from_secs(5);

pub(crate) struct Daemon {
    engine: Engine,
    paths: Vec<PathBuf>,
    limits: Limits,
    json_logs: bool,
    schedule: Schedule,
    source: Option<Source>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// What is told to the notification sinks.
    announce: Announcer,
    /// Why this replica last stood by, so that each reason is logged once.
    standing: Option<String>,
    /// The last valid set: what resyncs and retries reconcile.
    in_force: Option<Arc<ManifestSet>>,
    /// The digest of the set last reconciled without a fatal stop.
    reconciled: Option<String>,
    /// The digest of the set last converged, with nothing deferred, and the ledger's serial
    /// right after: while both stay, a resync has nothing to plan.
    settled: Option<(String, u64)>,
    refreshes: Refreshes,
    /// Manifest warnings and plan warnings already logged, and the manifests' validity.
    manifest_warnings: Said,
    plan_warnings: Said,
    validity: Validity,
    /// While standing by on a ledger that can wait on its lock: the wait.
    waiter: Option<Waiter>,
}

/// A wait for the writer lock, beside the loop.
struct Waiter {
    stop: CancellationToken,
    task: JoinHandle<Result<Option<Writer>, LedgerError>>,
}

/// What the wait for the lock gave: the writer, `None` when withdrawn, or why it failed.
pub(super) type Waited = Result<Result<Option<Writer>, LedgerError>, tokio::task::JoinError>;

/// How long withdrawing a wait for the lock may take at shutdown.
const WITHDRAW: Duration = Duration::from_secs(10);

impl Daemon {
    /// Takes the lead (or stands by) and starts watching the manifests. Bad settings need a
    /// new deployment, not a retry: they stop the daemon at once.
    pub(crate) async fn start(
        mut engine: Engine,
        config: &WatchConfig,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        notifier: Notifier,
    ) -> anyhow::Result<Daemon> {
        let first = leader::first(&mut engine, config.standby).await?;
        let credentials: Vec<PathBuf> = match &config.run.remote {
            crate::settings::Remote::Service(s) => s.key_file.iter().cloned().collect(),
            crate::settings::Remote::Sandbox { .. } => Vec::new(),
        };
        let ignore: Vec<PathBuf> = config
            .run
            .ledger
            .local_dir()
            .map(PathBuf::from)
            .into_iter()
            .collect();
        let paths = config.paths.clone();
        let source = blocking(move || Source::new(&paths, &credentials, &ignore))
            .await?
            .context("cannot watch the manifests")?;
        tracing::info!(
            paths = ?crate::logs::Array(&config.paths),
            watching = ?crate::logs::Array(&source.watched().collect::<Vec<_>>()),
            "watching the manifests"
        );
        let leading = matches!(first, Attempt::Leading(_));
        let mut daemon = Daemon {
            schedule: Schedule::new(config.timing, Instant::now(), leading),
            engine,
            paths: config.paths.clone(),
            limits: config.run.limits,
            json_logs: config.output.json,
            source: Some(source),
            metrics,
            health,
            announce: Announcer::new(notifier),
            standing: None,
            in_force: None,
            reconciled: None,
            settled: None,
            refreshes: Refreshes::new(config.refresh_every),
            manifest_warnings: Said::default(),
            plan_warnings: Said::default(),
            validity: Validity::default(),
            waiter: None,
        };
        daemon.on(Happened::Started(first));
        Ok(daemon)
    }

    pub(crate) async fn run(&mut self, stop: &CancellationToken) {
        let Some(signals) = self.source.as_ref().map(|s| s.signals.clone()) else {
            return;
        };
        self.count().await;
        let mut rewatch = tokio::time::interval(REWATCH);
        let mut beat = tokio::time::interval(BEAT);
        loop {
            let wake = self.schedule.next_wake();
            let lost = self.engine.writer().map(|w| w.lost().clone());
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = cancelled(lost.as_ref()) => {
                    let why = self.engine.step_down().await;
                    self.on(Happened::LeadLost(why));
                }
                waited = waited(&mut self.waiter) => {
                    self.waiter = None;
                    self.lock_came(waited).await;
                }
                () = signals.manifests.notified() => self.on(Happened::Changed { key: false }),
                () = signals.credentials.notified() => self.on(Happened::Changed { key: true }),
                // The loop's own pulse: it is alive as long as it gets here.
                _ = beat.tick() => self.health.beat(),
                _ = rewatch.tick() => self.rewatch(false).await,
                () = sleep_until(wake), if wake.is_some() => self.act(stop).await,
            }
        }
    }

    /// Does what the schedule says is due now.
    async fn act(&mut self, stop: &CancellationToken) {
        match self.schedule.take_due(Instant::now()) {
            Some(Action::TakeOver) => {
                let attempt = leader::attempt(&mut self.engine).await;
                let leading = matches!(attempt, Attempt::Leading(_));
                self.on(Happened::TakenOver(attempt));
                if leading {
                    self.count().await;
                }
            }
            Some(Action::Cycle {
                trigger,
                reload_key,
            }) => {
                if trigger != Trigger::Start {
                    self.rewatch(true).await;
                }
                if reload_key {
                    let reread = self.engine.reload_key().await;
                    self.on(Happened::KeyReread(reread));
                }
                let end = self.cycle(trigger, stop).await;
                // A cycle builds and drops whole lists; hand what it freed back to the system
                // so that a long-running daemon's footprint follows its work, not its history.
                let _ = blocking(crate::task::release_free_memory).await;
                self.on(Happened::CycleEnded(end));
            }
            None => {}
        }
    }

    /// One cycle: read the manifests, then, when this replica leads and there is something to
    /// do, reconcile the set in force. Each step's value goes through [`Daemon::on`]; this
    /// only chooses the next step.
    async fn cycle(&mut self, trigger: Trigger, stop: &CancellationToken) -> CycleEnd {
        let started = Instant::now();
        let (in_force, valid) = (self.in_force.clone(), self.validity.is_valid());
        let reading = cycle::read(&self.paths, self.limits, in_force, valid).await;
        let end = match &reading {
            Reading::Unreadable(_) => Some(CycleEnd::Unread),
            // A resync or a retry still reconciles the last valid set; a change that was
            // refused makes the next change wait a little (a tree that churns).
            Reading::Invalid(_) if matches!(trigger, Trigger::Change | Trigger::Start) => {
                Some(CycleEnd::Refused)
            }
            _ => None,
        };
        // The leader fails the revision's commit status of refused manifests, as apply does.
        let revision = match &reading {
            Reading::Invalid(_) if self.leading() => self.engine.revision(&self.paths).await,
            _ => None,
        };
        let took = started.elapsed();
        self.on(Happened::Read {
            reading,
            revision,
            took,
        });
        if let Some(end) = end {
            return end;
        }
        let Some(set) = self.in_force.clone() else {
            return CycleEnd::Done;
        };
        if trigger == Trigger::Change && self.reconciled.as_deref() == Some(set.digest.as_str()) {
            self.on(Happened::Skipped(Skip::Unchanged));
            return CycleEnd::Done;
        }
        // A replica standing by reads the manifests (for its readiness) and no more.
        if !self.leading() {
            return CycleEnd::Done;
        }
        let accounts = || set.sets.iter().map(|s| s.official_account.as_str());
        let refresh = self.refreshes.due(accounts(), crate::clock::unix_millis());
        if trigger == Trigger::Resync && !refresh {
            let serial = self.engine.serial().await.ok();
            if serial.is_some_and(|s| self.settled == Some((set.digest.clone(), s))) {
                self.on(Happened::Skipped(Skip::StillConverged));
                return CycleEnd::Done;
            }
        }
        let revision = self.engine.revision(&self.paths).await;
        self.on(Happened::Reconciling {
            revision: revision.clone(),
        });
        let job = Job {
            manifests: set,
            saved: None,
            revision,
            trigger,
            refresh,
        };
        let health = self.health.clone();
        let ran = cycle::reconcile(&self.engine, job, started, stop, BEAT, || health.beat()).await;
        let end = ran.end();
        self.on(Happened::Reconciled(Box::new(ran)));
        self.count().await;
        end
    }

    /// Reads the ledger's per-account counts: for the metrics, and to know what is due.
    async fn count(&mut self) {
        if let Some(counted) = cycle::counts(&self.engine).await {
            self.on(Happened::Counted(counted));
        }
    }

    /// Re-resolves what to watch (`reading_now`: at the start of a cycle, which reads anyway).
    async fn rewatch(&mut self, reading_now: bool) {
        let Some(mut source) = self.source.take() else {
            return;
        };
        let rewatched = blocking(move || {
            let moved = source.rewatch();
            (source, moved)
        })
        .await;
        let moved = match rewatched {
            Ok((source, moved)) => {
                let watching = moved.then(|| source.watched().map(PathBuf::from).collect());
                self.source = Some(source);
                Ok(watching)
            }
            Err(e) => Err(format!("{e:#}")),
        };
        self.on(Happened::Rewatched { moved, reading_now });
    }

    /// Standing by: waits on the lock beside the loop, where the ledger can (instead of
    /// trying it every `takeover_every`). Called by `react` whenever this replica stands by.
    fn wait_for_lock(&mut self) {
        if self.waiter.is_some() || self.engine.writer().is_some() {
            return;
        }
        let stop = CancellationToken::new();
        if let Some(wait) = self.engine.lock_waiter("watch", stop.clone()) {
            self.waiter = Some(Waiter {
                stop,
                task: tokio::spawn(wait),
            });
            self.schedule.waiting_for_lock();
        }
    }

    /// The wait for the lock ended: the lock came to this replica, or the wait failed.
    async fn lock_came(&mut self, waited: Waited) {
        if let Ok(Ok(Some(writer))) = waited {
            self.engine.lead_with(writer).await;
            let at = self.engine.writer().map(|w| w.location().to_owned());
            self.on(Happened::LockCame(Ok(at.unwrap_or_default())));
            self.count().await;
            return;
        }
        self.on(Happened::LockCame(Err(waited)));
    }

    /// Withdraws the wait for the lock, if one runs; a lock it got meanwhile is let go.
    async fn stop_waiting(&mut self) {
        let Some(waiter) = self.waiter.take() else {
            return;
        };
        waiter.stop.cancel();
        match tokio::time::timeout(WITHDRAW, waiter.task).await {
            Ok(Ok(Ok(Some(writer)))) => writer.close().await,
            Ok(_) => {}
            Err(_) => tracing::warn!("the wait for the ledger's lock did not end in time"),
        }
    }

    /// True while this replica holds the ledger's lock: it reconciles, and it alone tells.
    fn leading(&self) -> bool {
        self.engine.writer().is_some()
    }

    pub(crate) async fn stop(mut self) {
        self.stop_waiting().await;
        self.engine.close().await;
        self.announce.close(NOTIFY_DRAIN).await;
        tracing::info!("stopped");
    }
}

async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// The end of the wait for the lock, if one runs.
async fn waited(waiter: &mut Option<Waiter>) -> Waited {
    match waiter {
        Some(waiter) => (&mut waiter.task).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

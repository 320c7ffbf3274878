//! The daemon's loop: it waits for whatever comes first (a signal, a file event, a lost lock,
//! a heartbeat, or the moment the [`Schedule`] says something is due) and does it, one thing
//! at a time. Every decision about *when* is the schedule's; this loop only carries them out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::WatchConfig;
use super::announce::Announcer;
use super::health::Health;
use super::leader::{Attempt, Leadership};
use super::notices::{Said, Validity};
use super::schedule::{Action, Schedule};
use super::source::Source;
use crate::engine::Engine;
use crate::ledger::{LedgerError, Writer};
use crate::manifest::{Limits, ManifestSet};
use crate::metrics::Metrics;
use crate::notifications::Notifier;
use crate::task::blocking;

/// The safety net under file events: symlink targets are re-resolved this often.
const REWATCH: Duration = Duration::from_secs(30);
/// How long notifications still queued at shutdown may take.
const NOTIFY_DRAIN: Duration = Duration::from_secs(5);
/// How often the loop proves it is alive.
pub(super) const BEAT: Duration = Duration::from_secs(5);

pub struct Daemon {
    pub(super) engine: Engine,
    pub(super) paths: Vec<PathBuf>,
    pub(super) limits: Limits,
    pub(super) refresh_every: Option<Duration>,
    pub(super) json_logs: bool,
    schedule: Schedule,
    leadership: Leadership,
    source: Option<Source>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) health: Arc<Health>,
    /// The last valid set: what resyncs and retries reconcile.
    pub(super) current: Option<Arc<ManifestSet>>,
    /// The digest of the set last reconciled without a fatal stop.
    pub(super) reconciled: Option<String>,
    /// The digest of the set last converged, with nothing deferred, and the ledger's serial
    /// right after: while both stay, a resync has nothing to plan.
    pub(super) settled: Option<(String, u64)>,
    /// When each account's live list was last read, as the ledger says.
    pub(super) refreshed: HashMap<String, Option<i64>>,
    /// Manifest warnings and plan warnings already logged, and the manifests' validity.
    pub(super) manifest_warnings: Said,
    pub(super) plan_warnings: Said,
    pub(super) validity: Validity,
    /// What is told to the notification sinks.
    pub(super) announce: Announcer,
    /// While standing by on a ledger that can wait on its lock: the wait.
    waiter: Option<Waiter>,
}

/// A wait for the writer lock, beside the loop.
struct Waiter {
    stop: CancellationToken,
    task: JoinHandle<Result<Option<Writer>, LedgerError>>,
}

/// How long withdrawing a wait for the lock may take at shutdown.
const WITHDRAW: Duration = Duration::from_secs(10);

impl Daemon {
    /// Takes the lead (or stands by) and starts watching the manifests. Bad settings need a
    /// new deployment, not a retry: they stop the daemon at once.
    pub async fn start(
        mut engine: Engine,
        config: &WatchConfig,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        notifier: Notifier,
    ) -> anyhow::Result<Daemon> {
        let mut leadership = Leadership::default();
        let first = leadership
            .first(&mut engine, config.standby, &metrics, &health)
            .await?;
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
        let mut schedule = Schedule::new(config.timing, Instant::now(), first == Attempt::Leading);
        if first == Attempt::Failing {
            schedule.ledger_unreachable(Instant::now());
        }
        let mut daemon = Daemon {
            schedule,
            engine,
            paths: config.paths.clone(),
            limits: config.run.limits,
            refresh_every: config.refresh_every,
            json_logs: config.output.json,
            leadership,
            source: Some(source),
            metrics,
            health,
            current: None,
            reconciled: None,
            settled: None,
            refreshed: HashMap::new(),
            manifest_warnings: Said::default(),
            plan_warnings: Said::default(),
            validity: Validity::default(),
            announce: Announcer::new(notifier),
            waiter: None,
        };
        if first == Attempt::Standing {
            daemon.wait_for_lock();
        }
        Ok(daemon)
    }

    pub async fn run(&mut self, stop: &CancellationToken) {
        let Some(signals) = self.source.as_ref().map(|s| s.signals.clone()) else {
            return;
        };
        self.read_ledger_counts().await;
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
                    self.leadership.lost(why, &self.metrics);
                    self.announce.leader_lost();
                    self.schedule.stand_by(Instant::now());
                    self.wait_for_lock();
                }
                waited = waited(&mut self.waiter) => {
                    self.waiter = None;
                    self.lock_came(waited).await;
                }
                () = signals.manifests.notified() => self.schedule.manifests_changed(Instant::now()),
                () = signals.credentials.notified() => self.schedule.key_changed(Instant::now()),
                _ = beat.tick() => self.health.beat(),
                _ = rewatch.tick() => {
                    if self.rewatch().await {
                        self.schedule.manifests_changed(Instant::now());
                    }
                }
                () = sleep_until(wake), if wake.is_some() => self.act(stop).await,
            }
        }
    }

    /// Does what the schedule says is due now.
    async fn act(&mut self, stop: &CancellationToken) {
        match self.schedule.due(Instant::now()) {
            Some(Action::TakeOver) => {
                let attempt = self
                    .leadership
                    .try_take(&mut self.engine, &self.metrics, &self.health)
                    .await;
                let now = Instant::now();
                match attempt {
                    Attempt::Leading => self.took_over(now).await,
                    Attempt::Standing => {
                        self.schedule.stand_by(now);
                        self.wait_for_lock();
                    }
                    Attempt::Failing => self.schedule.ledger_unreachable(now),
                }
            }
            Some(Action::Cycle {
                trigger,
                reload_key,
            }) => {
                if trigger != crate::apply::Trigger::Start {
                    self.rewatch().await;
                }
                if reload_key {
                    self.reload_key().await;
                }
                let ended = self.cycle(trigger, stop).await;
                // A cycle builds and drops whole lists; hand what it freed back to the system
                // so that a long-running daemon's footprint follows its work, not its history.
                let _ = blocking(crate::task::release_free_memory).await;
                if let Some(pause) = self.schedule.finished(Instant::now(), ended) {
                    tracing::warn!("trying again in {}s", pause.as_secs());
                }
                self.schedule.refresh_due_at(self.next_refresh());
            }
            None => {}
        }
    }

    async fn took_over(&mut self, now: Instant) {
        self.announce.leader_gained();
        // The previous leader may have left anything behind: reconcile in full.
        self.reconciled = None;
        self.settled = None;
        self.read_ledger_counts().await;
        self.schedule.took_over(now);
    }

    /// Standing by: waits on the lock beside the loop, where the ledger can (instead of
    /// trying it every `takeover_every`).
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
    async fn lock_came(
        &mut self,
        waited: Result<Result<Option<Writer>, LedgerError>, tokio::task::JoinError>,
    ) {
        let now = Instant::now();
        match waited {
            Ok(Ok(Some(writer))) => {
                self.engine.lead_with(writer).await;
                self.leadership
                    .took(&self.engine, &self.metrics, &self.health);
                self.took_over(now).await;
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                self.leadership.wait_failed(&e, &self.metrics, &self.health);
                self.schedule.ledger_unreachable(now);
            }
            Err(e) => {
                tracing::error!(error = %e, "the wait for the ledger's lock failed");
                self.schedule.ledger_unreachable(now);
            }
        }
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

    /// When the oldest refresh of the set in force falls due.
    fn next_refresh(&self) -> Option<Instant> {
        let every = self.refresh_every?;
        let set = self.current.as_ref()?;
        let oldest = set
            .sets
            .iter()
            .map(|s| {
                self.refreshed
                    .get(&s.official_account)
                    .copied()
                    .flatten()
                    .unwrap_or(0)
            })
            .min()?;
        let due_in = (oldest + every.as_millis() as i64 - crate::clock::unix_millis()).max(0);
        Some(Instant::now() + Duration::from_millis(due_in as u64))
    }

    /// Whether a live list of `set` is due to be read.
    pub(super) fn refresh_due(&self, set: &ManifestSet) -> bool {
        let Some(every) = self.refresh_every else {
            return false;
        };
        let horizon = crate::clock::unix_millis() - every.as_millis() as i64;
        set.sets.iter().any(|s| {
            self.refreshed
                .get(&s.official_account)
                .copied()
                .flatten()
                .is_none_or(|at| at <= horizon)
        })
    }

    /// Reads the ledger's per-account counts: for the metrics, and to know what is due.
    pub(super) async fn read_ledger_counts(&mut self) {
        if self.engine.writer().is_none_or(|w| w.lost().is_cancelled()) {
            return;
        }
        match self.engine.accounts().await {
            Ok(accounts) => {
                self.metrics.ledger(&accounts);
                self.refreshed = accounts
                    .into_iter()
                    .map(|a| (a.official_account, a.refreshed_at))
                    .collect();
            }
            Err(e) => {
                let e = crate::errors::chain(&e);
                tracing::warn!(error = %e, "cannot read the ledger's counts")
            }
        }
    }

    /// Re-resolves what to watch; true when it changed.
    async fn rewatch(&mut self) -> bool {
        let Some(mut source) = self.source.take() else {
            return false;
        };
        match blocking(move || {
            let changed = source.rewatch();
            (source, changed)
        })
        .await
        {
            Ok((source, changed)) => {
                if changed {
                    tracing::info!(watching = ?crate::logs::Array(&source.watched().collect::<Vec<_>>()), "the watched paths moved");
                }
                self.source = Some(source);
                changed
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the manifests any more");
                false
            }
        }
    }

    /// Reads the key file again and uses the key if it changed (a rotated Secret).
    async fn reload_key(&mut self) {
        match self.engine.reload_key().await {
            Ok(true) => tracing::info!("the secret key changed; using the new one"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the credentials; keeping the ones in use")
            }
        }
    }

    pub async fn stop(mut self) {
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
async fn waited(
    waiter: &mut Option<Waiter>,
) -> Result<Result<Option<Writer>, LedgerError>, tokio::task::JoinError> {
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

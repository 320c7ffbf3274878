//! `subsync watch`: the long-running reconciler beside a git checkout or a Kubernetes volume.
//!
//! One loop, one reconcile at a time, through the same [`Reconciler`] as `apply`. It reconciles
//! at start; after any change under the watched paths (once they have been quiet for the
//! debounce time, reading the whole set again, so a half-written set is never used); every
//! `--resync`, even without changes, retrying failed subscribers whose pause has passed; and,
//! after a run stopped by a fatal answer, again with growing pauses, or at once when the
//! credentials file changes. Changes that arrive during a reconcile are folded into the next.
//!
//! Invariants: an invalid set changes nothing (the last valid set stays in force and the daemon
//! turns unready with the reason); an account whose manifest disappears is left alone; the
//! ledger's writer lock is held for the daemon's whole life, so a second daemon on the same
//! state is refused at once. The first SIGTERM or Ctrl-C stops watching and gives batches in
//! flight the drain time to finish and be recorded; a second one stops at once.

mod health;
mod http;
mod source;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, Job, Reconciled, Reconciler, Trigger};
use crate::ledger::Writer;
use crate::manifest::{self, Limits, ManifestSet};
use crate::metrics::Metrics;
use crate::sandbox::Sandbox;
use crate::settings::{ApiArgs, Output, env_var};
use crate::task::blocking;
use crate::tencent::Client;
use health::Health;
use source::Source;

/// Everything `watch` was asked to do, resolved.
pub struct Settings {
    pub paths: Vec<PathBuf>,
    pub listen: SocketAddr,
    pub debounce: Duration,
    /// Zero: no periodic resync.
    pub resync: Duration,
    /// How often each account's live list is read; zero: never.
    pub refresh_every: Duration,
    pub state_dir: PathBuf,
    pub sandbox: bool,
    pub sandbox_config: Option<PathBuf>,
    /// Read again whenever the credentials file changes.
    pub api: ApiArgs,
    pub limits: Limits,
    /// Fixed revision; otherwise the git commit of the manifests at each reconcile.
    pub revision: Option<String>,
    pub options: apply::Options,
    pub output: Output,
}

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// After a first signal, with work in flight finished or recorded as abandoned.
    Gracefully,
    /// At a second signal, at once.
    Forced,
}

/// The safety net under file events: symlink targets are re-resolved this often.
const RECHECK: Duration = Duration::from_secs(30);
/// How often the loop proves it is alive.
const BEAT: Duration = Duration::from_secs(5);
/// Pauses before trying again after a fatal stop.
const FIRST_RETRY: Duration = Duration::from_secs(30);
const LONGEST_RETRY: Duration = Duration::from_secs(600);

pub async fn run(settings: Settings) -> anyhow::Result<Ended> {
    let shutdown = crate::shutdown::on_signal();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let (listener, addr) = http::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", settings.listen))?;
    let serving = CancellationToken::new();
    let server = tokio::spawn(http::serve(
        listener,
        metrics.clone(),
        health.clone(),
        serving.clone(),
    ));
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "serving /healthz, /readyz and /metrics on http://{addr}"
        )?;
        out.flush()?;
    }
    let daemon = async {
        let mut daemon = Daemon::start(settings, metrics, health).await?;
        daemon.run(&shutdown.graceful).await;
        daemon.stop().await;
        anyhow::Ok(())
    };
    let ended = tokio::select! {
        result = daemon => result.map(|()| Ended::Gracefully),
        () = shutdown.forced.cancelled() => Ok(Ended::Forced),
    };
    serving.cancel();
    if ended.as_ref().is_ok_and(|e| *e == Ended::Gracefully) {
        let _ = server.await;
    }
    ended
}

struct Daemon {
    settings: Settings,
    reconciler: Reconciler,
    sandbox: Option<Sandbox>,
    source: Option<Source>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// The fingerprint of the key in use, to notice a rotated key file.
    key: Option<[u8; 32]>,
    /// The last valid set: what resyncs and retries reconcile.
    current: Option<ManifestSet>,
    /// The digest of the set last reconciled without a fatal stop.
    reconciled: Option<String>,
    /// When each account's live list was last read, as the ledger says.
    refreshed: std::collections::HashMap<String, Option<i64>>,
    pause: Duration,
}

impl Daemon {
    async fn start(
        settings: Settings,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> anyhow::Result<Daemon> {
        // Bad settings need a new deployment, not a retry: they stop the daemon at once.
        let (sandbox, config, state_dir) = if settings.sandbox {
            let config = settings
                .sandbox_config
                .clone()
                .or_else(|| crate::sandbox::default_config(&settings.paths));
            let sandbox =
                Sandbox::start(&settings.state_dir, config, &ManifestSet::default()).await?;
            let (client, dir) = (sandbox.client.clone(), sandbox.state_dir.clone());
            (Some(sandbox), client, dir)
        } else {
            let api = settings.api.clone();
            let config = blocking(move || api.client_config(env_var)).await??;
            (None, config, settings.state_dir.clone())
        };
        let key = sandbox.is_none().then(|| config.key.fingerprint());
        let writer = Writer::open(&state_dir, "watch").await?;
        let client = Client::new(config)?.observed(metrics.clone());
        let reconciler = Reconciler::new(writer, client, settings.options.clone(), metrics.clone());
        let credentials: Vec<PathBuf> = settings.api.secret_key_file.iter().cloned().collect();
        let (paths, ignore) = (settings.paths.clone(), vec![settings.state_dir.clone()]);
        let source = blocking(move || Source::new(&paths, &credentials, &ignore))
            .await?
            .context("cannot watch the manifests")?;
        tracing::info!(
            paths = ?settings.paths,
            watching = ?source.watched().collect::<Vec<_>>(),
            "watching the manifests"
        );
        Ok(Daemon {
            settings,
            reconciler,
            sandbox,
            source: Some(source),
            metrics,
            health,
            key,
            current: None,
            reconciled: None,
            refreshed: Default::default(),
            pause: FIRST_RETRY,
        })
    }

    async fn run(&mut self, stop: &CancellationToken) {
        let Some(signals) = self.source.as_ref().map(|s| s.signals.clone()) else {
            return;
        };
        let resync = (!self.settings.resync.is_zero()).then_some(self.settings.resync);
        let mut next_resync = resync.map(|r| Instant::now() + r);
        self.read_ledger_counts().await;
        let mut next_refresh: Option<Instant> = None;
        // Start: read and reconcile at once.
        let mut changed_at = Some(Instant::now());
        let mut trigger = Trigger::Start;
        let mut credentials_changed = false;
        let mut retry_at: Option<Instant> = None;
        let mut recheck = tokio::time::interval(RECHECK);
        let mut beat = tokio::time::interval(BEAT);
        loop {
            let wake = [changed_at, retry_at, next_resync, next_refresh]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = signals.manifests.notified() => {
                    changed_at = Some(Instant::now() + self.settings.debounce);
                }
                () = signals.credentials.notified() => {
                    credentials_changed = true;
                    changed_at = Some(Instant::now() + self.settings.debounce);
                }
                _ = beat.tick() => self.health.beat(),
                _ = recheck.tick() => {
                    if self.refresh_watches().await {
                        changed_at = Some(Instant::now() + self.settings.debounce);
                    }
                }
                () = sleep_until(wake), if wake.is_some() => {
                    let now = Instant::now();
                    let this = if changed_at.is_some_and(|t| t <= now) {
                        changed_at = None;
                        std::mem::replace(&mut trigger, Trigger::Change)
                    } else if retry_at.is_some_and(|t| t <= now) {
                        Trigger::Retry
                    } else {
                        Trigger::Resync
                    };
                    if this != Trigger::Start {
                        self.refresh_watches().await;
                    }
                    if credentials_changed || this == Trigger::Retry {
                        credentials_changed = false;
                        self.reload_credentials().await;
                    }
                    let fatal = self.cycle(this, stop).await;
                    retry_at = fatal.then(|| Instant::now() + self.next_pause());
                    if !fatal {
                        self.pause = FIRST_RETRY;
                    }
                    next_resync = resync.map(|r| Instant::now() + r);
                    next_refresh = self.next_refresh();
                }
            }
        }
    }

    /// Whether a live list of `set` is due to be read.
    fn refresh_due(&self, set: &ManifestSet) -> bool {
        let every = self.settings.refresh_every;
        if every.is_zero() {
            return false;
        }
        let horizon = crate::clock::unix_millis() - every.as_millis() as i64;
        set.sets.iter().any(|s| {
            self.refreshed
                .get(&s.official_account)
                .copied()
                .flatten()
                .is_none_or(|at| at <= horizon)
        })
    }

    /// When the oldest refresh of the set in force falls due.
    fn next_refresh(&self) -> Option<Instant> {
        let every = self.settings.refresh_every;
        if every.is_zero() {
            return None;
        }
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

    /// Reads the ledger's per-account counts: for the metrics, and to know what is due.
    async fn read_ledger_counts(&mut self) {
        match self.reconciler.writer().accounts().await {
            Ok(accounts) => {
                self.metrics.ledger(&accounts);
                self.refreshed = accounts
                    .into_iter()
                    .map(|a| (a.official_account, a.refreshed_at))
                    .collect();
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the ledger's counts"),
        }
    }

    fn next_pause(&mut self) -> Duration {
        let pause = self.pause;
        self.pause = (self.pause * 2).min(LONGEST_RETRY);
        tracing::info!("trying again in {}s", pause.as_secs());
        pause
    }

    /// Re-resolves what to watch; true when it changed.
    async fn refresh_watches(&mut self) -> bool {
        let Some(mut source) = self.source.take() else {
            return false;
        };
        match blocking(move || {
            let changed = source.refresh();
            (source, changed)
        })
        .await
        {
            Ok((source, changed)) => {
                if changed {
                    tracing::info!(watching = ?source.watched().collect::<Vec<_>>(), "the watched paths moved");
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

    /// Reads the credentials again and uses them if the key changed (a rotated Secret).
    async fn reload_credentials(&mut self) {
        if self.sandbox.is_some() {
            return;
        }
        let api = self.settings.api.clone();
        let config = match blocking(move || api.client_config(env_var)).await {
            Ok(Ok(config)) => config,
            Ok(Err(e)) => {
                return tracing::warn!(error = %e, "cannot read the credentials; keeping the ones in use");
            }
            Err(e) => return tracing::warn!(error = %e, "cannot read the credentials"),
        };
        let fingerprint = config.key.fingerprint();
        if self.key == Some(fingerprint) {
            return;
        }
        match Client::new(config) {
            Ok(client) => {
                self.reconciler
                    .set_client(client.observed(self.metrics.clone()));
                self.key = Some(fingerprint);
                tracing::info!("the secret key changed; using the new one");
            }
            Err(e) => tracing::warn!(error = %e, "cannot use the new credentials"),
        }
    }

    /// Reads the manifests and reconciles; returns true when a fatal error stopped the run.
    async fn cycle(&mut self, trigger: Trigger, stop: &CancellationToken) -> bool {
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
        // Beat while the run goes on: a long reconcile is not a stuck loop.
        let result = {
            let run = self.reconciler.reconcile(job, stop);
            tokio::pin!(run);
            let mut beat = tokio::time::interval(BEAT);
            loop {
                tokio::select! {
                    result = &mut run => break result,
                    _ = beat.tick() => self.health.beat(),
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

    async fn stop(self) {
        if let Some(sandbox) = self.sandbox {
            sandbox.stop().await;
        }
        tracing::info!("stopped");
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

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

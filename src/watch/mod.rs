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
//! turns unready with the reason); an account whose manifest disappears is left alone; only
//! the replica holding the ledger's writer lock reconciles ([`leader`]), and a second daemon on
//! the same ledger is refused at once unless it was started to stand by. The first SIGTERM or
//! Ctrl-C stops watching and gives batches in flight the drain time to finish and be recorded;
//! a second one stops at once.

mod cycle;
mod health;
mod http;
mod leader;
mod source;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, Reconciler, Trigger};
use crate::ledger::Location;
use crate::manifest::{Limits, ManifestSet};
use crate::metrics::Metrics;
use crate::sandbox::Sandbox;
use crate::settings::{ApiArgs, Output, env_var};
use crate::task::blocking;
use crate::tencent::Client;
use health::Health;
use leader::Leadership;
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
    /// The ledger; `None` with the sandbox, which keeps its own under `sandbox_root`.
    pub state: Option<Location>,
    /// With `--sandbox`: the state directory it works in.
    pub sandbox_root: Option<PathBuf>,
    pub sandbox_config: Option<PathBuf>,
    /// Stand by when another replica holds the ledger, instead of stopping.
    pub standby: bool,
    /// How often a replica that does not lead tries to take the lock.
    pub takeover_every: Duration,
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
    /// The client every reconciler of this daemon uses (new credentials replace it).
    client: Arc<Client>,
    /// Present while this replica leads.
    reconciler: Option<Reconciler>,
    leadership: Leadership,
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
        let (sandbox, config, location) = match (&settings.sandbox_root, &settings.state) {
            (Some(root), _) => {
                let config = settings
                    .sandbox_config
                    .clone()
                    .or_else(|| crate::sandbox::default_config(&settings.paths));
                let sandbox = Sandbox::start(root, config, &ManifestSet::default()).await?;
                let (client, dir) = (sandbox.client.clone(), sandbox.state_dir.clone());
                (Some(sandbox), client, Location::Dir(dir))
            }
            (None, Some(location)) => {
                let api = settings.api.clone();
                let config = blocking(move || api.client_config(env_var)).await??;
                (None, config, location.clone())
            }
            (None, None) => anyhow::bail!("no ledger: pass --state"),
        };
        let key = sandbox.is_none().then(|| config.key.fingerprint());
        let client = Arc::new(Client::new(config)?.observed(metrics.clone()));
        let mut leadership = Leadership::new(location.clone(), settings.takeover_every);
        let reconciler = leadership
            .first(settings.standby, &metrics)
            .await?
            .map(|writer| {
                Reconciler::new(
                    writer,
                    client.clone(),
                    settings.options.clone(),
                    metrics.clone(),
                )
            });
        let credentials: Vec<PathBuf> = settings.api.secret_key_file.iter().cloned().collect();
        let ignore: Vec<PathBuf> = match &location {
            Location::Dir(dir) => vec![dir.clone()],
            Location::Postgres(_) => Vec::new(),
        };
        let paths = settings.paths.clone();
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
            client,
            reconciler,
            leadership,
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
        let mut next_takeover = self
            .reconciler
            .is_none()
            .then(|| Instant::now() + self.leadership.every);
        loop {
            let wake = [changed_at, retry_at, next_resync, next_refresh]
                .into_iter()
                .flatten()
                .min();
            let lost = self.reconciler.as_ref().map(|r| r.writer().lost().clone());
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = cancelled(lost.as_ref()) => {
                    self.step_down();
                    retry_at = None;
                    next_takeover = Some(Instant::now() + self.leadership.every);
                }
                () = sleep_until(next_takeover), if next_takeover.is_some() => {
                    next_takeover = if self.take_over().await {
                        changed_at = Some(Instant::now());
                        trigger = Trigger::Takeover;
                        None
                    } else {
                        Some(Instant::now() + self.leadership.every)
                    };
                }
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
                    // A run stopped by a lost lock is not retried here: the replica stands by.
                    let fatal = self.cycle(this, stop).await && !self.lost_lead();
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

    /// Tries to take the ledger's lock; true when this replica now leads.
    async fn take_over(&mut self) -> bool {
        let Some(writer) = self.leadership.try_take(&self.metrics).await else {
            return false;
        };
        self.reconciler = Some(Reconciler::new(
            writer,
            self.client.clone(),
            self.settings.options.clone(),
            self.metrics.clone(),
        ));
        // The previous leader may have left anything behind: reconcile in full.
        self.reconciled = None;
        self.read_ledger_counts().await;
        true
    }

    /// Lets go of the ledger after its lock was lost. Readiness never depends on leading, so a
    /// run stopped by the loss does not count against it.
    fn step_down(&mut self) {
        if let Some(reconciler) = self.reconciler.take() {
            self.leadership.lost(reconciler.writer(), &self.metrics);
        }
        self.health.stopped(None);
        self.pause = FIRST_RETRY;
    }

    /// True when this replica led and its lock is gone.
    fn lost_lead(&self) -> bool {
        self.reconciler
            .as_ref()
            .is_some_and(|r| r.writer().lost().is_cancelled())
    }

    /// Reads the ledger's per-account counts: for the metrics, and to know what is due.
    async fn read_ledger_counts(&mut self) {
        let Some(reconciler) = self.reconciler.as_ref().filter(|_| !self.lost_lead()) else {
            return;
        };
        match reconciler.writer().accounts().await {
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
                self.client = Arc::new(client.observed(self.metrics.clone()));
                if let Some(reconciler) = &self.reconciler {
                    reconciler.set_client(self.client.clone());
                }
                self.key = Some(fingerprint);
                tracing::info!("the secret key changed; using the new one");
            }
            Err(e) => tracing::warn!(error = %e, "cannot use the new credentials"),
        }
    }

    async fn stop(self) {
        drop(self.reconciler);
        if let Some(sandbox) = self.sandbox {
            sandbox.stop().await;
        }
        tracing::info!("stopped");
    }
}

async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

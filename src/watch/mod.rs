//! `subsync watch`: the long-running reconciler beside a git checkout or a Kubernetes volume.
//!
//! One loop ([`daemon`]), one reconcile at a time, through the same [`crate::engine::Engine`]
//! as `apply`. The steps of a cycle ([`cycle`], [`leader`]) return what happened as values,
//! and one place (`daemon::react`) turns them into logs, metrics, notifications ([`announce`]),
//! readiness ([`health`]) and the schedule's next step. When it reconciles is the [`schedule`]'s business: at start; after any change
//! under the watched paths (once they have been quiet for the debounce time, reading the whole
//! set again, so a half-written set is never used); every `--resync`, even without changes,
//! retrying failed subscribers whose pause has passed; and, after a run stopped by a fatal
//! answer, again only after a growing pause. Changes that arrive during a reconcile are folded
//! into the next.
//!
//! Invariants: an invalid set changes nothing (the last valid set stays in force and the daemon
//! turns unready with the reason); an account whose manifest disappears is left alone; only
//! the replica holding the ledger's writer lock reconciles ([`leader`]) and tells the
//! notification sinks anything ([`announce`]), and a second daemon on the same ledger is
//! refused at once unless it was started to stand by. The first SIGTERM, SIGHUP or Ctrl-C
//! stops watching and gives batches in flight the drain time to finish and be recorded; a
//! second one stops at once.

mod announce;
mod cycle;
mod daemon;
mod health;
mod http;
mod leader;
mod notices;
mod refreshes;
pub(crate) mod schedule;
mod source;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

pub(crate) use daemon::Daemon;
pub(crate) use health::Health;
pub(crate) use schedule::Timing;

use crate::engine::{Engine, Hooks};
use crate::metrics::Metrics;
use crate::notifications::Notifier;
use crate::settings::{Config, Output};

/// Everything `watch` was asked to do, resolved.
pub(crate) struct WatchConfig {
    /// The runs it makes.
    pub run: Config,
    pub paths: Vec<PathBuf>,
    pub listen: SocketAddr,
    pub timing: Timing,
    /// How often each account's live list is read; `None`: never.
    pub refresh_every: Option<Duration>,
    /// Stand by when another replica holds the ledger, instead of stopping.
    pub standby: bool,
    pub output: Output,
    /// Where events and commit statuses go.
    pub notify: crate::notifications::NotifyConfig,
}

/// How the daemon exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// After a first signal, with work in flight finished or recorded as abandoned.
    Gracefully,
    /// At a second signal, at once.
    Forced,
}

pub(crate) async fn run(config: WatchConfig) -> anyhow::Result<Exit> {
    let shutdown = crate::shutdown::on_signal();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let (listener, addr) = http::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
    let serving = CancellationToken::new();
    let server = tokio::spawn(http::serve(
        listener,
        metrics.clone(),
        health.clone(),
        serving.clone(),
        config.run.descriptors.probes,
    ));
    let daemon = async {
        let hooks = Hooks {
            observer: metrics.clone(),
            calls: Some(metrics.clone()),
        };
        let engine = Engine::open(config.run.clone(), hooks).await?;
        let notifier = Notifier::start(config.notify.clone(), metrics.clone()).await;
        let mut daemon = Daemon::start(engine, &config, metrics, health, notifier).await?;
        // Only a daemon that started says where it serves: one refused at start (a ledger
        // locked by another replica, bad settings) prints nothing on stdout.
        announce(addr)?;
        daemon.run(&shutdown.graceful).await;
        daemon.stop().await;
        anyhow::Ok(())
    };
    let ended = tokio::select! {
        result = daemon => result.map(|()| Exit::Gracefully),
        () = shutdown.forced.cancelled() => Ok(Exit::Forced),
    };
    serving.cancel();
    if ended.as_ref().is_ok_and(|e| *e == Exit::Gracefully) {
        let _ = server.await;
    }
    ended
}

/// The first stdout line, which scripts and tests wait for: where the probes are served.
fn announce(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "serving /healthz, /readyz and /metrics on http://{addr}"
    )?;
    out.flush()
}

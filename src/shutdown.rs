//! Turns Ctrl-C and SIGTERM into cancellation tokens that long-running tasks take as a
//! parameter: the first signal asks for a graceful stop (no new work; work in flight gets its
//! drain time), a second one for an immediate stop.

use tokio_util::sync::CancellationToken;

/// The two stages of stopping.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// Cancelled by the first signal.
    pub graceful: CancellationToken,
    /// Cancelled by the second signal.
    pub forced: CancellationToken,
}

/// Listens for signals. Must be called inside a tokio runtime.
pub fn on_signal() -> Shutdown {
    let shutdown = Shutdown {
        graceful: CancellationToken::new(),
        forced: CancellationToken::new(),
    };
    let stages = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::warn!(
            "interrupted: finishing the requests in flight, then stopping (again to stop at once)"
        );
        stages.graceful.cancel();
        wait_for_signal().await;
        tracing::warn!("interrupted again: stopping at once");
        stages.forced.cancel();
    });
    shutdown
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

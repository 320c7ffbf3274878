//! Turns Ctrl-C, SIGTERM and SIGHUP into cancellation tokens that long-running tasks take as
//! a parameter: the first signal asks for a graceful stop (no new work; work in flight gets
//! its drain time, and the run is recorded as finished), a second one for an immediate stop.
//!
//! SIGHUP counts as a request to stop, as SIGTERM does: a closing terminal and some process
//! managers send it, and its default action (dying at once) would leave a run unfinished with
//! its intents. It does not mean "reload": a daemon follows its files by itself.

use tokio_util::sync::CancellationToken;

/// The two stages of stopping.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown {
    /// Cancelled by the first signal.
    pub graceful: CancellationToken,
    /// Cancelled by the second signal.
    pub forced: CancellationToken,
}

/// Listens for signals, from this call on (the handlers are installed before it returns).
/// Must be called inside a tokio runtime.
pub(crate) fn on_signal() -> Shutdown {
    let shutdown = Shutdown {
        graceful: CancellationToken::new(),
        forced: CancellationToken::new(),
    };
    let stages = shutdown.clone();
    let mut signals = Signals::install();
    tokio::spawn(async move {
        let first = signals.next().await;
        tracing::warn!(
            signal = first,
            "interrupted: finishing the requests in flight, then stopping (again to stop at once)"
        );
        stages.graceful.cancel();
        let second = signals.next().await;
        tracing::warn!(signal = second, "interrupted again: stopping at once");
        stages.forced.cancel();
    });
    shutdown
}

/// The signals that ask to stop.
#[cfg(unix)]
struct Signals {
    streams: Vec<(&'static str, tokio::signal::unix::Signal)>,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let kinds = [
            ("SIGINT", SignalKind::interrupt()),
            ("SIGTERM", SignalKind::terminate()),
            ("SIGHUP", SignalKind::hangup()),
        ];
        let streams = kinds
            .into_iter()
            .filter_map(|(name, kind)| signal(kind).ok().map(|s| (name, s)))
            .collect();
        Signals { streams }
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        std::future::poll_fn(|cx| {
            for (name, stream) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*name);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Signals {
        Signals
    }

    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

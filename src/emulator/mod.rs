//! A faithful local copy of the official-account REST API, for tests, demos, benchmarks and
//! `--sandbox`.
//!
//! It checks what the real service checks (query parameters, UserSig, admin identifier, batch
//! sizes, limits, rates) and answers with the documented codes. Behaviour the documentation
//! leaves open (how 130010 shows up) is configurable so that subsync is tested against both.

mod accounts;
mod config;
mod journal;
mod server;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::tencent::usersig::Credentials;
pub(crate) use config::{EmulatorConfig, EmulatorConfigError};
pub use config::{Faults, Latency};
pub(crate) use journal::{Journal, StateFile};
pub use server::{EmulatorOptions, Stats};
pub(crate) use state::DEFAULT_MAX_SUBSCRIBERS;
#[cfg(any(test, feature = "testing"))]
pub(crate) use state::Rejection;
pub use state::{CursorFault, FollowLimitMode, RemoteState, Rules};

/// A running emulator. Dropping it without [`Emulator::shutdown`] stops accepting at once.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and starts serving.
    pub async fn start(options: EmulatorOptions, listen: SocketAddr) -> io::Result<Emulator> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(server::Shared::new(options));
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(server::serve(
            listener,
            shared.clone(),
            cancel.clone(),
            tracker.clone(),
        ));
        Ok(Emulator {
            addr,
            shared,
            cancel,
            tracker,
        })
    }

    /// `http://HOST:PORT`, the base URL to give the client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A copy of the current accounts and subscribers.
    pub fn state(&self) -> RemoteState {
        self.shared.state()
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Adds `subscribers` to `account` directly, as if they had subscribed long ago (tests and
    /// benchmarks; not journalled).
    pub fn seed_subscribers(&self, account: &str, subscribers: &[String]) {
        self.shared.seed_subscribers(account, subscribers);
    }

    /// Creates the accounts of `ids` it does not have yet, with the default limit (the
    /// sandbox's convenience, not something the service does).
    pub async fn ensure_accounts(&self, ids: &[String]) {
        self.shared.ensure_accounts(ids).await;
    }

    /// Stops accepting, lets open requests finish for up to `deadline`, then returns.
    pub(crate) async fn shutdown(self, deadline: Duration) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("emulator connections still open after {deadline:?}; abandoning them");
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

//! Running blocking work (files, gzip, SQLite setup) from async code without holding up a
//! runtime worker: the daemon shares one runtime between reconciles, probes and file events.

use anyhow::Context;

/// Runs `f` on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("a background task failed")
}

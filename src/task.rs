//! Running blocking work (files, gzip, SQLite setup) from async code without holding up a
//! runtime worker: the daemon shares one runtime between reconciles, probes and file events.
//! And handing freed memory back to the system between a daemon's cycles.

use anyhow::Context;

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("a background task failed")
}

/// Returns the allocator's free memory to the operating system (glibc keeps freed pages of
/// its arenas otherwise, and a daemon's resident size would only ever grow).
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases memory malloc holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

//! Reading and holding a ledger from the tests, synchronous or async alike: each helper runs
//! the ledger's async API on a thread of its own with a runtime of its own, and waits for it.

use subsync::apply::RunSummary;
use subsync::ledger::{Location, Reader, Record, Run, Snapshot, Writer};

/// Runs `f` to completion on a thread and runtime of its own.
fn on_own_runtime<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap()
}

/// The whole ledger at `location`.
pub fn snapshot(location: impl Into<Location>) -> Snapshot {
    let location = location.into();
    on_own_runtime(async move {
        let mut reader = Reader::open(location).await.unwrap();
        let snapshot = reader.snapshot().await.unwrap();
        reader.close().await;
        snapshot
    })
}

/// The confirmed subscribers of `account` (none when the ledger does not know it).
pub fn confirmed(location: impl Into<Location>, account: &str) -> Vec<String> {
    snapshot(location)
        .accounts
        .get(account)
        .map(|a| a.confirmed.clone())
        .unwrap_or_default()
}

/// The latest `limit` runs, newest first, with their summaries.
pub fn runs(location: impl Into<Location>, limit: usize) -> Vec<Run<RunSummary>> {
    let location = location.into();
    on_own_runtime(async move {
        let mut reader = Reader::open(location).await.unwrap();
        let runs = reader.runs(limit).await.unwrap();
        reader.close().await;
        runs
    })
}

/// The writer lock on a ledger, held (after recording `records` as run 1) until dropped.
pub struct Held {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn hold(location: impl Into<Location>, command: &str, records: Vec<Record>) -> Held {
    let (location, command) = (location.into(), command.to_owned());
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, holding) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let writer = Writer::open(location, &command).await.unwrap();
            if !records.is_empty() {
                writer.record(1, records).await.unwrap();
            }
            held.send(()).unwrap();
            // Waits on this thread of its own: nothing else runs on this runtime.
            let _ = released.recv();
            writer.close().await;
        });
    });
    holding.recv().unwrap();
    Held {
        release: Some(release),
        thread: Some(thread),
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

//! Durable recording from async code: a dedicated thread owns the writer and commits what the
//! executor sends, grouping whatever is queued into one transaction (one fsync for many
//! batches) before acknowledging each sender.
//!
//! A batch counts as done only once `record` returns Ok: its outcome is then on disk.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{Ledger, LedgerError, Record};

/// The ledger could not record an outcome; the run must stop.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot record outcomes in the ledger: {0}")]
pub struct RecordError(String);

impl RecordError {
    pub fn new(message: impl Into<String>) -> RecordError {
        RecordError(message.into())
    }
}

type Reply = oneshot::Sender<Result<(), RecordError>>;

pub struct Recorder {
    tx: Option<mpsc::Sender<(Vec<Record>, Reply)>>,
    thread: Option<JoinHandle<Ledger>>,
}

/// Most messages folded into one transaction.
const GROUP: usize = 256;

impl Recorder {
    /// Moves the ledger to a writer thread recording outcomes of `run`.
    pub fn start(mut ledger: Ledger, run: i64) -> Result<Recorder, LedgerError> {
        let (tx, rx) = mpsc::channel::<(Vec<Record>, Reply)>();
        let thread = std::thread::Builder::new()
            .name("subsync-ledger".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while group.len() < GROUP {
                        match rx.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    let records: Vec<Record> = group
                        .iter_mut()
                        .flat_map(|(r, _)| std::mem::take(r))
                        .collect();
                    let result = ledger
                        .record(run, &records)
                        .map_err(|e| RecordError(e.to_string()));
                    for (_, reply) in group {
                        let _ = reply.send(result.clone());
                    }
                }
                ledger
            })
            .map_err(|source| LedgerError::Io {
                path: "ledger writer thread".into(),
                source,
            })?;
        Ok(Recorder {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Returns once `records` are committed.
    pub async fn record(&self, records: Vec<Record>) -> Result<(), RecordError> {
        let (reply, done) = oneshot::channel();
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| RecordError("recorder already finished".into()))?;
        tx.send((records, reply))
            .map_err(|_| RecordError("the ledger writer stopped".into()))?;
        done.await
            .map_err(|_| RecordError("the ledger writer stopped".into()))?
    }

    /// Waits for everything queued to be committed and hands the ledger back.
    pub fn finish(mut self) -> Option<Ledger> {
        self.tx.take();
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

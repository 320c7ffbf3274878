//! Reading a ledger ([`Reader`]: never creating one, never waiting for the writer) and
//! copying one ([`copy`]), on whichever backend a [`Location`] names. Both are async: opening
//! and reading are correct from any async code, and neither blocks a runtime worker.

use serde::de::DeserializeOwned;

use super::rows::Identity;
use super::store::{ReadTx, Store, WriteTx, WriterStore};
use super::{AccountOverview, AccountSource, LedgerError, Location, Run, Snapshot, read};

/// Ends the read `tx`, whatever `result` its reads came to.
pub(crate) async fn ended<T>(
    tx: Box<dyn ReadTx<'_> + '_>,
    result: Result<T, LedgerError>,
) -> Result<T, LedgerError> {
    let ended = tx.end().await;
    let value = result?;
    ended.map(|()| value)
}

/// Read-only access: accounts for planning, overviews and runs for status. Never writes,
/// never creates a ledger, never waits for the writer.
pub struct Reader {
    store: Option<Box<dyn Store>>,
    location: Location,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Reader").field(&self.location).finish()
    }
}

impl Reader {
    /// Opens the ledger at `location`; one that does not exist yet reads as empty.
    pub async fn open(location: impl Into<Location>) -> Result<Reader, LedgerError> {
        let location = location.into();
        let store = location.target().open_read().await?;
        Ok(Reader { store, location })
    }

    pub(crate) fn exists(&self) -> bool {
        self.store.is_some()
    }

    /// Runs `f` on the blocking pool over one read transaction, reading accounts one at a
    /// time; a ledger that does not exist yet reads as empty.
    pub(crate) async fn view<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn AccountSource) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let at = self.location.to_string();
        let (planner, value) = super::view::planner(f);
        match &mut self.store {
            Some(store) => store.view(planner).await?,
            None => super::view::in_memory(Snapshot::default(), &at, planner).await?,
        }
        value.await.map_err(|e| LedgerError::task(&at, e))
    }

    /// The whole ledger in memory (tests).
    #[cfg(any(test, feature = "testing"))]
    pub async fn snapshot(&mut self) -> Result<Snapshot, LedgerError> {
        match &mut self.store {
            Some(store) => {
                let mut tx = store.read().await?;
                let result = read::snapshot(&mut *tx).await;
                ended(tx, result).await
            }
            None => Ok(Snapshot::default()),
        }
    }

    /// Lineage and serial (in a snapshot without accounts) and the counts per account.
    pub(crate) async fn overviews(
        &mut self,
    ) -> Result<(Snapshot, Vec<AccountOverview>), LedgerError> {
        match &mut self.store {
            Some(store) => {
                let mut tx = store.read().await?;
                let result = read::overviews(&mut *tx).await;
                ended(tx, result).await
            }
            None => Ok(Default::default()),
        }
    }

    /// The latest `limit` runs, newest first, each summary decoded as `S`.
    pub async fn runs<S: DeserializeOwned>(
        &mut self,
        limit: usize,
    ) -> Result<Vec<Run<S>>, LedgerError> {
        let at = self.location.to_string();
        match &mut self.store {
            Some(store) => {
                let mut tx = store.read().await?;
                let result = read::runs(&mut *tx, &at, limit).await;
                ended(tx, result).await
            }
            None => Ok(Vec::new()),
        }
    }

    /// Closes the connection (off the runtime's workers).
    pub async fn close(mut self) {
        if let Some(store) = self.store.take() {
            store.close().await;
        }
    }
}

/// What `ledger copy` copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Copied {
    pub(crate) accounts: u64,
    pub(crate) confirmed: u64,
    pub(crate) failed: u64,
    pub(crate) runs: u64,
}

/// Copies everything the ledger at `from` holds into the empty ledger at `to`, lineage and
/// serial included, in one transaction, holding both writer locks so that neither changes
/// meanwhile. Accounts are read and written one at a time.
pub(crate) async fn copy(from: &Location, to: &Location) -> Result<Copied, LedgerError> {
    let mut source = from.target().open_write("ledger copy").await?;
    let mut target = to.target().open_write("ledger copy").await?;
    let copied = fill(source.as_mut(), target.as_mut(), &to.to_string()).await;
    if copied.is_ok() {
        super::writer::settle(target.as_mut()).await;
    }
    source.close().await;
    target.close().await;
    copied
}

async fn fill(
    source: &mut dyn WriterStore,
    target: &mut dyn WriterStore,
    at: &str,
) -> Result<Copied, LedgerError> {
    let mut from = source.read().await?;
    let mut into = target.write().await?;
    let copied = fill_in(&mut *from, &mut *into, at).await;
    let copied = ended(from, copied).await;
    match copied {
        Ok(copied) => into.commit().await.map(|()| copied),
        Err(e) => {
            let _ = into.rollback().await;
            Err(e)
        }
    }
}

async fn fill_in(
    from: &mut dyn ReadTx<'_>,
    into: &mut dyn WriteTx<'_>,
    at: &str,
) -> Result<Copied, LedgerError> {
    if !into.is_empty().await? {
        return Err(LedgerError::NotEmpty { at: at.to_owned() });
    }
    let identity: Identity = from.identity().await?;
    let runs = from.runs(None).await?;
    let mut copied = Copied {
        runs: runs.len() as u64,
        ..Copied::default()
    };
    into.insert_runs(runs).await?;
    for account in from.accounts().await? {
        let dump = read::dump(from, account).await?;
        copied.accounts += 1;
        copied.confirmed += dump.confirmed.len() as u64;
        copied.failed += dump.rows.failed.len() as u64;
        into.insert_account(dump).await?;
    }
    // The commit's own serial bump adds one: start one lower.
    let serial = identity.serial.saturating_sub(1);
    into.set_identity(Identity { serial, ..identity }).await?;
    Ok(copied)
}

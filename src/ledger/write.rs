//! Writing a ledger, on any backend: the audit log, a run's outcomes and the end of a refresh,
//! each in one write transaction that commits (bumping `serial`) or leaves nothing behind.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::changes::{self, Ids};
use super::store::{NewRun, RefreshEnd, WriteTx, WriterStore};
use super::{LedgerError, Record, Refreshed, RunOutcome};

/// Commits `tx` when `result` is Ok, else rolls it back; account ids learnt in a transaction
/// that did not commit are forgotten.
async fn settle<T>(
    tx: Box<dyn WriteTx<'_> + '_>,
    result: Result<T, LedgerError>,
    ids: &mut Ids,
) -> Result<T, LedgerError> {
    let done = match result {
        Ok(value) => tx.commit().await.map(|()| value),
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    };
    if done.is_err() {
        ids.forget();
    }
    done
}

/// Opens an audit-log entry; returns its id.
pub(crate) async fn begin_run(
    store: &mut dyn WriterStore,
    ids: &mut Ids,
    command: String,
    revision: Option<String>,
) -> Result<i64, LedgerError> {
    let run = NewRun {
        command,
        revision,
        started_at: crate::clock::unix_millis(),
        pid: i64::from(std::process::id()),
        version: env!("CARGO_PKG_VERSION"),
    };
    let mut tx = store.write().await?;
    let result = tx.begin_run(run).await;
    settle(tx, result, ids).await
}

/// Closes an audit-log entry with its outcome and summary (JSON).
pub(crate) async fn finish_run(
    store: &mut dyn WriterStore,
    ids: &mut Ids,
    run: i64,
    result: RunOutcome,
    summary: String,
) -> Result<(), LedgerError> {
    let now = crate::clock::unix_millis();
    let mut tx = store.write().await?;
    let done = tx.finish_run(run, now, result, summary).await;
    settle(tx, done, ids).await
}

/// Records outcomes of `run`, all in one transaction.
pub(crate) async fn record(
    store: &mut dyn WriterStore,
    ids: &mut Ids,
    run: i64,
    records: Vec<Record>,
) -> Result<(), LedgerError> {
    let now = crate::clock::unix_millis();
    let mut tx = store.write().await?;
    let result = async {
        let names = changes::accounts(&records);
        ids.learn(&mut *tx, &names, now).await?;
        // A property record merges over what is stored: read it first.
        let mut known = HashMap::new();
        for record in &records {
            if let Record::Properties(learnt) = record
                && let Entry::Vacant(slot) = known.entry(ids.get(&learnt.account))
            {
                let id = *slot.key();
                slot.insert(tx.properties(id).await?);
            }
        }
        let steps = changes::steps(records, ids, &mut known, now);
        tx.apply(run, now, steps).await
    }
    .await;
    settle(tx, result, ids).await
}

/// Makes the ledger match `account`'s staged live list, in one transaction.
pub(crate) async fn refresh_finish(
    store: &mut dyn WriterStore,
    ids: &mut Ids,
    run: i64,
    account: String,
    max_subscribers: Option<u64>,
    adopt: bool,
) -> Result<Refreshed, LedgerError> {
    let now = crate::clock::unix_millis();
    let mut tx = store.write().await?;
    let result = async {
        ids.learn(&mut *tx, &[account.as_str()], now).await?;
        let end = RefreshEnd {
            account: ids.get(&account),
            official_account: account,
            run,
            now,
            max_subscribers: max_subscribers.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
            adopt,
        };
        refresh(&mut *tx, &end).await
    }
    .await;
    settle(tx, result, ids).await
}

/// One statement of the end of a refresh; each backend spells each in its own SQL, and
/// answers the rows it changed (or, for [`RefreshStep::Seen`], counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshStep {
    /// Counts the staged live list.
    Seen,
    /// Forgets what the last refresh found.
    ClearDrift,
    /// Confirmed, not seen and not intended: drift, gone remotely.
    DriftRemoved,
    /// Confirmed, not seen: no longer confirmed.
    Drop,
    /// Seen, not confirmed: confirmed and managed (`import`).
    AdoptAll,
    /// Seen, not confirmed and not intended: drift, subscribed out of band.
    DriftAdded,
    /// The drift found out of band: confirmed, not managed.
    Adopt,
    /// Seen, not confirmed, but intended by an interrupted run of subsync's: confirmed and
    /// managed.
    Recover,
    /// Nothing of the account is in doubt any more.
    ClearIntents,
    /// Failures the live list settled: subscribed after all, or gone already.
    Settle,
    /// The remote count is the count seen; MaxSubscriberNum when known; the account exists.
    Facts,
    /// Empties the staging area.
    Unstage,
}

/// Makes the account match its staged live list (see [`WriteTx::refresh_step`]).
async fn refresh(tx: &mut dyn WriteTx<'_>, end: &RefreshEnd) -> Result<Refreshed, LedgerError> {
    use RefreshStep::*;
    let seen = tx.refresh_step(Seen, end).await?;
    tx.refresh_step(ClearDrift, end).await?;
    let removed = tx.refresh_step(DriftRemoved, end).await?;
    // Dropped first: then adopting scans only what was confirmed before.
    tx.refresh_step(Drop, end).await?;
    let added = if end.adopt {
        tx.refresh_step(AdoptAll, end).await?
    } else {
        let added = tx.refresh_step(DriftAdded, end).await?;
        tx.refresh_step(Adopt, end).await?;
        added
    };
    for step in [Recover, ClearIntents, Settle, Facts, Unstage] {
        tx.refresh_step(step, end).await?;
    }
    Ok(Refreshed {
        seen,
        added,
        removed,
    })
}

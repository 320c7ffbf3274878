//! Reading a ledger, on any backend: an account's view for planning, overviews for status,
//! the audit log, whole accounts for copying. Each function runs inside the caller's read
//! transaction, so what it returns is consistent.

use serde::de::DeserializeOwned;

use super::rows::{AccountRow, RunRow};
use super::store::{AccountDump, AccountRows, ReadTx};
use super::{
    AccountOverview, AccountView, Cause, Direction, FailedEntry, LedgerError, RefreshDrift, Run,
    Snapshot,
};

/// Everything about an account but its confirmed subscribers, as the planner sees it.
pub(crate) fn account_view(rows: &AccountRows) -> AccountView {
    let failed = rows
        .failed
        .iter()
        .map(|f| FailedEntry {
            subscriber: f.subscriber.clone(),
            op: f.op,
            code: f.code,
            attempts: f.attempts,
            last_at: f.last_at,
        })
        .collect();
    let drift = |direction| {
        let rows = rows.drift.iter().filter(move |d| d.direction == direction);
        rows.map(|d| d.subscriber.clone()).collect()
    };
    AccountView {
        failed,
        facts: rows.account.facts.clone(),
        drift: RefreshDrift {
            added: drift(Direction::Added),
            removed: drift(Direction::Removed),
            at: rows.account.refreshed_at,
        },
        out_of_band: rows.out_of_band.clone(),
        intents: rows.intents.iter().map(|i| i.subscriber.clone()).collect(),
        properties: rows.properties.clone(),
    }
}

/// Every confirmed subscriber of the account, in memory.
#[cfg(any(test, feature = "testing"))]
async fn confirmed(tx: &mut dyn ReadTx<'_>, account: i64) -> Result<Vec<String>, LedgerError> {
    let (out, mut chunks) = tokio::sync::mpsc::channel::<super::store::Chunk>(2);
    let mut all = Vec::new();
    let collect = async {
        while let Some(chunk) = chunks.recv().await {
            all.extend(chunk.iter().map(str::to_owned));
        }
    };
    let (read, ()) = tokio::join!(tx.confirmed(account, out), collect);
    read.map(|()| all)
}

/// The whole ledger, every account's subscribers in memory: tests only (planning reads one
/// account at a time).
#[cfg(any(test, feature = "testing"))]
pub(crate) async fn snapshot(tx: &mut dyn ReadTx<'_>) -> Result<Snapshot, LedgerError> {
    let identity = tx.identity().await?;
    let mut accounts = std::collections::BTreeMap::new();
    for row in tx.accounts().await? {
        let Some(rows) = tx.account(row.official_account).await? else {
            continue;
        };
        let state = super::AccountState {
            confirmed: confirmed(tx, rows.account.id).await?,
            view: account_view(&rows),
        };
        accounts.insert(rows.account.official_account, state);
    }
    Ok(Snapshot {
        lineage: Some(identity.lineage),
        serial: identity.serial,
        accounts,
    })
}

/// Lineage and serial (in a snapshot without accounts) and the counts per account.
pub(crate) async fn overviews(
    tx: &mut dyn ReadTx<'_>,
) -> Result<(Snapshot, Vec<AccountOverview>), LedgerError> {
    let identity = tx.identity().await?;
    let rows = tx.overviews().await?;
    let snapshot = Snapshot {
        lineage: Some(identity.lineage),
        serial: identity.serial,
        accounts: Default::default(),
    };
    Ok((snapshot, rows))
}

/// The latest `limit` runs, newest first, each summary decoded as `S`.
pub(crate) async fn runs<S: DeserializeOwned>(
    tx: &mut dyn ReadTx<'_>,
    at: &str,
    limit: usize,
) -> Result<Vec<Run<S>>, LedgerError> {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    tx.runs(Some(limit))
        .await?
        .into_iter()
        .map(|row| decode_run(at, row))
        .collect()
}

fn decode_run<S: DeserializeOwned>(at: &str, row: RunRow) -> Result<Run<S>, LedgerError> {
    let summary = match &row.summary {
        None => None,
        Some(text) => Some(
            serde_json::from_str(text).map_err(|e| LedgerError::Summary {
                at: at.to_owned(),
                run: row.id,
                cause: Cause::new(e),
            })?,
        ),
    };
    Ok(Run {
        id: row.id,
        command: row.command,
        started_at: row.started_at,
        finished_at: row.finished_at,
        revision: row.revision,
        result: row.result,
        summary,
        pid: row.pid,
    })
}

/// Everything about one account, row for row.
pub(crate) async fn dump(
    tx: &mut dyn ReadTx<'_>,
    account: AccountRow,
) -> Result<AccountDump, LedgerError> {
    let rows = tx.account(account.official_account.clone()).await?;
    let rows = rows.unwrap_or(AccountRows {
        account,
        ..AccountRows::default()
    });
    Ok(AccountDump {
        confirmed: tx.confirmed_rows(rows.account.id).await?,
        rows,
    })
}

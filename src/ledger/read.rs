//! Reading a ledger, on any backend: snapshots for planning, summaries for status, rows for
//! copying. Each function runs inside the caller's transaction, so what it returns is
//! consistent.

use std::collections::BTreeMap;

use super::backend::{
    AccountDump, ConfirmedRow, DriftRow, FailedRow, IntentRow, Meta, Param, Row, RunRow, Tx,
};
use super::{AccountFacts, AccountSummary, LedgerError, Op, Run, Snapshot, sql};

/// Lineage, serial and creation time.
pub fn identity(tx: &mut dyn Tx) -> Result<(String, u64, i64), LedgerError> {
    let mut get = |key: &str| -> Result<Option<String>, LedgerError> {
        let mut value = None;
        tx.query(sql::META_GET, &[Param::Text(key)], &mut |r| {
            value = Some(r.text(0)?);
            Ok(())
        })?;
        Ok(value)
    };
    let lineage = get("lineage")?.unwrap_or_default();
    let serial = get("serial")?.and_then(|s| s.parse().ok()).unwrap_or(0);
    let created_at = get("created_at")?.and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((lineage, serial, created_at))
}

fn count(r: &dyn Row, column: usize) -> Result<u64, LedgerError> {
    Ok(u64::try_from(r.int(column)?).unwrap_or(0))
}

fn opt_count(r: &dyn Row, column: usize) -> Result<Option<u64>, LedgerError> {
    Ok(r.opt_int(column)?.map(|v| u64::try_from(v).unwrap_or(0)))
}

fn facts(r: &dyn Row, first: usize) -> Result<AccountFacts, LedgerError> {
    Ok(AccountFacts {
        max_subscribers: opt_count(r, first)?,
        subscriber_num: opt_count(r, first + 1)?,
        limit_reached_at: r.opt_int(first + 2)?,
        missing_since: r.opt_int(first + 3)?,
        invalid_since: r.opt_int(first + 4)?,
        counted_at: r.opt_int(first + 5)?,
    })
}

/// An `accounts` row as [`sql::ACCOUNTS`] selects it.
pub(super) struct AccountRow {
    pub id: i64,
    pub name: String,
    pub facts: AccountFacts,
    pub refreshed_at: Option<i64>,
    pub updated_at: i64,
}

pub(super) fn facts_of(row: &AccountRow) -> AccountFacts {
    row.facts.clone()
}

pub(super) fn account_row(r: &dyn Row) -> Result<AccountRow, LedgerError> {
    Ok(AccountRow {
        id: r.int(0)?,
        name: r.text(1)?,
        facts: facts(r, 2)?,
        refreshed_at: r.opt_int(8)?,
        updated_at: r.int(9)?,
    })
}

fn accounts(tx: &mut dyn Tx) -> Result<Vec<AccountRow>, LedgerError> {
    let mut rows = Vec::new();
    tx.query(sql::ACCOUNTS, &[], &mut |r| {
        rows.push(account_row(r)?);
        Ok(())
    })?;
    Ok(rows)
}

pub(super) fn strings(
    tx: &mut dyn Tx,
    sql: &'static str,
    params: &[Param<'_>],
) -> Result<Vec<String>, LedgerError> {
    let mut out = Vec::new();
    tx.query(sql, params, &mut |r| {
        out.push(r.text(0)?);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(any(test, feature = "testing"))]
fn account_state(tx: &mut dyn Tx, row: &AccountRow) -> Result<super::AccountState, LedgerError> {
    Ok(super::AccountState {
        confirmed: strings(tx, sql::CONFIRMED_OF, &[Param::Int(row.id)])?,
        view: super::source::view_of(tx, row.id, row.facts.clone(), row.refreshed_at)?,
    })
}

/// The whole ledger, every account's subscribers in memory (see [`Snapshot`]): tests only.
#[cfg(any(test, feature = "testing"))]
pub fn snapshot(tx: &mut dyn Tx) -> Result<Snapshot, LedgerError> {
    let (lineage, serial, _) = identity(tx)?;
    let mut accounts_by_name = BTreeMap::new();
    for row in accounts(tx)? {
        let state = account_state(tx, &row)?;
        accounts_by_name.insert(row.name, state);
    }
    Ok(Snapshot {
        lineage: Some(lineage),
        serial,
        accounts: accounts_by_name,
    })
}

/// Lineage and serial (in a snapshot without accounts) and the counts per account.
pub fn summaries(tx: &mut dyn Tx) -> Result<(Snapshot, Vec<AccountSummary>), LedgerError> {
    let (lineage, serial, _) = identity(tx)?;
    let mut rows = Vec::new();
    tx.query(sql::SUMMARIES, &[], &mut |r| {
        rows.push(AccountSummary {
            official_account: r.text(0)?,
            confirmed: count(r, 1)?,
            failed: count(r, 2)?,
            facts: facts(r, 3)?,
            refreshed_at: r.opt_int(9)?,
            drift_added: count(r, 10)?,
            drift_removed: count(r, 11)?,
            properties: None,
        });
        Ok(())
    })?;
    // Both lists are sorted by official account.
    let mut known = super::properties::all(tx)?.into_iter().peekable();
    for row in &mut rows {
        while known.next_if(|(a, _)| *a < row.official_account).is_some() {}
        if let Some((_, p)) = known.next_if(|(a, _)| *a == row.official_account) {
            row.properties = Some(p);
        }
    }
    let snapshot = Snapshot {
        lineage: Some(lineage),
        serial,
        accounts: BTreeMap::new(),
    };
    Ok((snapshot, rows))
}

fn run(r: &dyn Row) -> Result<Run, LedgerError> {
    Ok(Run {
        id: r.int(0)?,
        command: r.text(1)?,
        started_at: r.int(2)?,
        finished_at: r.opt_int(3)?,
        revision: r.opt_text(4)?,
        result: r.opt_text(5)?,
        summary: r.opt_text(6)?.and_then(|s| serde_json::from_str(&s).ok()),
        pid: r.int(7)?,
    })
}

/// The latest `limit` runs, newest first.
pub fn runs(tx: &mut dyn Tx, limit: usize) -> Result<Vec<Run>, LedgerError> {
    let mut out = Vec::new();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    tx.query(sql::RUNS_LATEST, &[Param::Int(limit)], &mut |r| {
        out.push(run(r)?);
        Ok(())
    })?;
    Ok(out)
}

/// The whole audit log, oldest first.
pub fn all_runs(tx: &mut dyn Tx) -> Result<Vec<RunRow>, LedgerError> {
    let mut out = Vec::new();
    tx.query(sql::RUNS_ALL, &[], &mut |r| {
        out.push(RunRow {
            run: run(r)?,
            version: r.text(8)?,
        });
        Ok(())
    })?;
    Ok(out)
}

/// Lineage, serial, creation time and every account.
pub fn meta(tx: &mut dyn Tx) -> Result<Meta, LedgerError> {
    let (lineage, serial, created_at) = identity(tx)?;
    let accounts = accounts(tx)?.into_iter().map(|a| a.name).collect();
    Ok(Meta {
        lineage,
        serial,
        created_at,
        accounts,
    })
}

/// Everything about one account, row for row.
pub fn account_dump(tx: &mut dyn Tx, account: &str) -> Result<AccountDump, LedgerError> {
    let mut found = None;
    tx.query(sql::ACCOUNT_BY_NAME, &[Param::Text(account)], &mut |r| {
        found = Some(account_row(r)?);
        Ok(())
    })?;
    let Some(row) = found else {
        return Ok(AccountDump {
            official_account: account.to_owned(),
            ..AccountDump::default()
        });
    };
    let id = [Param::Int(row.id)];
    let mut confirmed = Vec::new();
    tx.query(sql::CONFIRMED_ROWS, &id, &mut |r| {
        confirmed.push(ConfirmedRow {
            subscriber: r.text(0)?,
            confirmed_at: r.int(1)?,
            run_id: r.int(2)?,
            already: r.flag(3)?,
            observed: r.flag(4)?,
            managed: r.flag(5)?,
        });
        Ok(())
    })?;
    let mut failed = Vec::new();
    tx.query(sql::FAILED_ROWS, &id, &mut |r| {
        failed.push(FailedRow {
            subscriber: r.text(0)?,
            op: Op::parse(&r.text(1)?),
            code: r.int(2)?,
            attempts: u32::try_from(r.int(3)?).unwrap_or(u32::MAX),
            first_at: r.int(4)?,
            last_at: r.int(5)?,
            run_id: r.int(6)?,
        });
        Ok(())
    })?;
    let mut drift = Vec::new();
    tx.query(sql::DRIFT_ROWS, &id, &mut |r| {
        drift.push(DriftRow {
            direction: r.text(0)?,
            subscriber: r.text(1)?,
            observed_at: r.int(2)?,
        });
        Ok(())
    })?;
    let mut intents = Vec::new();
    tx.query(sql::INTENT_ROWS, &id, &mut |r| {
        intents.push(IntentRow {
            subscriber: r.text(0)?,
            op: Op::parse(&r.text(1)?),
            run_id: r.int(2)?,
        });
        Ok(())
    })?;
    let properties = super::properties::of(tx, row.id)?;
    Ok(AccountDump {
        official_account: row.name,
        properties,
        facts: row.facts,
        refreshed_at: row.refreshed_at,
        updated_at: row.updated_at,
        confirmed,
        failed,
        drift,
        intents,
    })
}

//! Reading a SQLite ledger: snapshots for planning, summaries for status, rows for copying.
//! Every function reads inside one read transaction, so what it returns is consistent.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row};

use super::{Sqlite, q};
use crate::ledger::backend::{AccountDump, ConfirmedRow, DriftRow, FailedRow, Meta, RunRow};
use crate::ledger::{
    AccountFacts, AccountState, AccountSummary, Drift, FailedEntry, LedgerError, Op, Run, Snapshot,
    sql,
};

fn meta(conn: &Connection) -> rusqlite::Result<(String, u64, i64)> {
    let mut stmt = conn.prepare_cached(&q(sql::META_GET))?;
    let mut get = |key: &str| stmt.query_row([key], |r| r.get::<_, String>(0)).optional();
    let lineage = get("lineage")?.unwrap_or_default();
    let serial = get("serial")?.and_then(|s| s.parse().ok()).unwrap_or(0);
    let created_at = get("created_at")?.and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((lineage, serial, created_at))
}

fn facts_from(r: &Row<'_>, first: usize) -> rusqlite::Result<AccountFacts> {
    Ok(AccountFacts {
        max_subscribers: r.get(first)?,
        subscriber_num: r.get(first + 1)?,
        limit_reached_at: r.get(first + 2)?,
        missing_since: r.get(first + 3)?,
        invalid_since: r.get(first + 4)?,
    })
}

/// An `accounts` row as [`sql::ACCOUNTS`] selects it: id, name, facts, refreshed_at,
/// updated_at.
type AccountRow = (i64, String, AccountFacts, Option<i64>, i64);

fn account_row(r: &Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        facts_from(r, 2)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn strings(
    conn: &Connection,
    query: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(&q(query))?
        .query_map(params, |r| r.get(0))?
        .collect()
}

impl Sqlite {
    pub(super) fn read_snapshot(&self) -> Result<Snapshot, LedgerError> {
        self.read(|tx| {
            let (lineage, serial, _) = meta(tx)?;
            let rows: Vec<AccountRow> = tx
                .prepare(sql::ACCOUNTS)?
                .query_map([], account_row)?
                .collect::<Result<_, _>>()?;
            let mut accounts = BTreeMap::new();
            for (id, name, facts, refreshed_at, _) in rows {
                let failed = tx
                    .prepare_cached(&q(sql::FAILED_OF))?
                    .query_map([id], |r| {
                        Ok(FailedEntry {
                            subscriber: r.get(0)?,
                            code: r.get(1)?,
                            attempts: r.get(2)?,
                            last_at: r.get(3)?,
                            op: Op::parse(&r.get::<_, String>(4)?),
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let state = AccountState {
                    confirmed: strings(tx, sql::CONFIRMED_OF, [id])?,
                    failed,
                    facts,
                    drift: Drift {
                        added: strings(tx, sql::DRIFT_OF, (id, "added"))?,
                        removed: strings(tx, sql::DRIFT_OF, (id, "removed"))?,
                        at: refreshed_at,
                    },
                };
                accounts.insert(name, state);
            }
            Ok(Snapshot {
                lineage: Some(lineage),
                serial,
                accounts,
            })
        })
    }

    pub(super) fn read_summaries(&self) -> Result<(Snapshot, Vec<AccountSummary>), LedgerError> {
        self.read(|tx| {
            let (lineage, serial, _) = meta(tx)?;
            let rows = tx
                .prepare(sql::SUMMARIES)?
                .query_map([], |r| {
                    Ok(AccountSummary {
                        official_account: r.get(0)?,
                        confirmed: r.get(1)?,
                        failed: r.get(2)?,
                        facts: facts_from(r, 3)?,
                        refreshed_at: r.get(8)?,
                        drift_added: r.get(9)?,
                        drift_removed: r.get(10)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let snapshot = Snapshot {
                lineage: Some(lineage),
                serial,
                accounts: BTreeMap::new(),
            };
            Ok((snapshot, rows))
        })
    }

    pub(super) fn read_runs(&self, limit: usize) -> Result<Vec<Run>, LedgerError> {
        self.read(|tx| {
            tx.prepare(&q(sql::RUNS_LATEST))?
                .query_map([limit as i64], run_from)?
                .collect()
        })
    }

    pub(super) fn read_meta(&self) -> Result<Meta, LedgerError> {
        self.read(|tx| {
            let (lineage, serial, created_at) = meta(tx)?;
            let accounts = tx
                .prepare(sql::ACCOUNTS)?
                .query_map([], |r| r.get(1))?
                .collect::<Result<_, _>>()?;
            Ok(Meta {
                lineage,
                serial,
                created_at,
                accounts,
            })
        })
    }

    pub(super) fn read_account(&self, account: &str) -> Result<AccountDump, LedgerError> {
        self.read(|tx| {
            let Some((id, name, facts, refreshed_at, updated_at)) = tx
                .prepare(&q(sql::ACCOUNT_BY_NAME))?
                .query_row([account], account_row)
                .optional()?
            else {
                return Ok(AccountDump {
                    official_account: account.to_owned(),
                    ..AccountDump::default()
                });
            };
            let confirmed = tx
                .prepare(&q(sql::CONFIRMED_ROWS))?
                .query_map([id], |r| {
                    Ok(ConfirmedRow {
                        subscriber: r.get(0)?,
                        confirmed_at: r.get(1)?,
                        run_id: r.get(2)?,
                        already: r.get(3)?,
                        observed: r.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let failed = tx
                .prepare(&q(sql::FAILED_ROWS))?
                .query_map([id], |r| {
                    Ok(FailedRow {
                        subscriber: r.get(0)?,
                        op: Op::parse(&r.get::<_, String>(1)?),
                        code: r.get(2)?,
                        attempts: r.get(3)?,
                        first_at: r.get(4)?,
                        last_at: r.get(5)?,
                        run_id: r.get(6)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let drift = tx
                .prepare(&q(sql::DRIFT_ROWS))?
                .query_map([id], |r| {
                    Ok(DriftRow {
                        direction: r.get(0)?,
                        subscriber: r.get(1)?,
                        observed_at: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(AccountDump {
                official_account: name,
                facts,
                refreshed_at,
                updated_at,
                confirmed,
                failed,
                drift,
            })
        })
    }

    pub(super) fn read_all_runs(&self) -> Result<Vec<RunRow>, LedgerError> {
        self.read(|tx| {
            tx.prepare(sql::RUNS_ALL)?
                .query_map([], |r| {
                    Ok(RunRow {
                        run: run_from(r)?,
                        version: r.get(8)?,
                    })
                })?
                .collect()
        })
    }

    /// Runs `f` in one read transaction.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let err = |e| self.error(e);
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        let out = f(&tx).map_err(err)?;
        tx.finish().map_err(err)?;
        Ok(out)
    }
}

fn run_from(r: &Row<'_>) -> rusqlite::Result<Run> {
    let summary: Option<String> = r.get(6)?;
    Ok(Run {
        id: r.get(0)?,
        command: r.get(1)?,
        started_at: r.get(2)?,
        finished_at: r.get(3)?,
        revision: r.get(4)?,
        result: r.get(5)?,
        summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
        pid: r.get(7)?,
    })
}

//! Reading a PostgreSQL ledger, each call in one read-only REPEATABLE READ transaction so that
//! what it returns is consistent; and filling an empty one for `ledger copy`.

use std::collections::BTreeMap;

use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::ToSql;
use ::postgres::{Client, GenericClient, IsolationLevel, Row, Transaction};

use super::Postgres;
use crate::ledger::backend::{
    AccountDump, ConfirmedRow, Copied, DriftRow, FailedRow, Meta, RunRow, View,
};
use crate::ledger::{
    AccountFacts, AccountState, AccountSummary, Drift, FailedEntry, LedgerError, Op, Run, Snapshot,
    sql,
};

type PgResult<T> = Result<T, ::postgres::Error>;

fn reading<T>(
    client: &mut Client,
    f: impl FnOnce(&mut Transaction<'_>) -> PgResult<T>,
) -> PgResult<T> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

fn meta(tx: &mut impl GenericClient) -> PgResult<(String, u64, i64)> {
    let mut get = |key: &str| -> PgResult<Option<String>> {
        tx.query_opt(sql::META_GET, &[&key])?
            .map(|r| r.try_get(0))
            .transpose()
    };
    let lineage = get("lineage")?.unwrap_or_default();
    let serial = get("serial")?.and_then(|s| s.parse().ok()).unwrap_or(0);
    let created_at = get("created_at")?.and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((lineage, serial, created_at))
}

fn facts_from(r: &Row, first: usize) -> PgResult<AccountFacts> {
    let count = |i: usize| -> PgResult<Option<u64>> {
        Ok(r.try_get::<_, Option<i64>>(i)?.map(|v| v as u64))
    };
    Ok(AccountFacts {
        max_subscribers: count(first)?,
        subscriber_num: count(first + 1)?,
        limit_reached_at: r.try_get(first + 2)?,
        missing_since: r.try_get(first + 3)?,
        invalid_since: r.try_get(first + 4)?,
    })
}

/// Streams one text column: large lists never sit in memory as rows.
fn strings(
    tx: &mut Transaction<'_>,
    query: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<Vec<String>> {
    let mut rows = tx.query_raw(query, params.iter().copied())?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(row.try_get(0)?);
    }
    Ok(out)
}

type AccountRow = (i64, String, AccountFacts, Option<i64>, i64);

fn account_row(r: &Row) -> PgResult<AccountRow> {
    Ok((
        r.try_get(0)?,
        r.try_get(1)?,
        facts_from(r, 2)?,
        r.try_get(7)?,
        r.try_get(8)?,
    ))
}

pub fn snapshot(client: &mut Client) -> PgResult<Snapshot> {
    reading(client, |tx| {
        let (lineage, serial, _) = meta(tx)?;
        let rows = tx.query(sql::ACCOUNTS, &[])?;
        let mut accounts = BTreeMap::new();
        for row in &rows {
            let (id, name, facts, refreshed_at, _) = account_row(row)?;
            let failed = tx
                .query(sql::FAILED_OF, &[&id])?
                .iter()
                .map(|r| {
                    Ok(FailedEntry {
                        subscriber: r.try_get(0)?,
                        code: r.try_get(1)?,
                        attempts: r.try_get::<_, i64>(2)? as u32,
                        last_at: r.try_get(3)?,
                        op: Op::parse(r.try_get(4)?),
                    })
                })
                .collect::<PgResult<_>>()?;
            let state = AccountState {
                confirmed: strings(tx, sql::CONFIRMED_OF, &[&id])?,
                failed,
                facts,
                drift: Drift {
                    added: strings(tx, sql::DRIFT_OF, &[&id, &"added"])?,
                    removed: strings(tx, sql::DRIFT_OF, &[&id, &"removed"])?,
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

pub fn summaries(client: &mut Client) -> PgResult<(Snapshot, Vec<AccountSummary>)> {
    reading(client, |tx| {
        let (lineage, serial, _) = meta(tx)?;
        let count = |r: &Row, i: usize| -> PgResult<u64> { Ok(r.try_get::<_, i64>(i)? as u64) };
        let rows = tx
            .query(sql::SUMMARIES, &[])?
            .iter()
            .map(|r| {
                Ok(AccountSummary {
                    official_account: r.try_get(0)?,
                    confirmed: count(r, 1)?,
                    failed: count(r, 2)?,
                    facts: facts_from(r, 3)?,
                    refreshed_at: r.try_get(8)?,
                    drift_added: count(r, 9)?,
                    drift_removed: count(r, 10)?,
                })
            })
            .collect::<PgResult<_>>()?;
        let snapshot = Snapshot {
            lineage: Some(lineage),
            serial,
            accounts: BTreeMap::new(),
        };
        Ok((snapshot, rows))
    })
}

fn run_from(r: &Row) -> PgResult<Run> {
    let summary: Option<String> = r.try_get(6)?;
    Ok(Run {
        id: r.try_get(0)?,
        command: r.try_get(1)?,
        started_at: r.try_get(2)?,
        finished_at: r.try_get(3)?,
        revision: r.try_get(4)?,
        result: r.try_get(5)?,
        summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
        pid: r.try_get(7)?,
    })
}

pub fn runs(client: &mut Client, limit: usize) -> PgResult<Vec<Run>> {
    reading(client, |tx| {
        tx.query(sql::RUNS_LATEST, &[&(limit as i64)])?
            .iter()
            .map(run_from)
            .collect()
    })
}

pub fn all_runs(client: &mut Client) -> PgResult<Vec<RunRow>> {
    reading(client, |tx| {
        tx.query(sql::RUNS_ALL, &[])?
            .iter()
            .map(|r| {
                Ok(RunRow {
                    run: run_from(r)?,
                    version: r.try_get(8)?,
                })
            })
            .collect()
    })
}

pub fn meta_full(client: &mut Client) -> PgResult<Meta> {
    reading(client, |tx| {
        let (lineage, serial, created_at) = meta(tx)?;
        let accounts = tx
            .query(sql::ACCOUNTS, &[])?
            .iter()
            .map(|r| r.try_get(1))
            .collect::<PgResult<_>>()?;
        Ok(Meta {
            lineage,
            serial,
            created_at,
            accounts,
        })
    })
}

pub fn account(client: &mut Client, account: &str) -> PgResult<AccountDump> {
    reading(client, |tx| {
        let Some(row) = tx.query_opt(sql::ACCOUNT_BY_NAME, &[&account])? else {
            return Ok(AccountDump {
                official_account: account.to_owned(),
                ..AccountDump::default()
            });
        };
        let (id, official_account, facts, refreshed_at, updated_at) = account_row(&row)?;
        let confirmed = tx
            .query(sql::CONFIRMED_ROWS, &[&id])?
            .iter()
            .map(|r| {
                Ok(ConfirmedRow {
                    subscriber: r.try_get(0)?,
                    confirmed_at: r.try_get(1)?,
                    run_id: r.try_get(2)?,
                    already: r.try_get(3)?,
                    observed: r.try_get(4)?,
                })
            })
            .collect::<PgResult<_>>()?;
        let failed = tx
            .query(sql::FAILED_ROWS, &[&id])?
            .iter()
            .map(|r| {
                Ok(FailedRow {
                    subscriber: r.try_get(0)?,
                    op: Op::parse(r.try_get(1)?),
                    code: r.try_get(2)?,
                    attempts: r.try_get::<_, i64>(3)? as u32,
                    first_at: r.try_get(4)?,
                    last_at: r.try_get(5)?,
                    run_id: r.try_get(6)?,
                })
            })
            .collect::<PgResult<_>>()?;
        let drift = tx
            .query(sql::DRIFT_ROWS, &[&id])?
            .iter()
            .map(|r| {
                Ok(DriftRow {
                    direction: r.try_get(0)?,
                    subscriber: r.try_get(1)?,
                    observed_at: r.try_get(2)?,
                })
            })
            .collect::<PgResult<_>>()?;
        Ok(AccountDump {
            official_account,
            facts,
            refreshed_at,
            updated_at,
            confirmed,
            failed,
            drift,
        })
    })
}

/// Fills the empty ledger `to` with everything `from` holds, in one transaction.
pub fn import(to: &mut Postgres, from: &mut dyn View) -> Result<Copied, LedgerError> {
    enum Failed {
        Here(::postgres::Error),
        There(LedgerError),
    }
    impl From<::postgres::Error> for Failed {
        fn from(e: ::postgres::Error) -> Failed {
            Failed::Here(e)
        }
    }
    to.lease()?;
    let meta = from.export_meta()?;
    let runs = from.export_runs()?;
    let at = to.at.clone();
    let outcome = (|| -> Result<Copied, Failed> {
        let mut tx = to.client.transaction()?;
        let existing: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM runs)",
                &[],
            )?
            .try_get(0)?;
        if existing > 0 {
            return Err(Failed::There(LedgerError::NotEmpty { at }));
        }
        let mut copied = Copied::default();
        for row in &runs {
            let r = &row.run;
            let summary = r.summary.as_ref().map(ToString::to_string);
            tx.execute(
                sql::RUN_INSERT,
                &[
                    &r.id,
                    &r.command,
                    &r.started_at,
                    &r.finished_at,
                    &r.revision,
                    &r.result,
                    &summary,
                    &r.pid,
                    &row.version,
                ],
            )?;
            copied.runs += 1;
        }
        // Later runs continue the copied numbering.
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('runs', 'id'), GREATEST((SELECT max(id) FROM runs), 1))",
            &[],
        )?;
        for name in &meta.accounts {
            let a = from.export_account(name).map_err(Failed::There)?;
            insert_account(&mut tx, &a)?;
            copied.accounts += 1;
            copied.confirmed += a.confirmed.len() as u64;
            copied.failed += a.failed.len() as u64;
        }
        for (key, value) in [
            ("lineage", meta.lineage.clone()),
            ("serial", meta.serial.to_string()),
            ("created_at", meta.created_at.to_string()),
        ] {
            tx.execute(sql::META_SET, &[&key, &value])?;
        }
        tx.commit()?;
        Ok(copied)
    })();
    to.ids.clear();
    outcome.map_err(|f| match f {
        Failed::Here(e) => to.error(&e),
        Failed::There(e) => e,
    })
}

fn insert_account(tx: &mut Transaction<'_>, a: &AccountDump) -> PgResult<()> {
    let f = &a.facts;
    let count = |v: Option<u64>| v.map(|v| v as i64);
    let id: i64 = tx
        .query_one(
            sql::ACCOUNT_INSERT,
            &[
                &a.official_account,
                &a.updated_at,
                &count(f.max_subscribers),
                &count(f.subscriber_num),
                &f.limit_reached_at,
                &f.missing_since,
                &f.invalid_since,
                &a.refreshed_at,
            ],
        )?
        .try_get(0)?;
    // In slices, so that one statement never carries an unbounded array.
    for chunk in a.confirmed.chunks(50_000) {
        let subs: Vec<&str> = chunk.iter().map(|c| c.subscriber.as_str()).collect();
        let at: Vec<i64> = chunk.iter().map(|c| c.confirmed_at).collect();
        let runs: Vec<i64> = chunk.iter().map(|c| c.run_id).collect();
        let already: Vec<bool> = chunk.iter().map(|c| c.already).collect();
        let observed: Vec<bool> = chunk.iter().map(|c| c.observed).collect();
        tx.execute(
            "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed)
             SELECT CAST($1 AS BIGINT), * FROM unnest(CAST($2 AS TEXT[]), CAST($3 AS BIGINT[]), CAST($4 AS BIGINT[]), CAST($5 AS BOOLEAN[]), CAST($6 AS BOOLEAN[]))",
            &[&id, &subs, &at, &runs, &already, &observed],
        )?;
    }
    for r in &a.failed {
        tx.execute(
            "INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&id, &r.subscriber, &r.code, &i64::from(r.attempts), &r.first_at, &r.last_at, &r.run_id, &r.op.as_str()],
        )?;
    }
    for d in &a.drift {
        tx.execute(
            "INSERT INTO drift (account_id, direction, subscriber, observed_at) VALUES ($1, $2, $3, $4)",
            &[&id, &d.direction, &d.subscriber, &d.observed_at],
        )?;
    }
    Ok(())
}

//! Writing a SQLite ledger: every write one durable transaction that also bumps the serial.

use std::collections::HashMap;

use rusqlite::Transaction;

use super::{Sqlite, q};
use crate::ledger::backend::{Copied, Store, View};
use crate::ledger::{LedgerError, Op, Record, Refreshed, sql};

impl Store for Sqlite {
    fn location(&self) -> &str {
        &self.at
    }

    fn begin_run(&mut self, command: &str, revision: Option<&str>) -> Result<i64, LedgerError> {
        self.write(|tx, _| {
            tx.prepare_cached(&q(sql::RUN_BEGIN))?.query_row(
                (
                    command,
                    crate::clock::unix_millis(),
                    revision,
                    std::process::id(),
                    env!("CARGO_PKG_VERSION"),
                ),
                |r| r.get(0),
            )
        })
    }

    fn finish_run(
        &mut self,
        run: i64,
        result: &str,
        summary: &serde_json::Value,
    ) -> Result<(), LedgerError> {
        self.write(|tx, _| {
            tx.prepare_cached(&q(sql::RUN_FINISH))?.execute((
                run,
                crate::clock::unix_millis(),
                result,
                summary.to_string(),
            ))?;
            Ok(())
        })
    }

    fn record(&mut self, run: i64, records: &[Record]) -> Result<(), LedgerError> {
        self.write(|tx, ids| {
            let now = crate::clock::unix_millis();
            for record in records {
                match record {
                    Record::Batch { account, op, done, unchanged, failed } => {
                        let id = account_id(tx, ids, account, now)?;
                        let mut clear = tx.prepare_cached("DELETE FROM failed WHERE account_id = ?1 AND subscriber = ?2")?;
                        match op {
                            Op::Add => {
                                let mut confirm = tx.prepare_cached(
                                    "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already) VALUES (?1, ?2, ?3, ?4, ?5)
                                     ON CONFLICT (account_id, subscriber) DO UPDATE SET confirmed_at = excluded.confirmed_at, run_id = excluded.run_id, already = excluded.already, observed = 0",
                                )?;
                                for (list, is_already) in [(done, false), (unchanged, true)] {
                                    for s in list {
                                        confirm.execute((id, s, now, run, is_already))?;
                                        clear.execute((id, s))?;
                                    }
                                }
                            }
                            Op::Remove => {
                                let mut drop = tx.prepare_cached("DELETE FROM confirmed WHERE account_id = ?1 AND subscriber = ?2")?;
                                for s in done.iter().chain(unchanged) {
                                    drop.execute((id, s))?;
                                    clear.execute((id, s))?;
                                }
                            }
                        }
                        let mut fail = tx.prepare_cached(
                            "INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op) VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5, ?6)
                             ON CONFLICT (account_id, subscriber) DO UPDATE SET code = excluded.code, attempts = CASE WHEN failed.op = excluded.op THEN failed.attempts + 1 ELSE 1 END, last_at = excluded.last_at, run_id = excluded.run_id, op = excluded.op",
                        )?;
                        for (s, code) in failed {
                            fail.execute((id, s, code, now, run, op.as_str()))?;
                        }
                    }
                    Record::Account { account, fact } => {
                        let id = account_id(tx, ids, account, now)?;
                        let (max, num) = sql::fact_counts(fact);
                        tx.prepare_cached(&q(sql::fact(fact)))?.execute((id, now, max, num))?;
                    }
                }
            }
            Ok(())
        })
    }

    fn refresh_start(&mut self, account: &str) -> Result<(), LedgerError> {
        self.conn
            .execute(&q(sql::STAGE_CLEAR), [account])
            .map(drop)
            .map_err(|e| self.error(e))
    }

    fn observe(&mut self, account: &str, page: &[String]) -> Result<(), LedgerError> {
        let at = self.at.clone();
        let err = |e| super::schema::error(&at, e);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO observed (account, subscriber) VALUES (?1, ?2)",
                )
                .map_err(err)?;
            for s in page {
                insert.execute((account, s)).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn refresh_finish(
        &mut self,
        run: i64,
        account: &str,
        subscriber_num: Option<u64>,
        max_subscribers: Option<u64>,
    ) -> Result<Refreshed, LedgerError> {
        let num = subscriber_num.map(|v| v as i64);
        let max = max_subscribers.map(|v| v as i64);
        self.write(|tx, ids| {
            let now = crate::clock::unix_millis();
            let id = account_id(tx, ids, account, now)?;
            let seen: i64 = tx.query_row(&q(sql::STAGE_COUNT), [account], |r| r.get(0))?;
            tx.execute(&q(sql::REFRESH_DRIFT_CLEAR), [id])?;
            tx.execute(&q(sql::REFRESH_DRIFT_ADDED), (id, account, now))?;
            tx.execute(&q(sql::REFRESH_DRIFT_REMOVED), (id, account, now))?;
            let added = tx.execute(&q(sql::REFRESH_ADOPT), (id, now, run))?;
            let removed = tx.execute(&q(sql::REFRESH_DROP), [id])?;
            tx.execute(&q(sql::REFRESH_SETTLE), (id, account))?;
            tx.execute(&q(sql::REFRESH_FACTS), (id, now, num, max))?;
            tx.execute(&q(sql::STAGE_CLEAR), [account])?;
            Ok(Refreshed {
                seen: seen as u64,
                added: added as u64,
                removed: removed as u64,
            })
        })
    }

    fn check_lock(&mut self) -> Result<(), LedgerError> {
        // A file lock lives as long as the process.
        Ok(())
    }

    fn import(&mut self, from: &mut dyn View) -> Result<Copied, LedgerError> {
        let meta = from.export_meta()?;
        let at = self.at.clone();
        let err = |e| super::schema::error(&at, e);
        let tx = self.conn.transaction().map_err(err)?;
        let existing: i64 = tx
            .query_row(
                "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM runs)",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if existing > 0 {
            return Err(LedgerError::NotEmpty {
                at: self.at.clone(),
            });
        }
        let mut copied = Copied::default();
        for row in from.export_runs()? {
            let r = &row.run;
            tx.prepare_cached(&q(sql::RUN_INSERT))
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        r.id,
                        r.command,
                        r.started_at,
                        r.finished_at,
                        r.revision,
                        r.result,
                        r.summary.as_ref().map(ToString::to_string),
                        r.pid,
                        row.version
                    ])
                })
                .map_err(err)?;
            copied.runs += 1;
        }
        for name in &meta.accounts {
            let a = from.export_account(name)?;
            let f = &a.facts;
            let id: i64 = tx
                .prepare_cached(&q(sql::ACCOUNT_INSERT))
                .and_then(|mut s| {
                    s.query_row(
                        rusqlite::params![
                            a.official_account,
                            a.updated_at,
                            f.max_subscribers,
                            f.subscriber_num,
                            f.limit_reached_at,
                            f.missing_since,
                            f.invalid_since,
                            a.refreshed_at
                        ],
                        |r| r.get(0),
                    )
                })
                .map_err(err)?;
            let mut confirmed = tx
                .prepare_cached("INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(err)?;
            for c in &a.confirmed {
                confirmed
                    .execute((
                        id,
                        &c.subscriber,
                        c.confirmed_at,
                        c.run_id,
                        c.already,
                        c.observed,
                    ))
                    .map_err(err)?;
            }
            let mut failed = tx
                .prepare_cached("INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .map_err(err)?;
            for r in &a.failed {
                failed
                    .execute(rusqlite::params![
                        id,
                        r.subscriber,
                        r.code,
                        r.attempts,
                        r.first_at,
                        r.last_at,
                        r.run_id,
                        r.op.as_str()
                    ])
                    .map_err(err)?;
            }
            let mut drift = tx
                .prepare_cached("INSERT INTO drift (account_id, direction, subscriber, observed_at) VALUES (?1, ?2, ?3, ?4)")
                .map_err(err)?;
            for d in &a.drift {
                drift
                    .execute((id, &d.direction, &d.subscriber, d.observed_at))
                    .map_err(err)?;
            }
            copied.accounts += 1;
            copied.confirmed += a.confirmed.len() as u64;
            copied.failed += a.failed.len() as u64;
        }
        for (key, value) in [
            ("lineage", meta.lineage.clone()),
            ("serial", meta.serial.to_string()),
            ("created_at", meta.created_at.to_string()),
        ] {
            tx.execute(&q(sql::META_SET), (key, value)).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        self.ids.clear();
        Ok(copied)
    }
}

impl Sqlite {
    /// Runs `f` in a transaction that also bumps the serial, and commits durably.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>, &mut HashMap<String, i64>) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let at = self.at.clone();
        let err = |e| super::schema::error(&at, e);
        let tx = self.conn.transaction().map_err(err)?;
        let out = match f(&tx, &mut self.ids) {
            Ok(out) => out,
            Err(e) => {
                // Ids created inside the rolled-back transaction no longer exist.
                self.ids.clear();
                return Err(err(e));
            }
        };
        tx.execute(sql::BUMP_SERIAL, []).map_err(err)?;
        tx.commit().map_err(|e| {
            self.ids.clear();
            err(e)
        })?;
        Ok(out)
    }
}

fn account_id(
    tx: &Transaction<'_>,
    ids: &mut HashMap<String, i64>,
    account: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    if let Some(id) = ids.get(account) {
        return Ok(*id);
    }
    tx.prepare_cached(&q(sql::ACCOUNT_ENSURE))?
        .execute((account, now))?;
    let id: i64 = tx
        .prepare_cached(&q(sql::ACCOUNT_ID))?
        .query_row([account], |r| r.get(0))?;
    ids.insert(account.to_owned(), id);
    Ok(id)
}

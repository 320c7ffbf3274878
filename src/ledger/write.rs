//! The writer: holds the lock and performs every write, each in one durable transaction that
//! also increments the serial.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, Transaction};

use super::lock::{self, WriterLock};
use super::{AccountFact, LedgerError, Op, Record, Refreshed, Run, Snapshot, read, store};

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    account_ids: HashMap<String, i64>,
    _lock: WriterLock,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Takes the writer lock (refused at once if held) and opens, creating or upgrading, the ledger.
    pub fn open(state_dir: &Path, command: &str) -> Result<Ledger, LedgerError> {
        std::fs::create_dir_all(state_dir).map_err(|source| LedgerError::Io {
            path: state_dir.to_owned(),
            source,
        })?;
        let lock = lock::acquire(state_dir, command)?;
        let path = super::db_path(state_dir);
        let conn = store::open_write(&path)?;
        Ok(Ledger {
            conn,
            path,
            account_ids: HashMap::new(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
        |e| LedgerError::from_sqlite(&self.path, e)
    }

    pub fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        read::snapshot(&self.conn, &self.path)
    }

    pub fn serial(&self) -> Result<u64, LedgerError> {
        read::meta(&self.conn)
            .map(|(_, serial)| serial)
            .map_err(self.err())
    }

    pub fn accounts(&self) -> Result<Vec<super::AccountSummary>, LedgerError> {
        read::accounts(&self.conn, &self.path)
    }

    pub fn runs(&self, limit: usize) -> Result<Vec<Run>, LedgerError> {
        read::runs(&self.conn, limit).map_err(self.err())
    }

    /// Opens an audit-log entry; returns its id.
    pub fn begin_run(&mut self, command: &str, revision: Option<&str>) -> Result<i64, LedgerError> {
        self.write(|tx, _| {
            tx.execute(
                "INSERT INTO runs (command, started_at, revision, pid, version) VALUES (?1, ?2, ?3, ?4, ?5)",
                (command, crate::clock::unix_millis(), revision, std::process::id(), env!("CARGO_PKG_VERSION")),
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Closes an audit-log entry with its result and summary.
    pub fn finish_run(
        &mut self,
        run: i64,
        result: &str,
        summary: &serde_json::Value,
    ) -> Result<(), LedgerError> {
        self.write(|tx, _| {
            tx.execute(
                "UPDATE runs SET finished_at = ?2, result = ?3, summary = ?4 WHERE id = ?1",
                (
                    run,
                    crate::clock::unix_millis(),
                    result,
                    summary.to_string(),
                ),
            )?;
            Ok(())
        })
    }

    /// Records outcomes of `run`, all in one transaction.
    pub fn record(&mut self, run: i64, records: &[Record]) -> Result<(), LedgerError> {
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
                        let sql = match fact {
                            AccountFact::Info { .. } => "UPDATE accounts SET max_subscribers = ?3, subscriber_num = ?4, missing_since = NULL, invalid_since = NULL, updated_at = ?2 WHERE id = ?1",
                            AccountFact::LimitReached => "UPDATE accounts SET limit_reached_at = coalesce(limit_reached_at, ?2), updated_at = ?2 WHERE id = ?1 AND ?3 IS NULL AND ?4 IS NULL",
                            AccountFact::Missing => "UPDATE accounts SET missing_since = coalesce(missing_since, ?2), updated_at = ?2 WHERE id = ?1 AND ?3 IS NULL AND ?4 IS NULL",
                            AccountFact::Invalid => "UPDATE accounts SET invalid_since = coalesce(invalid_since, ?2), updated_at = ?2 WHERE id = ?1 AND ?3 IS NULL AND ?4 IS NULL",
                            AccountFact::Healthy => "UPDATE accounts SET limit_reached_at = NULL, missing_since = NULL, invalid_since = NULL, updated_at = ?2 WHERE id = ?1 AND ?3 IS NULL AND ?4 IS NULL",
                        };
                        let (max, num) = match fact {
                            AccountFact::Info { max_subscribers, subscriber_num } => (max_subscribers.map(|v| v as i64), subscriber_num.map(|v| v as i64)),
                            _ => (None, None),
                        };
                        tx.prepare_cached(sql)?.execute((id, now, max, num))?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Starts (or restarts) the refresh of `account`: forgets what an earlier, unfinished one
    /// staged.
    pub fn refresh_start(&mut self, account: &str) -> Result<(), LedgerError> {
        self.conn
            .execute("DELETE FROM temp.observed WHERE account = ?1", [account])
            .map(drop)
            .map_err(self.err())
    }

    /// Stages one page of `account`'s live list. Staging changes nothing in the ledger until
    /// [`Ledger::refresh_finish`].
    pub fn observe(&mut self, account: &str, page: &[String]) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let err = |e| LedgerError::from_sqlite(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO temp.observed (account, subscriber) VALUES (?1, ?2)",
                )
                .map_err(err)?;
            for s in page {
                insert.execute((account, s)).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Makes the ledger match `account`'s staged live list, in one transaction: subscribers
    /// seen but unknown are adopted as confirmed, confirmed ones not seen are dropped, both are
    /// kept as the account's drift, and the account's counts are recorded.
    pub fn refresh_finish(
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
            let seen: i64 = tx.query_row(
                "SELECT count(*) FROM temp.observed WHERE account = ?1",
                [account],
                |r| r.get(0),
            )?;
            tx.execute("DELETE FROM drift WHERE account_id = ?1", [id])?;
            tx.execute(
                "INSERT INTO drift (account_id, direction, subscriber, observed_at)
                 SELECT ?1, 'added', o.subscriber, ?3 FROM temp.observed o
                 WHERE o.account = ?2 AND NOT EXISTS (SELECT 1 FROM confirmed c WHERE c.account_id = ?1 AND c.subscriber = o.subscriber)",
                (id, account, now),
            )?;
            tx.execute(
                "INSERT INTO drift (account_id, direction, subscriber, observed_at)
                 SELECT ?1, 'removed', c.subscriber, ?3 FROM confirmed c
                 WHERE c.account_id = ?1 AND NOT EXISTS (SELECT 1 FROM temp.observed o WHERE o.account = ?2 AND o.subscriber = c.subscriber)",
                (id, account, now),
            )?;
            let added = tx.execute(
                "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed)
                 SELECT ?1, subscriber, ?2, ?3, 0, 1 FROM drift WHERE account_id = ?1 AND direction = 'added'",
                (id, now, run),
            )?;
            let removed = tx.execute(
                "DELETE FROM confirmed WHERE account_id = ?1 AND subscriber IN
                 (SELECT subscriber FROM drift WHERE account_id = ?1 AND direction = 'removed')",
                [id],
            )?;
            // Failures the live list has since settled: subscribed after all, or gone already.
            tx.execute(
                "DELETE FROM failed WHERE account_id = ?1 AND (
                   (op = 'add' AND subscriber IN (SELECT subscriber FROM temp.observed WHERE account = ?2))
                   OR (op = 'remove' AND subscriber NOT IN (SELECT subscriber FROM temp.observed WHERE account = ?2)))",
                (id, account),
            )?;
            tx.execute(
                "UPDATE accounts SET refreshed_at = ?2, subscriber_num = coalesce(?3, subscriber_num),
                 max_subscribers = coalesce(?4, max_subscribers), missing_since = NULL, invalid_since = NULL, updated_at = ?2
                 WHERE id = ?1",
                (id, now, num, max),
            )?;
            tx.execute("DELETE FROM temp.observed WHERE account = ?1", [account])?;
            Ok(Refreshed {
                seen: seen as u64,
                added: added as u64,
                removed: removed as u64,
            })
        })
    }

    /// Runs `f` in a transaction that also bumps the serial, and commits durably.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>, &mut HashMap<String, i64>) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let path = self.path.clone();
        let err = |e| LedgerError::from_sqlite(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let out = match f(&tx, &mut self.account_ids) {
            Ok(out) => out,
            Err(e) => {
                // Ids created inside the rolled-back transaction no longer exist.
                self.account_ids.clear();
                return Err(err(e));
            }
        };
        tx.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'serial'",
            [],
        )
        .map_err(err)?;
        tx.commit().map_err(|e| {
            self.account_ids.clear();
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
    tx.prepare_cached("INSERT INTO accounts (official_account, updated_at) VALUES (?1, ?2) ON CONFLICT (official_account) DO NOTHING")?
        .execute((account, now))?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM accounts WHERE official_account = ?1")?
        .query_row([account], |r| r.get(0))?;
    ids.insert(account.to_owned(), id);
    Ok(id)
}

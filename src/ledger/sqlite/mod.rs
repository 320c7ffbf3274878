//! The SQLite backend, the default: a single file at `STATE/ledger.db`.
//!
//! The writer lock is a POSIX lock on `STATE/ledger.lock` ([`lock`]) that the operating system
//! releases when the process dies, so it cannot be lost while the process lives. WAL lets
//! readers (plan, status) read while a writer writes; `synchronous = FULL` makes every commit
//! durable. A file that is not SQLite, or is somebody else's database, is reported and never
//! touched ([`schema`]). Errors of the driver become [`LedgerError`]s here and nowhere else.

mod lock;
mod schema;

use std::path::Path;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, params_from_iter};

use super::backend::{Backend, ConfirmedRow, Param, Row, Tx, TxFn};
use super::location::Access;
use super::{LedgerError, Op, sql};

/// An open SQLite ledger: read-only for a reader, with the lock held for the writer.
pub struct Sqlite {
    conn: Connection,
    /// The file, as messages show it.
    at: String,
    /// Held for as long as a writer lives; `None` for a reader.
    _lock: Option<lock::WriterLock>,
}

/// Opens the ledger in `dir`: read-only (`None` when there is none yet), or as the writer.
pub fn open(dir: &Path, access: Access<'_>) -> Result<Option<Box<dyn Backend>>, LedgerError> {
    let path = dir.join(super::FILE_NAME);
    let at = path.display().to_string();
    match access {
        Access::Read => Ok(schema::open_read(&path)?.map(|conn| {
            Box::new(Sqlite {
                conn,
                at,
                _lock: None,
            }) as Box<dyn Backend>
        })),
        Access::Write { command } => {
            schema::create_dir(dir)?;
            let lock = lock::acquire(dir, command)?;
            let conn = schema::open_write(&path)?;
            Ok(Some(Box::new(Sqlite {
                conn,
                at,
                _lock: Some(lock),
            })))
        }
    }
}

impl Backend for Sqlite {
    fn location(&self) -> &str {
        &self.at
    }

    fn read(&mut self, f: &mut TxFn<'_>) -> Result<(), LedgerError> {
        let at = self.at.clone();
        let err = |e| schema::error(&at, e);
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        f(&mut SqliteTx {
            conn: &tx,
            at: &self.at,
        })?;
        tx.finish().map_err(err)
    }

    fn write(&mut self, f: &mut TxFn<'_>) -> Result<(), LedgerError> {
        let at = self.at.clone();
        let err = |e| schema::error(&at, e);
        let tx = self.conn.transaction().map_err(err)?;
        f(&mut SqliteTx { conn: &tx, at: &at })?;
        tx.execute(sql::BUMP_SERIAL, []).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn check_lock(&mut self) -> Result<(), LedgerError> {
        // A POSIX lock lives as long as the process.
        Ok(())
    }

    fn stage(&mut self, account: &str, page: &[String]) -> Result<(), LedgerError> {
        let at = self.at.clone();
        let err = |e| schema::error(&at, e);
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

    fn unstage(&mut self, account: &str) -> Result<(), LedgerError> {
        self.conn
            .execute(&sql::for_sqlite(sql::STAGE_CLEAR), [account])
            .map(drop)
            .map_err(|e| schema::error(&self.at, e))
    }
}

/// Statements inside one SQLite transaction (reads and writes alike run on the connection the
/// transaction holds).
struct SqliteTx<'a> {
    conn: &'a Connection,
    at: &'a str,
}

impl SqliteTx<'_> {
    fn err(&self, e: rusqlite::Error) -> LedgerError {
        schema::error(self.at, e)
    }

    /// Runs `sql` once for each subscriber, bound as `?2` after the account id.
    fn each(&self, sql: &str, account: i64, subscribers: &[String]) -> Result<(), LedgerError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        for s in subscribers {
            stmt.execute((account, s)).map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(v)),
            Param::OptInt(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Integer(v)),
            Param::Text(s) | Param::OptText(Some(s)) => {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
            Param::OptInt(None) | Param::OptText(None) => ToSqlOutput::Borrowed(ValueRef::Null),
            Param::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(b))),
        })
    }
}

struct SqliteRow<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    at: &'r str,
}

impl SqliteRow<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, column: usize) -> Result<T, LedgerError> {
        self.row.get(column).map_err(|e| schema::error(self.at, e))
    }
}

super::backend::row_by_get!(SqliteRow<'_, '_>);

impl Tx for SqliteTx<'_> {
    fn execute(&mut self, sql: &'static str, params: &[Param<'_>]) -> Result<u64, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(&sql::for_sqlite(sql))
            .map_err(|e| self.err(e))?;
        let changed = stmt
            .execute(params_from_iter(params))
            .map_err(|e| self.err(e))?;
        Ok(changed as u64)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(&sql::for_sqlite(sql))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(params_from_iter(params))
            .map_err(|e| schema::error(self.at, e))?;
        while let Some(row) = rows.next().map_err(|e| schema::error(self.at, e))? {
            each(&SqliteRow { row, at: self.at })?;
        }
        Ok(())
    }

    fn confirm(
        &mut self,
        account: i64,
        subscribers: &[String],
        now: i64,
        run: i64,
        already: bool,
    ) -> Result<(), LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, managed) VALUES (?1, ?2, ?3, ?4, ?5, 1)
                 ON CONFLICT (account_id, subscriber) DO UPDATE SET confirmed_at = excluded.confirmed_at, run_id = excluded.run_id, already = excluded.already, observed = 0, managed = 1",
            )
            .map_err(|e| self.err(e))?;
        for s in subscribers {
            stmt.execute((account, s, now, run, already))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn unconfirm(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError> {
        self.each(
            "DELETE FROM confirmed WHERE account_id = ?1 AND subscriber = ?2",
            account,
            subscribers,
        )
    }

    fn clear_failed(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError> {
        self.each(
            "DELETE FROM failed WHERE account_id = ?1 AND subscriber = ?2",
            account,
            subscribers,
        )
    }

    fn fail(
        &mut self,
        account: i64,
        failed: &[(String, i64)],
        op: Op,
        now: i64,
        run: i64,
    ) -> Result<(), LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op) VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5, ?6)
                 ON CONFLICT (account_id, subscriber) DO UPDATE SET code = excluded.code, attempts = CASE WHEN failed.op = excluded.op THEN failed.attempts + 1 ELSE 1 END, last_at = excluded.last_at, run_id = excluded.run_id, op = excluded.op",
            )
            .map_err(|e| self.err(e))?;
        for (s, code) in failed {
            stmt.execute((account, s, code, now, run, op.as_str()))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn confirmed(&mut self, account: i64, each: &mut dyn FnMut(String)) -> Result<(), LedgerError> {
        self.query(sql::CONFIRMED_OF, &[Param::Int(account)], &mut |r| {
            each(r.text(0)?);
            Ok(())
        })
    }

    fn manage(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError> {
        self.each(
            "UPDATE confirmed SET managed = 1 WHERE account_id = ?1 AND subscriber = ?2",
            account,
            subscribers,
        )
    }

    fn intend(
        &mut self,
        account: i64,
        subscribers: &[String],
        op: Op,
        run: i64,
    ) -> Result<(), LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(&sql::for_sqlite(sql::INTENT_INSERT))
            .map_err(|e| self.err(e))?;
        for s in subscribers {
            stmt.execute((account, s, op.as_str(), run))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn clear_intents(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError> {
        self.each(
            "DELETE FROM intents WHERE account_id = ?1 AND subscriber = ?2",
            account,
            subscribers,
        )
    }

    fn copy_confirmed(&mut self, account: i64, rows: &[ConfirmedRow]) -> Result<(), LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .map_err(|e| self.err(e))?;
        for c in rows {
            stmt.execute((
                account,
                &c.subscriber,
                c.confirmed_at,
                c.run_id,
                c.already,
                c.observed,
                c.managed,
            ))
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

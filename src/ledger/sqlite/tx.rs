//! One SQLite transaction: the ledger's reads and writes in SQLite's SQL (`sql.rs`), each a
//! call on the blocking pool; statements are cached by the connection.

use std::ops::ControlFlow;

use rusqlite::types::Value;
use rusqlite::{Connection, named_params};

use super::read::{self, rows};
use super::write::{insert_account, step};
use super::{Db, error, sql};
use crate::ledger::changes::Step;
use crate::ledger::model::Stored;
use crate::ledger::rows::{AccountRow, ConfirmedRow, Decode, Identity, RunRow};
use crate::ledger::store::{
    AccountDump, AccountRows, Chunk, Chunks, Fut, NewRun, ReadTx, RefreshEnd, WriteTx,
};
use crate::ledger::write::RefreshStep;
use crate::ledger::{AccountOverview, KnownProperties, LedgerError, RunOutcome};

/// Named parameters, owned (a call runs on another thread).
type Params = Vec<(&'static str, Value)>;

/// A transaction on the store's connection.
pub(super) struct SqliteTx {
    db: Db,
    write: bool,
}

/// A row as `rows.rs` reads it.
pub(super) struct SqliteRow<'r, 's> {
    pub(crate) row: &'r rusqlite::Row<'s>,
    pub(crate) at: &'r str,
}

impl SqliteRow<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> Result<T, LedgerError> {
        self.row.get(column).map_err(|e| error(self.at, e))
    }
}

crate::ledger::rows::row_by_get!(SqliteRow<'_, '_>);

pub(super) fn int(v: i64) -> Value {
    Value::Integer(v)
}

pub(super) fn text(v: impl Into<String>) -> Value {
    Value::Text(v.into())
}

pub(super) fn opt_int(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::Integer)
}

fn opt_text(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::Text)
}

/// Binds those of `params` that `statement` names.
pub(super) fn bind(
    statement: &mut rusqlite::Statement<'_>,
    params: &[(&str, Value)],
) -> rusqlite::Result<()> {
    for (name, value) in params {
        if let Some(i) = statement.parameter_index(name)? {
            statement.raw_bind_parameter(i, value)?;
        }
    }
    Ok(())
}

/// Runs `text` with those of `params` it names; answers the rows it changed.
pub(super) fn execute(
    conn: &Connection,
    at: &str,
    text: &str,
    params: &[(&str, Value)],
) -> Result<u64, LedgerError> {
    let run = || {
        let mut statement = conn.prepare_cached(text)?;
        bind(&mut statement, params)?;
        statement.raw_execute()
    };
    run().map(|n| n as u64).map_err(|e| error(at, e))
}

impl SqliteTx {
    /// Begins a transaction on `db`: deferred for a read (its snapshot starts with its first
    /// read), immediate for a write. One a given-up call left open is rolled back first.
    pub(super) async fn begin(db: Db, write: bool) -> Result<SqliteTx, LedgerError> {
        db.call(move |conn, at| {
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK").map_err(|e| error(at, e))?;
            }
            let begin = if write { "BEGIN IMMEDIATE" } else { "BEGIN" };
            conn.execute_batch(begin).map_err(|e| error(at, e))
        })
        .await?;
        Ok(SqliteTx { db, write })
    }

    fn select<R: Decode + Send + 'static>(
        &self,
        text: &'static str,
        params: Params,
    ) -> Fut<'static, Vec<R>> {
        let db = self.db.clone();
        Box::pin(async move { db.call(move |conn, at| rows(conn, at, text, &params)).await })
    }

    fn batch(&self, statements: &'static str) -> Fut<'static, ()> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(move |conn, at| conn.execute_batch(statements).map_err(|e| error(at, e)))
                .await
        })
    }
}

impl<'c> ReadTx<'c> for SqliteTx {
    fn identity(&mut self) -> Fut<'_, Identity> {
        let db = self.db.clone();
        Box::pin(async move { db.call(read::identity).await })
    }

    fn held(&mut self) -> Fut<'_, Vec<String>> {
        let db = self.db.clone();
        Box::pin(async move { db.call(read::held).await })
    }

    fn accounts(&mut self) -> Fut<'_, Vec<AccountRow>> {
        self.select(sql::ACCOUNTS, Vec::new())
    }

    fn account(&mut self, name: String) -> Fut<'_, Option<AccountRows>> {
        let db = self.db.clone();
        // One call for all of it: planning asks once per account.
        Box::pin(async move { db.call(move |conn, at| read::account(conn, at, name)).await })
    }

    fn properties(&mut self, account: i64) -> Fut<'_, KnownProperties> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(move |conn, at| read::properties(conn, at, account))
                .await
        })
    }

    fn confirmed(&mut self, account: i64, out: Chunks) -> Fut<'_, ()> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(move |conn, at| {
                let mut batch = Chunk::new();
                read::confirmed(conn, at, account, &mut |s| {
                    batch.push(s);
                    if batch.is_full() && out.blocking_send(std::mem::take(&mut batch)).is_err() {
                        // The reader stopped listening: nothing more is wanted.
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                })?;
                if !batch.is_empty() {
                    let _ = out.blocking_send(batch);
                }
                Ok(())
            })
            .await
        })
    }

    fn confirmed_rows(&mut self, account: i64) -> Fut<'_, Vec<ConfirmedRow>> {
        self.select(sql::CONFIRMED_ROWS, vec![(":account", int(account))])
    }

    fn overviews(&mut self) -> Fut<'_, Vec<AccountOverview>> {
        self.select(sql::OVERVIEWS, Vec::new())
    }

    fn runs(&mut self, limit: Option<u64>) -> Fut<'_, Vec<RunRow>> {
        match limit {
            Some(limit) => {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                self.select(sql::RUNS, vec![(":limit", int(limit))])
            }
            None => self.select(sql::RUNS_ALL, Vec::new()),
        }
    }

    fn end(self: Box<Self>) -> Fut<'c, ()> {
        // A read changes nothing; a write that is ended instead of committed leaves nothing.
        self.batch(if self.write { "ROLLBACK" } else { "COMMIT" })
    }
}

impl<'c> WriteTx<'c> for SqliteTx {
    fn account_id(&mut self, name: String, now: i64) -> Fut<'_, i64> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(move |conn, at| {
                let name = [(":name", text(name)), (":now", int(now))];
                execute(conn, at, sql::ACCOUNT_ENSURE, &name)?;
                conn.prepare_cached(sql::ACCOUNT_ID)
                    .and_then(|mut s| {
                        s.query_row(named_params! {":name": name[0].1}, |r| {
                            r.get::<_, i64>("id")
                        })
                    })
                    .map_err(|e| error(at, e))
            })
            .await
        })
    }

    fn apply(&mut self, run: i64, now: i64, steps: Vec<Step>) -> Fut<'_, ()> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(move |conn, at| {
                steps
                    .into_iter()
                    .try_for_each(|s| step(conn, at, run, now, s))
            })
            .await
        })
    }

    fn begin_run(&mut self, run: NewRun) -> Fut<'_, i64> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(move |conn, at| {
                conn.prepare_cached(sql::RUN_BEGIN)
                    .and_then(|mut s| {
                        s.query_row(
                            named_params! {
                                ":command": run.command,
                                ":started_at": run.started_at,
                                ":revision": run.revision,
                                ":pid": run.pid,
                                ":version": run.version,
                            },
                            |r| r.get::<_, i64>("id"),
                        )
                    })
                    .map_err(|e| error(at, e))
            })
            .await
        })
    }

    fn finish_run(
        &mut self,
        run: i64,
        now: i64,
        result: RunOutcome,
        summary: String,
    ) -> Fut<'_, ()> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(move |conn, at| {
                let params = [
                    (":run", int(run)),
                    (":now", int(now)),
                    (":result", text(result.as_str())),
                    (":summary", text(summary)),
                ];
                execute(conn, at, sql::RUN_FINISH, &params).map(drop)
            })
            .await
        })
    }

    fn refresh_step<'a>(&'a mut self, step: RefreshStep, end: &'a RefreshEnd) -> Fut<'a, u64> {
        let db = self.db.clone();
        let params = vec![
            (":account", int(end.account)),
            (":name", text(end.official_account.clone())),
            (":now", int(end.now)),
            (":run", int(end.run)),
            (":max", opt_int(end.max_subscribers)),
        ];
        Box::pin(async move {
            db.call(move |conn, at| {
                let text = sql::refresh(step);
                if step != RefreshStep::Seen {
                    return execute(conn, at, text, &params);
                }
                let seen: i64 = conn
                    .prepare_cached(text)
                    .and_then(|mut s| {
                        s.query_row(named_params! {":name": params[1].1}, |r| r.get(0))
                    })
                    .map_err(|e| error(at, e))?;
                Ok(u64::try_from(seen).unwrap_or(0))
            })
            .await
        })
    }

    fn is_empty(&mut self) -> Fut<'_, bool> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(|conn, at| {
                conn.query_row(sql::ANYTHING, [], |r| r.get::<_, bool>(0))
                    .map(|anything| !anything)
                    .map_err(|e| error(at, e))
            })
            .await
        })
    }

    fn insert_runs(&mut self, runs: Vec<RunRow>) -> Fut<'_, ()> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(move |conn, at| {
                for r in runs {
                    let params = [
                        (":id", int(r.id)),
                        (":command", text(r.command)),
                        (":started_at", int(r.started_at)),
                        (":finished_at", opt_int(r.finished_at)),
                        (":revision", opt_text(r.revision)),
                        (":result", opt_text(r.result.map(|o| o.as_str().to_owned()))),
                        (":summary", opt_text(r.summary)),
                        (":pid", int(r.pid)),
                        (":version", text(r.version)),
                    ];
                    execute(conn, at, sql::RUN_INSERT, &params)?;
                }
                Ok(())
            })
            .await
        })
    }

    fn insert_account(&mut self, dump: AccountDump) -> Fut<'_, ()> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(move |conn, at| insert_account(conn, at, dump))
                .await
        })
    }

    fn set_identity(&mut self, identity: Identity) -> Fut<'_, ()> {
        let db = self.db.clone();
        Box::pin(async move {
            db.call(move |conn, at| {
                for (key, value) in [
                    ("lineage", identity.lineage.clone()),
                    ("serial", identity.serial.to_string()),
                    ("created_at", identity.created_at.to_string()),
                ] {
                    execute(
                        conn,
                        at,
                        sql::META_SET,
                        &[(":key", text(key)), (":value", text(value))],
                    )?;
                }
                Ok(())
            })
            .await
        })
    }

    fn commit(self: Box<Self>) -> Fut<'c, ()> {
        self.batch(
            "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'serial'; COMMIT",
        )
    }

    fn rollback(self: Box<Self>) -> Fut<'c, ()> {
        self.batch("ROLLBACK")
    }
}

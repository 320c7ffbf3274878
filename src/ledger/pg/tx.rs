//! Statements inside one PostgreSQL transaction: the ledger's shared SQL, each with the
//! session's deadline, and the bulk statements spelt PostgreSQL's way (arrays, `unnest`).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::runtime::Runtime;
use tokio_postgres::Statement;
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::{Fault, Session, describe};
use crate::ledger::backend::{ConfirmedRow, Param, Row, Tx};
use crate::ledger::{LedgerError, Op};

/// Statements inside one PostgreSQL transaction.
pub(super) struct PgTx<'a, 't> {
    pub(super) rt: &'a Runtime,
    pub(super) tx: &'a tokio_postgres::Transaction<'t>,
    pub(super) deadline: Duration,
    pub(super) prepared: &'a mut HashMap<&'static str, Statement>,
    /// The driver's fault behind the last error handed to the caller, kept so that the
    /// transaction can tell a lost session from a failed statement.
    pub(super) fault: Option<Fault>,
}

impl PgTx<'_, '_> {
    fn wait<T>(&mut self, fut: impl Future<Output = Result<T, Fault>>) -> Result<T, LedgerError> {
        Session::wait(self.rt, self.deadline, fut).map_err(|fault| self.keep(fault))
    }

    /// Keeps `fault` for the transaction and hands the caller a placeholder error; the
    /// transaction reports the real one with its location.
    fn keep(&mut self, fault: Fault) -> LedgerError {
        let shown = match &fault {
            Fault::Db(e) => describe(e),
            Fault::Silent(_) | Fault::Abandoned => "the server fell silent".into(),
            Fault::Caller(e) => e.to_string(),
        };
        self.fault = Some(fault);
        LedgerError::Database {
            at: String::new(),
            detail: shown,
        }
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement, LedgerError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let tx = self.tx;
        let statement = self.wait(async { Ok(tx.prepare(sql).await?) })?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }

    fn run(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, LedgerError> {
        let statement = self.statement(sql)?;
        let tx = self.tx;
        self.wait(async { Ok(tx.execute(&statement, params).await?) })
    }
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Int(v) => v.to_sql(ty, out),
            Param::OptInt(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
            Param::OptText(v) => v.to_sql(ty, out),
            Param::Bool(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Int(v) => v.to_sql_checked(ty, out),
            Param::OptInt(v) => v.to_sql_checked(ty, out),
            Param::Text(v) => v.to_sql_checked(ty, out),
            Param::OptText(v) => v.to_sql_checked(ty, out),
            Param::Bool(v) => v.to_sql_checked(ty, out),
        }
    }
}

struct PgRow<'r>(&'r tokio_postgres::Row);

impl PgRow<'_> {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        &'a self,
        column: usize,
    ) -> Result<T, LedgerError> {
        self.0.try_get(column).map_err(|e| LedgerError::Database {
            at: String::new(),
            detail: describe(&e),
        })
    }
}

crate::ledger::backend::row_by_get!(PgRow<'_>);

impl Tx for PgTx<'_, '_> {
    fn execute(&mut self, sql: &'static str, params: &[Param<'_>]) -> Result<u64, LedgerError> {
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        self.run(sql, &params)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let statement = self.statement(sql)?;
        let (tx, deadline) = (self.tx, self.deadline);
        let streamed = self.rt.block_on(async {
            let rows = tokio::time::timeout(deadline, tx.query_raw(&statement, params.iter()))
                .await
                .map_err(|_| Fault::Silent(deadline))??;
            futures_util::pin_mut!(rows);
            // The deadline is for the server's silence, not the whole answer: each row resets it.
            // Rows already received are taken without a timer; only a wait arms one.
            loop {
                let next = match futures_util::FutureExt::now_or_never(rows.next()) {
                    Some(next) => next,
                    None => tokio::time::timeout(deadline, rows.next())
                        .await
                        .map_err(|_| Fault::Silent(deadline))?,
                };
                match next {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(Fault::Db(e)),
                    Some(Ok(row)) => each(&PgRow(&row)).map_err(Fault::Caller)?,
                }
            }
        });
        streamed.map_err(|fault| match fault {
            Fault::Caller(e) => e,
            fault => self.keep(fault),
        })
    }

    fn confirm(
        &mut self,
        account: i64,
        subscribers: &[String],
        now: i64,
        run: i64,
        already: bool,
    ) -> Result<(), LedgerError> {
        self.run(
            "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, managed)
             SELECT CAST($1 AS BIGINT), s, CAST($3 AS BIGINT), CAST($4 AS BIGINT), CAST($5 AS BOOLEAN), true
             FROM (SELECT DISTINCT unnest(CAST($2 AS TEXT[])) AS s) AS l
             ON CONFLICT (account_id, subscriber) DO UPDATE SET confirmed_at = excluded.confirmed_at,
               run_id = excluded.run_id, already = excluded.already, observed = false, managed = true",
            &[&account, &subscribers, &now, &run, &already],
        )
        .map(drop)
    }

    fn unconfirm(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError> {
        self.run(
            "DELETE FROM confirmed WHERE account_id = $1 AND subscriber = ANY(CAST($2 AS TEXT[]))",
            &[&account, &subscribers],
        )
        .map(drop)
    }

    fn clear_failed(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError> {
        self.run(
            "DELETE FROM failed WHERE account_id = $1 AND subscriber = ANY(CAST($2 AS TEXT[]))",
            &[&account, &subscribers],
        )
        .map(drop)
    }

    fn fail(
        &mut self,
        account: i64,
        failed: &[(String, i64)],
        op: Op,
        now: i64,
        run: i64,
    ) -> Result<(), LedgerError> {
        // One row per subscriber: the last code wins, as one statement per row would have it.
        let mut last: HashMap<&str, i64> = HashMap::with_capacity(failed.len());
        for (s, code) in failed {
            last.insert(s, *code);
        }
        let (subs, codes): (Vec<&str>, Vec<i64>) = last.into_iter().unzip();
        self.run(
            "INSERT INTO failed (account_id, subscriber, code, attempts, first_at, last_at, run_id, op)
             SELECT CAST($1 AS BIGINT), s, c, 1, CAST($4 AS BIGINT), CAST($4 AS BIGINT), CAST($5 AS BIGINT), CAST($6 AS TEXT)
             FROM unnest(CAST($2 AS TEXT[]), CAST($3 AS BIGINT[])) AS t(s, c)
             ON CONFLICT (account_id, subscriber) DO UPDATE SET code = excluded.code,
               attempts = CASE WHEN failed.op = excluded.op THEN failed.attempts + 1 ELSE 1 END,
               last_at = excluded.last_at, run_id = excluded.run_id, op = excluded.op",
            &[&account, &subs, &codes, &now, &run, &op.as_str()],
        )
        .map(drop)
    }

    fn confirmed(&mut self, account: i64, each: &mut dyn FnMut(String)) -> Result<(), LedgerError> {
        // The rows must come off the primary key in order. Right after a bulk load the
        // planner has no statistics yet and would sort the account's rows instead (on disk,
        // for a large one); reading transactions change nothing, so sorting is ruled out in
        // them.
        let tx = self.tx;
        self.wait(async { Ok(tx.batch_execute("SET LOCAL enable_sort = off").await?) })?;
        self.query(
            crate::ledger::sql::CONFIRMED_OF,
            &[Param::Int(account)],
            &mut |r| {
                each(r.text(0)?);
                Ok(())
            },
        )
    }

    fn manage(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError> {
        self.run(
            "UPDATE confirmed SET managed = true WHERE account_id = $1 AND subscriber = ANY(CAST($2 AS TEXT[]))",
            &[&account, &subscribers],
        )
        .map(drop)
    }

    fn intend(
        &mut self,
        account: i64,
        subscribers: &[String],
        op: Op,
        run: i64,
    ) -> Result<(), LedgerError> {
        self.run(
            "INSERT INTO intents (account_id, subscriber, op, run_id)
             SELECT CAST($1 AS BIGINT), s, CAST($3 AS TEXT), CAST($4 AS BIGINT)
             FROM (SELECT DISTINCT unnest(CAST($2 AS TEXT[])) AS s) AS l
             ON CONFLICT (account_id, subscriber) DO NOTHING",
            &[&account, &subscribers, &op.as_str(), &run],
        )
        .map(drop)
    }

    fn clear_intents(&mut self, account: i64, subscribers: &[String]) -> Result<(), LedgerError> {
        self.run(
            "DELETE FROM intents WHERE account_id = $1 AND subscriber = ANY(CAST($2 AS TEXT[]))",
            &[&account, &subscribers],
        )
        .map(drop)
    }

    fn copy_confirmed(&mut self, account: i64, rows: &[ConfirmedRow]) -> Result<(), LedgerError> {
        let subs: Vec<&str> = rows.iter().map(|c| c.subscriber.as_str()).collect();
        let at: Vec<i64> = rows.iter().map(|c| c.confirmed_at).collect();
        let runs: Vec<i64> = rows.iter().map(|c| c.run_id).collect();
        let already: Vec<bool> = rows.iter().map(|c| c.already).collect();
        let observed: Vec<bool> = rows.iter().map(|c| c.observed).collect();
        let managed: Vec<bool> = rows.iter().map(|c| c.managed).collect();
        self.run(
            "INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id, already, observed, managed)
             SELECT CAST($1 AS BIGINT), * FROM unnest(CAST($2 AS TEXT[]), CAST($3 AS BIGINT[]), CAST($4 AS BIGINT[]), CAST($5 AS BOOLEAN[]), CAST($6 AS BOOLEAN[]), CAST($7 AS BOOLEAN[]))",
            &[&account, &subs, &at, &runs, &already, &observed, &managed],
        )
        .map(drop)
    }
}

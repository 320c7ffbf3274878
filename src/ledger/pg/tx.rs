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
            loop {
                match next_within(&mut rows, deadline).await? {
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
        let (tx, deadline) = (self.tx, self.deadline);
        self.wait(async { Ok(tx.batch_execute("SET LOCAL enable_sort = off").await?) })?;
        // COPY sends the rows as lines of text in large chunks: no message, no row object and
        // no per-row decode, on the server's side or ours. The account id is a number: it
        // cannot change the statement.
        let sql = format!(
            "COPY ({}) TO STDOUT",
            crate::ledger::sql::CONFIRMED_OF.replace("$1", &account.to_string())
        );
        let streamed = self.rt.block_on(async {
            let chunks = tokio::time::timeout(deadline, tx.copy_out(sql.as_str()))
                .await
                .map_err(|_| Fault::Silent(deadline))??;
            futures_util::pin_mut!(chunks);
            let mut lines = CopyLines::default();
            while let Some(chunk) = next_within(&mut chunks, deadline).await? {
                lines
                    .feed(&chunk.map_err(Fault::Db)?, &mut *each)
                    .map_err(Fault::Caller)?;
            }
            lines.finish().map_err(Fault::Caller)
        });
        streamed.map_err(|fault| match fault {
            Fault::Caller(e) => e,
            fault => self.keep(fault),
        })
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

/// The next item of `stream`, waiting at most `deadline` for it: the deadline is for the
/// server's silence, not the whole answer. Items already received are taken without a timer;
/// only a wait arms one.
async fn next_within<S: futures_util::Stream + Unpin>(
    stream: &mut S,
    deadline: Duration,
) -> Result<Option<S::Item>, Fault> {
    match futures_util::FutureExt::now_or_never(stream.next()) {
        Some(next) => Ok(next),
        None => tokio::time::timeout(deadline, stream.next())
            .await
            .map_err(|_| Fault::Silent(deadline)),
    }
}

/// The one-column rows of `COPY ... TO STDOUT` (text format), from chunks that may end
/// anywhere in a line.
#[derive(Default)]
struct CopyLines {
    partial: Vec<u8>,
}

impl CopyLines {
    fn feed(&mut self, chunk: &[u8], each: &mut dyn FnMut(String)) -> Result<(), LedgerError> {
        let mut start = 0;
        for end in chunk
            .iter()
            .enumerate()
            .filter_map(|(i, b)| (*b == b'\n').then_some(i))
        {
            let piece = &chunk[start..end];
            let value = if self.partial.is_empty() {
                copy_text(piece)?
            } else {
                self.partial.extend_from_slice(piece);
                let value = copy_text(&self.partial)?;
                self.partial.clear();
                value
            };
            each(value);
            start = end + 1;
        }
        self.partial.extend_from_slice(&chunk[start..]);
        Ok(())
    }

    fn finish(self) -> Result<(), LedgerError> {
        if self.partial.is_empty() {
            Ok(())
        } else {
            Err(unreadable("a COPY row without its end"))
        }
    }
}

fn unreadable(what: &str) -> LedgerError {
    LedgerError::Database {
        at: String::new(),
        detail: format!("the server sent {what}"),
    }
}

/// One field of COPY's text format: backslash escapes undone (`\\`, `\t`, `\n`, octal and
/// hex bytes, and any other escaped character as itself).
fn copy_text(field: &[u8]) -> Result<String, LedgerError> {
    if !field.contains(&b'\\') {
        return String::from_utf8(field.to_vec())
            .map_err(|_| unreadable("a subscriber that is not UTF-8"));
    }
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(e) = bytes.next() else {
            return Err(unreadable("a field ending in a lone backslash"));
        };
        let digit = |b: Option<&u8>, radix: u32| b.and_then(|b| (*b as char).to_digit(radix));
        out.push(match e {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match digit(bytes.peek(), 8) {
                        Some(d) => {
                            v = v * 8 + d;
                            bytes.next();
                        }
                        None => break,
                    }
                }
                (v & 0xff) as u8
            }
            b'x' if digit(bytes.peek(), 16).is_some() => {
                let mut v = 0;
                for _ in 0..2 {
                    match digit(bytes.peek(), 16) {
                        Some(d) => {
                            v = v * 16 + d;
                            bytes.next();
                        }
                        None => break,
                    }
                }
                v as u8
            }
            other => other,
        });
    }
    String::from_utf8(out).map_err(|_| unreadable("a subscriber that is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut got = Vec::new();
        let mut lines = CopyLines::default();
        for c in chunks {
            lines.feed(c, &mut |s| got.push(s)).unwrap();
        }
        lines.finish().unwrap();
        got
    }

    #[test]
    fn copy_rows_split_anywhere_come_out_whole() {
        let all: &[u8] = b"alice\nbob\ncarol\n";
        let whole = lines(&[all]);
        assert_eq!(whole, ["alice", "bob", "carol"]);
        for cut in 0..all.len() {
            assert_eq!(lines(&[&all[..cut], &all[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn copy_escapes_are_undone() {
        assert_eq!(copy_text(br"a\\b\tc\x41\101\q").unwrap(), "a\\b\tcAAq");
        assert!(copy_text(b"tail\\").is_err());
    }

    #[test]
    fn a_row_without_its_end_is_an_error() {
        let mut l = CopyLines::default();
        l.feed(b"alice\nbo", &mut |_| {}).unwrap();
        assert!(l.finish().is_err());
    }
}

//! Reading in SQLite, synchronously, on the blocking pool: the helpers the transaction's
//! async reads call, and the planner's [`AccountSource`] straight over the connection. A view
//! runs the planner on the same thread as SQLite's reads, so that no subscriber, and no
//! chunk of them, passes between threads (each thread would also bring an allocator arena of
//! its own, memory faulted in afresh).

use std::ops::ControlFlow;

use rusqlite::Connection;
use rusqlite::types::Value;

use super::tx::{SqliteRow, bind, int, text};
use super::{error, sql};
use crate::ledger::rows::{AccountRow, Decode, Identity, Name, Pair};
use crate::ledger::source::InMemory;
use crate::ledger::store::AccountRows;
use crate::ledger::view::Planner;
use crate::ledger::{AccountSource, AccountView, Confirmed, KnownProperties, LedgerError};

/// The rows of `text` over those of `params` it names.
pub(super) fn rows<R: Decode>(
    conn: &Connection,
    at: &str,
    text: &str,
    params: &[(&str, Value)],
) -> Result<Vec<R>, LedgerError> {
    let err = |e| error(at, e);
    let mut statement = conn.prepare_cached(text).map_err(err)?;
    bind(&mut statement, params).map_err(err)?;
    let mut found = statement.raw_query();
    let mut out = Vec::new();
    while let Some(row) = found.next().map_err(err)? {
        out.push(R::decode(&SqliteRow { row, at })?);
    }
    Ok(out)
}

pub(super) fn identity(conn: &Connection, at: &str) -> Result<Identity, LedgerError> {
    Identity::from_pairs(at, &rows::<Pair>(conn, at, sql::META, &[])?)
}

pub(super) fn held(conn: &Connection, at: &str) -> Result<Vec<String>, LedgerError> {
    let names = rows::<Name>(conn, at, sql::HELD, &[])?;
    Ok(names.into_iter().map(|n| n.0).collect())
}

/// The account named `name`, with its rows but its confirmed subscribers.
pub(super) fn account(
    conn: &Connection,
    at: &str,
    name: String,
) -> Result<Option<AccountRows>, LedgerError> {
    let named = [(":name", text(name))];
    let Some(account) = rows::<AccountRow>(conn, at, sql::ACCOUNT, &named)?.pop() else {
        return Ok(None);
    };
    let of = [(":account", int(account.id))];
    let names = rows::<Name>(conn, at, sql::OUT_OF_BAND, &of)?;
    Ok(Some(AccountRows {
        properties: properties(conn, at, account.id)?,
        out_of_band: names.into_iter().map(|n| n.0).collect(),
        intents: rows(conn, at, sql::INTENTS, &of)?,
        drift: rows(conn, at, sql::DRIFT, &of)?,
        failed: rows(conn, at, sql::FAILED, &of)?,
        account,
    }))
}

/// The account's own properties (nothing yet reads as empty).
pub(super) fn properties(
    conn: &Connection,
    at: &str,
    account: i64,
) -> Result<KnownProperties, LedgerError> {
    let of = [(":account", int(account))];
    let found = rows::<KnownProperties>(conn, at, sql::PROPERTIES, &of)?.pop();
    Ok(found.unwrap_or_default())
}

/// Hands the account's confirmed subscribers to `each` in byte order, borrowed from SQLite's
/// rows (nothing is allocated per subscriber), until it breaks.
pub(super) fn confirmed(
    conn: &Connection,
    at: &str,
    account: i64,
    each: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<(), LedgerError> {
    let err = |e| error(at, e);
    let mut statement = conn.prepare_cached(sql::CONFIRMED).map_err(err)?;
    bind(&mut statement, &[(":account", int(account))]).map_err(err)?;
    let mut found = statement.raw_query();
    while let Some(row) = found.next().map_err(err)? {
        let subscriber = row.get_ref(0).and_then(|v| Ok(v.as_str()?));
        if each(subscriber.map_err(err)?).is_break() {
            break;
        }
    }
    Ok(())
}

/// Runs `planner` over one read transaction of `conn`, on this (blocking) thread.
pub(super) fn view(conn: &Connection, at: &str, planner: Planner) -> Result<(), LedgerError> {
    let batch = |sql| conn.execute_batch(sql).map_err(|e| error(at, e));
    if !conn.is_autocommit() {
        batch("ROLLBACK")?;
    }
    batch("BEGIN")?;
    let planned = planner(&mut SqliteSource { conn, at });
    let ended = batch("COMMIT");
    planned.and(ended)
}

/// The ledger as the planner reads it, over the connection.
struct SqliteSource<'c> {
    conn: &'c Connection,
    at: &'c str,
}

impl AccountSource for SqliteSource<'_> {
    fn identity(&mut self) -> Result<(Option<String>, u64), LedgerError> {
        let identity = identity(self.conn, self.at)?;
        Ok((Some(identity.lineage), identity.serial))
    }

    fn held(&mut self) -> Result<Vec<String>, LedgerError> {
        let mut held = held(self.conn, self.at)?;
        held.sort();
        Ok(held)
    }

    fn account(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(&AccountView, &mut dyn Confirmed) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        match account(self.conn, self.at, name.to_owned())? {
            None => f(&AccountView::default(), &mut InMemory(&[])),
            Some(rows) => {
                let view = crate::ledger::read::account_view(&rows);
                let id = rows.account.id;
                f(&view, &mut Streamed { source: self, id })
            }
        }
    }
}

/// An account's confirmed subscribers as SQLite reads them.
struct Streamed<'s, 'c> {
    source: &'s SqliteSource<'c>,
    id: i64,
}

impl Confirmed for Streamed<'_, '_> {
    fn each(&mut self, f: &mut dyn FnMut(&str)) -> Result<(), LedgerError> {
        let SqliteSource { conn, at } = self.source;
        confirmed(conn, at, self.id, &mut |s| {
            f(s);
            ControlFlow::Continue(())
        })
    }
}

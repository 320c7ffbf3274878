//! Writing in SQLite: the steps that record a run (`changes::Step`), a subscriber at a time
//! through cached statements (in-process, a row costs no round trip), and a copied account's
//! rows.

use rusqlite::Connection;
use rusqlite::types::Value;

use super::tx::{bind, execute, int, opt_int, text};
use super::{error, sql};
use crate::ledger::LedgerError;
use crate::ledger::changes::Step;
use crate::ledger::model::Stored;
use crate::ledger::properties;
use crate::ledger::store::AccountDump;

/// Runs one step of recording a run: once, or once per subscriber when the statement names
/// `:subscriber` (with its `:code` when it names that too).
pub(super) fn step(
    conn: &Connection,
    at: &str,
    run: i64,
    now: i64,
    step: Step,
) -> Result<(), LedgerError> {
    let stored = step.properties.as_deref().cloned().unwrap_or_default();
    let shared = [
        (":account", int(step.account)),
        (":now", int(now)),
        (":run", int(run)),
        (":already", Value::Integer(i64::from(step.already))),
        (":op", text(step.op.as_str())),
        (":max", opt_int(step.max)),
        (":num", opt_int(step.num)),
        (":live", text(stored.live)),
        (":owner", stored.owner.map_or(Value::Null, Value::Text)),
        (":learnt_at", opt_int(stored.learnt_at)),
        (":declared", text(stored.declared)),
        (":kept", text(stored.kept)),
    ];
    let run = || {
        let mut statement = conn.prepare_cached(sql::step(step.statement))?;
        bind(&mut statement, &shared)?;
        let Some(subscriber) = statement.parameter_index(":subscriber")? else {
            return statement.raw_execute().map(drop);
        };
        let code = statement.parameter_index(":code")?;
        for (i, s) in step.subscribers.iter().enumerate() {
            statement.raw_bind_parameter(subscriber, s)?;
            if let (Some(slot), Some(value)) = (code, step.codes.get(i)) {
                statement.raw_bind_parameter(slot, value)?;
            }
            statement.raw_execute()?;
        }
        Ok(())
    };
    run().map_err(|e| error(at, e))
}

/// Inserts a copied account and its rows.
pub(super) fn insert_account(
    conn: &Connection,
    at: &str,
    dump: AccountDump,
) -> Result<(), LedgerError> {
    let a = dump.rows.account;
    let f = a.facts;
    let count = |v: Option<u64>| opt_int(v.map(|v| i64::try_from(v).unwrap_or(i64::MAX)));
    let row = [
        (":name", text(a.official_account)),
        (":updated_at", int(a.updated_at)),
        (":max", count(f.max_subscribers)),
        (":num", count(f.subscriber_num)),
        (":limit_reached_at", opt_int(f.limit_reached_at)),
        (":missing_since", opt_int(f.missing_since)),
        (":invalid_since", opt_int(f.invalid_since)),
        (":counted_at", opt_int(f.counted_at)),
        (":refreshed_at", opt_int(a.refreshed_at)),
    ];
    let id = conn
        .prepare_cached(sql::ACCOUNT_INSERT)
        .and_then(|mut s| {
            let params: Vec<(&str, &dyn rusqlite::ToSql)> = row
                .iter()
                .map(|(n, v)| (*n, v as &dyn rusqlite::ToSql))
                .collect();
            s.query_row(params.as_slice(), |r| r.get::<_, i64>("id"))
        })
        .map_err(|e| error(at, e))?;
    if let Some(put) = properties::copied(id, &dump.rows.properties) {
        step(conn, at, 0, 0, put)?;
    }
    for c in dump.confirmed {
        let params = [
            (":account", int(id)),
            (":subscriber", text(c.subscriber)),
            (":at", int(c.confirmed_at)),
            (":run", int(c.run_id)),
            (":already", Value::Integer(i64::from(c.already))),
            (":observed", Value::Integer(i64::from(c.observed))),
            (":managed", Value::Integer(i64::from(c.managed))),
        ];
        execute(conn, at, sql::CONFIRMED_INSERT, &params)?;
    }
    for r in dump.rows.failed {
        let params = [
            (":account", int(id)),
            (":subscriber", text(r.subscriber)),
            (":code", int(r.code)),
            (":attempts", int(i64::from(r.attempts))),
            (":first_at", int(r.first_at)),
            (":last_at", int(r.last_at)),
            (":run", int(r.run_id)),
            (":op", text(r.op.as_str())),
        ];
        execute(conn, at, sql::FAILED_INSERT, &params)?;
    }
    for d in dump.rows.drift {
        let params = [
            (":account", int(id)),
            (":direction", text(d.direction.as_str())),
            (":subscriber", text(d.subscriber)),
            (":at", int(d.observed_at)),
        ];
        execute(conn, at, sql::DRIFT_INSERT, &params)?;
    }
    for i in dump.rows.intents {
        let params = [
            (":account", int(id)),
            (":subscriber", text(i.subscriber)),
            (":op", text(i.op.as_str())),
            (":run", int(i.run_id)),
        ];
        execute(conn, at, sql::INTEND, &params)?;
    }
    Ok(())
}

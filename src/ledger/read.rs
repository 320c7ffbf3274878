//! Read-only access: snapshots for planning and summaries for status. Never writes, never
//! creates the file, never waits for the writer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use super::{
    AccountFacts, AccountState, AccountSummary, Drift, FailedEntry, LedgerError, Op, Run, Snapshot,
    store,
};

pub struct Reader {
    conn: Option<Connection>,
    path: PathBuf,
}

impl Reader {
    /// Opens `STATE/ledger.db` read-only; a missing ledger reads as empty.
    pub fn open(state_dir: &Path) -> Result<Reader, LedgerError> {
        let path = super::db_path(state_dir);
        Ok(Reader {
            conn: store::open_read(&path)?,
            path,
        })
    }

    pub fn exists(&self) -> bool {
        self.conn.is_some()
    }

    pub fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        match &self.conn {
            Some(conn) => snapshot(conn, &self.path),
            None => Ok(Snapshot::default()),
        }
    }

    pub fn summaries(&self) -> Result<(Snapshot, Vec<AccountSummary>), LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok((Snapshot::default(), Vec::new()));
        };
        let err = |e| LedgerError::from_sqlite(&self.path, e);
        let tx = conn.unchecked_transaction().map_err(err)?;
        let (lineage, serial) = meta(&tx).map_err(err)?;
        let rows = accounts(&tx, &self.path)?;
        let snapshot = Snapshot {
            lineage: Some(lineage),
            serial,
            accounts: BTreeMap::new(),
        };
        Ok((snapshot, rows))
    }

    /// The latest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<Run>, LedgerError> {
        let Some(conn) = &self.conn else {
            return Ok(Vec::new());
        };
        runs(conn, limit).map_err(|e| LedgerError::from_sqlite(&self.path, e))
    }
}

/// Counts and facts per account.
pub(super) fn accounts(conn: &Connection, path: &Path) -> Result<Vec<AccountSummary>, LedgerError> {
    let err = |e| LedgerError::from_sqlite(path, e);
    let mut stmt = conn
        .prepare(
            "SELECT a.official_account,
                    (SELECT count(*) FROM confirmed c WHERE c.account_id = a.id),
                    (SELECT count(*) FROM failed f WHERE f.account_id = a.id),
                    a.max_subscribers, a.subscriber_num, a.limit_reached_at, a.missing_since, a.invalid_since,
                    a.refreshed_at,
                    (SELECT count(*) FROM drift d WHERE d.account_id = a.id AND d.direction = 'added'),
                    (SELECT count(*) FROM drift d WHERE d.account_id = a.id AND d.direction = 'removed')
             FROM accounts a ORDER BY a.official_account",
        )
        .map_err(err)?;
    stmt.query_map([], |r| {
        Ok(AccountSummary {
            official_account: r.get(0)?,
            confirmed: r.get(1)?,
            failed: r.get(2)?,
            facts: facts_from(r, 3)?,
            refreshed_at: r.get(8)?,
            drift_added: r.get(9)?,
            drift_removed: r.get(10)?,
        })
    })
    .map_err(err)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(err)
}

pub(super) fn meta(conn: &Connection) -> rusqlite::Result<(String, u64)> {
    let get = |key: &str| {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, String>(0)
        })
        .optional()
    };
    let lineage = get("lineage")?.unwrap_or_default();
    let serial = get("serial")?.and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((lineage, serial))
}

fn facts_from(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<AccountFacts> {
    Ok(AccountFacts {
        max_subscribers: r.get(first)?,
        subscriber_num: r.get(first + 1)?,
        limit_reached_at: r.get(first + 2)?,
        missing_since: r.get(first + 3)?,
        invalid_since: r.get(first + 4)?,
    })
}

/// A consistent snapshot: all reads happen in one read transaction.
pub(super) fn snapshot(conn: &Connection, path: &Path) -> Result<Snapshot, LedgerError> {
    let err = |e| LedgerError::from_sqlite(path, e);
    let tx = conn.unchecked_transaction().map_err(err)?;
    let (lineage, serial) = meta(&tx).map_err(err)?;
    let mut accounts = BTreeMap::new();
    {
        let mut list = tx
            .prepare("SELECT id, official_account, max_subscribers, subscriber_num, limit_reached_at, missing_since, invalid_since, refreshed_at FROM accounts")
            .map_err(err)?;
        type Row = (i64, String, AccountFacts, Option<i64>);
        let ids: Vec<Row> = list
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, facts_from(r, 2)?, r.get(7)?))
            })
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mut drift = tx
            .prepare("SELECT subscriber FROM drift WHERE account_id = ?1 AND direction = ?2 ORDER BY subscriber")
            .map_err(err)?;
        // The primary key (account_id, subscriber) hands rows back already sorted.
        let mut confirmed = tx
            .prepare("SELECT subscriber FROM confirmed WHERE account_id = ?1 ORDER BY subscriber")
            .map_err(err)?;
        let mut failed = tx
            .prepare("SELECT subscriber, code, attempts, last_at, op FROM failed WHERE account_id = ?1 ORDER BY subscriber")
            .map_err(err)?;
        for (id, name, facts, refreshed_at) in ids {
            let confirmed: Vec<String> = confirmed
                .query_map([id], |r| r.get(0))
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?;
            let failed: Vec<FailedEntry> = failed
                .query_map([id], |r| {
                    Ok(FailedEntry {
                        subscriber: r.get(0)?,
                        code: r.get(1)?,
                        attempts: r.get(2)?,
                        last_at: r.get(3)?,
                        op: Op::parse(&r.get::<_, String>(4)?),
                    })
                })
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?;
            let mut found = |direction: &str| -> Result<Vec<String>, LedgerError> {
                drift
                    .query_map((id, direction), |r| r.get(0))
                    .map_err(err)?
                    .collect::<Result<_, _>>()
                    .map_err(err)
            };
            let drift = Drift {
                added: found("added")?,
                removed: found("removed")?,
                at: refreshed_at,
            };
            accounts.insert(
                name,
                AccountState {
                    confirmed,
                    failed,
                    facts,
                    drift,
                },
            );
        }
    }
    tx.finish().map_err(err)?;
    Ok(Snapshot {
        lineage: Some(lineage),
        serial,
        accounts,
    })
}

pub(super) fn runs(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Run>> {
    let mut stmt = conn.prepare(
        "SELECT id, command, started_at, finished_at, revision, result, summary, pid FROM runs ORDER BY id DESC LIMIT ?1",
    )?;
    stmt.query_map([limit as i64], |r| {
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
    })?
    .collect()
}

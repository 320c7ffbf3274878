//! Opening the database file: identity checks, pragmas and schema migrations.
//!
//! A ledger is recognised by its SQLite `application_id`. A file that is not SQLite, or is
//! somebody else's database, is reported with its path and never touched, let alone recreated.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::ledger::{Cause, LedgerError, SCHEMA_VERSION};

/// `SUBS` in ASCII.
pub(super) const APPLICATION_ID: i32 = 0x5355_4253;

/// Each entry upgrades the schema by one version; the index + 1 is the version it produces.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE accounts (
    id               INTEGER PRIMARY KEY,
    official_account TEXT NOT NULL UNIQUE,
    max_subscribers  INTEGER,
    subscriber_num   INTEGER,
    limit_reached_at INTEGER,
    missing_since    INTEGER,
    invalid_since    INTEGER,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE confirmed (
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    subscriber   TEXT NOT NULL,
    confirmed_at INTEGER NOT NULL,
    run_id       INTEGER NOT NULL,
    already      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, subscriber)
) WITHOUT ROWID;

CREATE TABLE failed (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    subscriber TEXT NOT NULL,
    code       INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    first_at   INTEGER NOT NULL,
    last_at    INTEGER NOT NULL,
    run_id     INTEGER NOT NULL,
    PRIMARY KEY (account_id, subscriber)
) WITHOUT ROWID;

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    command     TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    revision    TEXT,
    result      TEXT,
    summary     TEXT,
    pid         INTEGER NOT NULL,
    version     TEXT NOT NULL
);
"#,
    r#"
-- Prune and refresh: batches remove as well as add; refreshes adopt what they observe.
ALTER TABLE failed ADD COLUMN op TEXT NOT NULL DEFAULT 'add';
ALTER TABLE confirmed ADD COLUMN observed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN refreshed_at INTEGER;

-- What the last refresh of each account found (direction 'added' or 'removed').
CREATE TABLE drift (
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    direction   TEXT NOT NULL,
    subscriber  TEXT NOT NULL,
    observed_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, direction, subscriber)
) WITHOUT ROWID;
"#,
    r#"
-- Ownership: prune removes only what subsync manages (added, imported, or listed in a
-- manifest); rows a refresh adopted outside `import` are not managed.
ALTER TABLE confirmed ADD COLUMN managed INTEGER NOT NULL DEFAULT 1;
UPDATE confirmed SET managed = 0
    WHERE observed = 1 AND run_id NOT IN (SELECT id FROM runs WHERE command = 'import');
-- Plans read the few out-of-band rows of an account without scanning the rest (`managed`
-- leads, so that SQLite's planner prefers this index without statistics).
CREATE INDEX confirmed_out_of_band ON confirmed (managed, account_id, subscriber)
    WHERE managed = false;
-- When the account's remote count was learned.
ALTER TABLE accounts ADD COLUMN counted_at INTEGER;
-- Changes about to be sent: after a crash, their "already subscribed" answers are subsync's
-- own, recovered, not drift.
CREATE TABLE intents (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    subscriber TEXT NOT NULL,
    op         TEXT NOT NULL,
    run_id     INTEGER NOT NULL,
    PRIMARY KEY (account_id, subscriber)
) WITHOUT ROWID;
"#,
    r#"
-- The official account's own properties (spec.account), each set of fields a JSON object:
-- as the service last described them (or subsync since set them), the manifests' declaration
-- at the last run, and the declared values subsync last knew to be in force.
CREATE TABLE account_properties (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
    live       TEXT NOT NULL,
    owner      TEXT,
    learnt_at  INTEGER,
    declared   TEXT NOT NULL,
    kept       TEXT NOT NULL
);
"#,
];

/// The live lists of accounts being refreshed, page by page, on the writer's connection only.
/// A TEMP table: staging costs no fsync of the ledger, and a crash leaves nothing behind.
const STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS observed (
    account    TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    PRIMARY KEY (account, subscriber)
) WITHOUT ROWID";

const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

fn sqlite(at: &str) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |e| super::error(at, e)
}

/// Opens an existing ledger read-only, or `None` when there is none yet. `at` is how
/// messages show it.
pub(super) fn open_read(
    path: &Path,
    at: &str,
) -> Result<Option<(Connection, String)>, LedgerError> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LedgerError::Io {
                at: at.to_owned(),
                action: "read",
                cause: Cause::new(e),
            });
        }
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(at))?;
    match check_contents(&conn, at)? {
        Contents::Empty => Ok(None),
        Contents::Ledger(version) => {
            LedgerError::check_version(at, version)?;
            Ok(Some((conn, at.to_owned())))
        }
    }
}

/// Opens (creating or upgrading) the ledger for writing. The caller holds the writer lock.
pub(super) fn open_write(path: &Path, at: &str) -> Result<Connection, LedgerError> {
    let mut conn = Connection::open(path).map_err(sqlite(at))?;
    let version = match check_contents(&conn, at)? {
        Contents::Empty => 0,
        Contents::Ledger(v) if v > SCHEMA_VERSION => {
            return Err(LedgerError::TooNew {
                at: at.to_owned(),
                version: v,
            });
        }
        Contents::Ledger(v) => v,
    };
    // WAL lets plan and status read while apply writes; FULL makes every commit durable.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite(at))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite(at))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sqlite(at))?;
    if version < SCHEMA_VERSION {
        if version == 0 {
            tracing::info!("starting a new ledger at {at}");
        } else {
            tracing::info!(
                ledger = at,
                from = version,
                to = SCHEMA_VERSION,
                "upgrading the ledger's schema"
            );
        }
        let tx = conn.transaction().map_err(sqlite(at))?;
        for sql in &MIGRATIONS[version as usize..] {
            tx.execute_batch(sql).map_err(sqlite(at))?;
        }
        if version == 0 {
            let lineage = crate::ledger::new_lineage();
            tx.execute("INSERT INTO meta (key, value) VALUES ('lineage', ?1), ('serial', '0'), ('created_at', ?2)", (lineage, crate::clock::unix_millis().to_string()))
                .map_err(sqlite(at))?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sqlite(at))?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sqlite(at))?;
        tx.commit().map_err(sqlite(at))?;
    }
    conn.execute_batch(STAGING).map_err(sqlite(at))?;
    Ok(conn)
}

enum Contents {
    /// A brand-new (empty) database file.
    Empty,
    /// A subsync ledger at this schema version.
    Ledger(i64),
}

fn check_contents(conn: &Connection, at: &str) -> Result<Contents, LedgerError> {
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(sqlite(at))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sqlite(at))?;
    if app == APPLICATION_ID {
        return Ok(Contents::Ledger(version));
    }
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(sqlite(at))?;
    if app == 0 && version == 0 && tables == 0 {
        return Ok(Contents::Empty);
    }
    Err(LedgerError::Foreign {
        at: at.to_owned(),
        what: format!("SQLite application_id {app:#x}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::sqlite::FILE_NAME;
    use crate::ledger::{Reader, Writer};

    /// A ledger as subsync wrote it before schema version 2.
    fn version_one(dir: &Path) {
        let conn = Connection::open(dir.join(FILE_NAME)).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO meta (key, value) VALUES ('lineage', 'feedfeedfeedfeedfeedfeedfeedfeed'), ('serial', '7'), ('created_at', '0');
             INSERT INTO accounts (id, official_account, updated_at) VALUES (1, '@TOA#_a', 0);
             INSERT INTO confirmed (account_id, subscriber, confirmed_at, run_id) VALUES (1, 'kept', 0, 1);",
        )
        .unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }

    #[tokio::test]
    async fn an_older_ledger_is_refused_by_readers_and_upgraded_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        version_one(dir.path());
        let err = Reader::open(dir.path()).await.unwrap_err().to_string();
        assert!(
            err.contains("schema version 1") && err.contains("subsync ledger migrate"),
            "{err}"
        );
        let writer = Writer::open(dir.path(), "ledger migrate").await.unwrap();
        let snapshot = writer.snapshot().await.unwrap();
        assert_eq!(
            snapshot.lineage.as_deref(),
            Some("feedfeedfeedfeedfeedfeedfeedfeed")
        );
        assert_eq!(snapshot.accounts["@TOA#_a"].confirmed, ["kept"]);
        writer.close().await;
        let mut reader = Reader::open(dir.path()).await.unwrap();
        assert_eq!(reader.snapshot().await.unwrap().serial, 7);
    }

    #[tokio::test]
    async fn a_foreign_database_is_reported_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE mine (x)")
            .unwrap();
        let err = Reader::open(dir.path()).await.unwrap_err().to_string();
        assert!(
            err.contains("is not a subsync ledger") && err.contains("ledger.db"),
            "{err}"
        );
        let err = Writer::open(dir.path(), "apply").await.unwrap_err();
        assert!(err.to_string().contains("is not a subsync ledger"), "{err}");
        let conn = Connection::open(&path).unwrap();
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_reported_with_its_path_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let garbage =
            b"this is not sqlite, just some bytes that fill more than a header ".repeat(100);
        std::fs::write(&path, &garbage).unwrap();
        let err = Reader::open(dir.path()).await.unwrap_err();
        let text = crate::errors::chain(&err);
        assert!(matches!(err, LedgerError::Corrupt { .. }), "{text}");
        assert!(
            text.contains("corrupt") && text.contains(&path.display().to_string()),
            "{text}"
        );
        assert!(Writer::open(dir.path(), "apply").await.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
    }
}

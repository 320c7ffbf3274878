//! Opening the database file: identity checks, pragmas and schema migrations.
//!
//! A ledger is recognised by its SQLite `application_id`. A file that is not SQLite, or is
//! somebody else's database, is reported with its path and never touched, let alone recreated.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::LedgerError;

/// `SUBS` in ASCII.
pub const APPLICATION_ID: i32 = 0x5355_4253;

/// Each entry upgrades the schema by one version; the index + 1 is the version it produces.
const MIGRATIONS: &[&str] = &[
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
];

/// The live lists of accounts being refreshed, page by page, on the writer's connection only.
/// A TEMP table: staging costs no fsync of the ledger, and a crash leaves nothing behind.
const STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS observed (
    account    TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    PRIMARY KEY (account, subscriber)
) WITHOUT ROWID";

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |e| LedgerError::from_sqlite(path, e)
}

/// Opens an existing ledger read-only, or `None` when there is none yet.
pub fn open_read(path: &Path) -> Result<Option<Connection>, LedgerError> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LedgerError::Io {
                path: path.to_owned(),
                source,
            });
        }
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(path))?;
    match check_identity(&conn, path)? {
        Identity::Empty => Ok(None),
        Identity::Ledger(version) if version > SCHEMA_VERSION => Err(LedgerError::TooNew {
            path: path.to_owned(),
            version,
        }),
        Identity::Ledger(_) => Ok(Some(conn)),
    }
}

/// Opens (creating or upgrading) the ledger for writing. The caller holds the writer lock.
pub fn open_write(path: &Path) -> Result<Connection, LedgerError> {
    let mut conn = Connection::open(path).map_err(sqlite(path))?;
    let version = match check_identity(&conn, path)? {
        Identity::Empty => 0,
        Identity::Ledger(v) if v > SCHEMA_VERSION => {
            return Err(LedgerError::TooNew {
                path: path.to_owned(),
                version: v,
            });
        }
        Identity::Ledger(v) => v,
    };
    // WAL lets plan and status read while apply writes; FULL makes every commit durable.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite(path))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite(path))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sqlite(path))?;
    if version < SCHEMA_VERSION {
        let tx = conn.transaction().map_err(sqlite(path))?;
        for sql in &MIGRATIONS[version as usize..] {
            tx.execute_batch(sql).map_err(sqlite(path))?;
        }
        if version == 0 {
            let lineage = new_lineage();
            tx.execute("INSERT INTO meta (key, value) VALUES ('lineage', ?1), ('serial', '0'), ('created_at', ?2)", (lineage, crate::clock::unix_millis().to_string()))
                .map_err(sqlite(path))?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sqlite(path))?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sqlite(path))?;
        tx.commit().map_err(sqlite(path))?;
    }
    conn.execute_batch(STAGING).map_err(sqlite(path))?;
    Ok(conn)
}

enum Identity {
    /// A brand-new (empty) database file.
    Empty,
    /// A subsync ledger at this schema version.
    Ledger(i64),
}

fn check_identity(conn: &Connection, path: &Path) -> Result<Identity, LedgerError> {
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(sqlite(path))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sqlite(path))?;
    if app == APPLICATION_ID {
        return Ok(Identity::Ledger(version));
    }
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(sqlite(path))?;
    if app == 0 && version == 0 && tables == 0 {
        return Ok(Identity::Empty);
    }
    Err(LedgerError::Foreign {
        path: path.to_owned(),
        application_id: app,
    })
}

fn new_lineage() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

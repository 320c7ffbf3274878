//! The SQLite backend, the default: a single file at `STATE/ledger.db`.
//!
//! The writer lock is an advisory lock on `STATE/ledger.lock` ([`lock`]) that the operating
//! system releases when the process dies, so it cannot be lost while the process lives. WAL
//! lets readers (plan, status) read while a writer writes; `synchronous = FULL` makes every
//! commit durable. A file that is not SQLite, or is somebody else's database, is reported and
//! never touched ([`schema`]).

mod lock;
mod read;
mod schema;
mod write;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;

use super::backend::{AccountDump, Meta, RunRow, View};
use super::{AccountSummary, LedgerError, Run, Snapshot};

/// An open SQLite ledger: read-only for a reader, with the lock held for the writer.
pub struct Sqlite {
    conn: Connection,
    /// The file, as messages show it.
    at: String,
    /// Account ids already looked up by this writer.
    ids: HashMap<String, i64>,
    /// Held for as long as a writer lives; `None` for a reader.
    _lock: Option<lock::WriterLock>,
}

fn q(sql: &str) -> Cow<'_, str> {
    super::sql::for_sqlite(sql)
}

impl Sqlite {
    /// Opens `DIR/ledger.db` read-only; `None` when there is no ledger yet.
    pub fn open_read(dir: &Path) -> Result<Option<Sqlite>, LedgerError> {
        let path = super::db_path(dir);
        Ok(schema::open_read(&path)?.map(|conn| Sqlite {
            conn,
            at: path.display().to_string(),
            ids: HashMap::new(),
            _lock: None,
        }))
    }

    /// Takes the writer lock (refused at once if held) and opens, creating or upgrading, the
    /// ledger.
    pub fn open_write(dir: &Path, command: &str) -> Result<Sqlite, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io {
            at: dir.display().to_string(),
            source,
        })?;
        let lock = lock::acquire(dir, command)?;
        let path = super::db_path(dir);
        let conn = schema::open_write(&path)?;
        Ok(Sqlite {
            conn,
            at: path.display().to_string(),
            ids: HashMap::new(),
            _lock: Some(lock),
        })
    }

    fn error(&self, e: rusqlite::Error) -> LedgerError {
        schema::error(&self.at, e)
    }
}

impl View for Sqlite {
    fn snapshot(&mut self) -> Result<Snapshot, LedgerError> {
        self.read_snapshot()
    }

    fn summaries(&mut self) -> Result<(Snapshot, Vec<AccountSummary>), LedgerError> {
        self.read_summaries()
    }

    fn runs(&mut self, limit: usize) -> Result<Vec<Run>, LedgerError> {
        self.read_runs(limit)
    }

    fn export_account(&mut self, account: &str) -> Result<AccountDump, LedgerError> {
        self.read_account(account)
    }

    fn export_meta(&mut self) -> Result<Meta, LedgerError> {
        self.read_meta()
    }

    fn export_runs(&mut self) -> Result<Vec<RunRow>, LedgerError> {
        self.read_all_runs()
    }
}

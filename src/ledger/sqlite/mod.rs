//! The SQLite backend, the default: a single file at `STATE/ledger.db`.
//!
//! SQLite is synchronous, so every call runs on the blocking pool (never on a runtime
//! worker), the connection passed from one call to the next behind a mutex; a transaction
//! spans calls (`BEGIN` in one, `COMMIT` in another), and one left open by a call that was
//! given up is rolled back before the next begins.
//!
//! The writer lock is a POSIX lock on `STATE/ledger.lock` ([`lock`]) that the operating system
//! releases when the process dies, so it cannot be lost while the process lives. WAL lets
//! readers (plan, status) read while a writer writes; `synchronous = FULL` makes every commit
//! durable. A file that is not SQLite, or is somebody else's database, is reported and never
//! touched ([`schema`]). Errors of the driver become [`LedgerError`]s here and nowhere else.

mod lock;
mod read;
mod schema;
mod sql;
mod target;
mod tx;
mod write;

use std::any::Any;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use rusqlite::Connection;

pub(crate) use target::{DirectoryError, FILE_NAME, Target};
use tx::SqliteTx;

use super::store::{self, Fut, ReadTx, Store, WriteTx, WriterStore};
use super::view::Planner;
use super::{Cause, LedgerError};

impl store::Target for Target {
    fn shown(&self) -> &str {
        Target::shown(self)
    }

    fn local_dir(&self) -> Option<&std::path::Path> {
        Some(self.dir())
    }

    fn open_read(&self) -> Fut<'_, Option<Box<dyn Store>>> {
        let (path, at) = (self.file(), self.shown().to_owned());
        Box::pin(async move {
            let opened = blocking(&at.clone(), move || schema::open_read(&path, &at)).await?;
            Ok(opened.map(|(conn, at)| Box::new(Sqlite::new(conn, at, None)) as Box<dyn Store>))
        })
    }

    fn open_write<'a>(&'a self, command: &'a str) -> Fut<'a, Box<dyn WriterStore>> {
        let (target, command) = (self.clone(), command.to_owned());
        Box::pin(async move {
            let at = target.shown().to_owned();
            let (conn, lock) = blocking(&at.clone(), move || {
                target.create().map_err(|e| LedgerError::Io {
                    at: target.dir().display().to_string(),
                    action: "create the ledger's directory",
                    cause: Cause::new(e),
                })?;
                let lock = lock::acquire(target.dir(), &command)?;
                let conn = schema::open_write(&target.file(), &at)?;
                Ok((conn, lock))
            })
            .await?;
            Ok(
                Box::new(Sqlite::new(conn, self.shown().to_owned(), Some(lock)))
                    as Box<dyn WriterStore>,
            )
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    at: &str,
    f: impl FnOnce() -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, LedgerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LedgerError::task(at, e))?
}

/// The connection, shared by the calls of one store (one at a time); `None` once closed.
#[derive(Clone)]
struct Db {
    conn: Arc<Mutex<Option<Connection>>>,
    /// The file, as messages show it.
    at: Arc<str>,
}

/// A call on a store that was closed.
#[derive(Debug, thiserror::Error)]
#[error("the ledger's connection was closed")]
struct Closed;

impl Db {
    /// Runs `f` over the connection on the blocking pool.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &str) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let db = self.clone();
        blocking(&self.at, move || {
            let conn = db.conn.lock().unwrap_or_else(|e| e.into_inner());
            match conn.as_ref() {
                Some(conn) => f(conn, &db.at),
                None => Err(LedgerError::task(&db.at, Closed)),
            }
        })
        .await
    }
}

/// A SQLite error, as the ledger at `at` reports it.
fn error(at: &str, e: rusqlite::Error) -> LedgerError {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => LedgerError::Corrupt {
            at: at.to_owned(),
            cause: Cause::new(e),
        },
        _ => LedgerError::Database {
            at: at.to_owned(),
            hint: super::Hint::default(),
            cause: Cause::new(e),
        },
    }
}

/// An open SQLite ledger: read-only for a reader, with the lock held for the writer.
struct Sqlite {
    db: Db,
    /// Held for as long as a writer lives; `None` for a reader.
    lock: Option<lock::WriterLock>,
}

impl Sqlite {
    fn new(conn: Connection, at: String, lock: Option<lock::WriterLock>) -> Sqlite {
        Sqlite {
            db: Db {
                conn: Arc::new(Mutex::new(Some(conn))),
                at: at.into(),
            },
            lock,
        }
    }

    async fn begin(&mut self, write: bool) -> Result<SqliteTx, LedgerError> {
        SqliteTx::begin(self.db.clone(), write).await
    }

    /// Lets go of the connection, then the lock: closing may checkpoint the WAL, file work
    /// that stays off the workers.
    fn let_go(&mut self) -> Option<impl FnOnce() + Send + 'static> {
        let conn = self
            .db
            .conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let lock = self.lock.take();
        Some(move || {
            drop(conn);
            drop(lock);
        })
    }
}

impl Store for Sqlite {
    fn location(&self) -> &str {
        &self.db.at
    }

    fn read(&mut self) -> Fut<'_, Box<dyn ReadTx<'_> + '_>> {
        Box::pin(async move { Ok(Box::new(self.begin(false).await?) as Box<dyn ReadTx<'_> + '_>) })
    }

    fn view(&mut self, planner: Planner) -> Fut<'_, ()> {
        let db = self.db.clone();
        Box::pin(async move { db.call(move |conn, at| read::view(conn, at, planner)).await })
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        let closing = self.let_go();
        Box::pin(async move {
            if let Some(closing) = closing {
                let _ = tokio::task::spawn_blocking(closing).await;
            }
        })
    }
}

impl Drop for Sqlite {
    /// A store dropped without `close` (a task given up) still closes off the workers.
    fn drop(&mut self) {
        let Some(closing) = self.let_go() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(closing)),
            Err(_) => closing(),
        }
    }
}

impl WriterStore for Sqlite {
    fn write(&mut self) -> Fut<'_, Box<dyn WriteTx<'_> + '_>> {
        Box::pin(async move { Ok(Box::new(self.begin(true).await?) as Box<dyn WriteTx<'_> + '_>) })
    }

    fn check_lock(&mut self) -> Fut<'_, ()> {
        // A POSIX lock lives as long as the process.
        Box::pin(async { Ok(()) })
    }

    fn stage(&mut self, account: String, page: Vec<String>) -> Fut<'_, ()> {
        Box::pin(self.db.call(move |conn, at| {
            let err = |e| error(at, e);
            let tx = conn.unchecked_transaction().map_err(err)?;
            {
                let mut insert = tx.prepare_cached(sql::STAGE).map_err(err)?;
                for subscriber in &page {
                    insert
                        .execute(
                            rusqlite::named_params! {":name": account, ":subscriber": subscriber},
                        )
                        .map_err(err)?;
                }
            }
            tx.commit().map_err(err)
        }))
    }

    fn unstage(&mut self, account: String) -> Fut<'_, ()> {
        Box::pin(self.db.call(move |conn, at| {
            conn.prepare_cached(sql::UNSTAGE)
                .and_then(|mut s| s.execute(rusqlite::named_params! {":name": account}))
                .map(drop)
                .map_err(|e| error(at, e))
        }))
    }
}

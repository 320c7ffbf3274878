//! The PostgreSQL backend, for replicas that share one ledger.
//!
//! The ledger is a set of tables in the connection's current schema (`public` unless the URL's
//! `options` set a `search_path`); that schema must be empty or a subsync ledger. The writer
//! lock is a session advisory lock held on the writer's own connection ([`lock`]), and every
//! write goes through that connection and checks the fencing epoch, so a writer whose session
//! ended, or that another replica took over from, writes nothing further. A replica standing
//! by waits on the lock on a connection of its own ([`Target::wait_write`](store::Target)),
//! which becomes its writer's the moment the lock comes to it.
//!
//! After a run or a copy that wrote many rows, the writer vacuums the tables ([`SETTLE`]), so
//! that the first read of what was loaded does not do that work instead, writing as it reads.
//!
//! The driver (`tokio-postgres`) is async and runs on the process's runtime: a connection is a
//! task of its own, and no call blocks a worker. Time is bounded everywhere: connecting (TCP,
//! TLS and authentication together) within `connect_timeout`; every statement within the
//! server's `statement_timeout`, which subsync sets on its sessions (the URL's `options` may
//! override it; the session asks the server for the value in force), and the client gives up
//! on a server that has said nothing for a little longer than that. A session given up on is
//! never used again: for a writer that is a lost lock. TCP keepalives on both ends make the
//! server end a dead writer's session, releasing its lock, within about 30 seconds.

mod config;
mod copy_text;
mod fault;
mod lock;
mod schema;
mod sql;
mod tls;
mod tx;

use std::any::Any;
use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_postgres::{Client, IsolationLevel, Statement};
use tokio_util::sync::CancellationToken;

pub(crate) use config::{PASSWORD_SOURCES, PasswordSource, UrlError};
pub use config::{Target, TlsMode};
use fault::Session;
use schema::Contents;
use tx::PgTx;

use super::store::{self, Fut, ReadTx, Store, WriteTx, WriterStore};
use super::{Cause, Hint, LedgerError, SCHEMA_VERSION};

/// Keepalives: idle, then probes every interval; the connection is dead after the retries.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
/// Unacknowledged data for this long ends the connection (a partition during a write).
const USER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a liveness probe of the writer's session may take.
const PROBE: Duration = Duration::from_secs(5);

/// Rows written since the last vacuum past which a finished run settles them.
const SETTLE_AFTER: u64 = 10_000;

/// Settles what was written: sets the new rows' hint bits and marks their pages all-visible
/// once, here, so that the first read of freshly loaded rows (a plan right after `ledger
/// copy`, `import` or a first big apply) does not do it, writing as it reads, and can read the
/// index alone. A vacuum skips the pages already all-visible: it costs about what was written
/// (100 ms for 900,000 rows); statistics are left to autovacuum (an ANALYZE would cost as
/// much again and did not speed the plan up).
const SETTLE: &str = "VACUUM confirmed, failed, drift, intents, accounts, runs";

/// The server accepted no session in time.
#[derive(Debug, thiserror::Error)]
#[error("the server accepted no session within {}s (connect_timeout)", .0.as_secs())]
struct NoSession(Duration);

/// One connection: the client, and the task driving its socket.
struct Connection {
    client: Client,
    session: Session,
    /// Statements prepared on this connection, by their text.
    prepared: HashMap<&'static str, Statement>,
    /// Rows this session wrote and committed since it last vacuumed.
    written: u64,
}

impl store::Target for Target {
    fn shown(&self) -> &str {
        Target::shown(self)
    }

    fn open_read(&self) -> Fut<'_, Option<Box<dyn Store>>> {
        Box::pin(async move {
            let conn = connect(self, "subsync reader").await?;
            let at = &conn.session.at;
            match conn.session.within(schema::identify(&conn.client)).await? {
                Contents::Empty => Ok(None),
                Contents::Ledger(version) => {
                    LedgerError::check_version(at, version)?;
                    Ok(Some(Box::new(Postgres { conn }) as Box<dyn Store>))
                }
                Contents::NoSchema => Err(LedgerError::NoSchema { at: at.clone() }),
                Contents::Foreign(what) => Err(LedgerError::Foreign {
                    at: at.clone(),
                    what,
                }),
            }
        })
    }

    fn open_write<'a>(&'a self, command: &'a str) -> Fut<'a, Box<dyn WriterStore>> {
        Box::pin(async move {
            let mut conn = connect(self, &format!("subsync {command}")).await?;
            let epoch = take_lock(&mut conn, command).await?;
            Ok(Box::new(PgWriter {
                db: Postgres { conn },
                epoch,
            }) as Box<dyn WriterStore>)
        })
    }

    fn waits_for_lock(&self) -> bool {
        true
    }

    fn wait_write<'a>(
        &'a self,
        command: &'a str,
        stop: &'a CancellationToken,
    ) -> Fut<'a, Option<Box<dyn WriterStore>>> {
        Box::pin(async move {
            let mut conn = connect(self, &format!("subsync {command}")).await?;
            if let Contents::NoSchema = conn.session.within(schema::identify(&conn.client)).await? {
                return Err(LedgerError::NoSchema {
                    at: conn.session.at.clone(),
                });
            }
            tokio::select! {
                waited = lock::wait(&conn.session, &conn.client) => waited?,
                () = stop.cancelled() => {
                    withdraw(self, &conn).await;
                    return Ok(None);
                }
            }
            let epoch = hold(&mut conn, command).await?;
            Ok(Some(Box::new(PgWriter {
                db: Postgres { conn },
                epoch,
            }) as Box<dyn WriterStore>))
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Cancels the wait for the lock still running on `conn` (the session then ends as `conn`
/// is dropped). Should the cancel not arrive, the session ends all the same once the
/// server sees the connection closed, granted or not.
async fn withdraw(target: &Target, conn: &Connection) {
    let Ok(tls) = tls::connector(target) else {
        return;
    };
    let cancel = conn.client.cancel_token();
    match tokio::time::timeout(PROBE, cancel.cancel_query(tls)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %crate::errors::chain(&e), "cannot withdraw the wait for the ledger's lock")
        }
        Err(_) => tracing::debug!("the server did not take the withdrawal of the wait in time"),
    }
}

async fn connect(target: &Target, application_name: &str) -> Result<Connection, LedgerError> {
    let at = target.shown().to_owned();
    let mut config = target.driver(application_name);
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(USER_TIMEOUT)
        .ssl_mode(tls::driver_mode(target.tls));
    let connector = tls::connector(target)?;
    // The driver's own connect_timeout covers the TCP connection only: a server that accepts it
    // and then says nothing would hang the TLS and startup exchange. This bounds all of it.
    let timeout = target.connect_timeout();
    let (client, connection) = match tokio::time::timeout(timeout, config.connect(connector)).await
    {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(fault::unavailable(&at, e)),
        Err(_) => {
            return Err(LedgerError::Unavailable {
                at,
                hint: Hint(Some(
                    "check that a PostgreSQL server answers at that host and port",
                )),
                cause: Cause::new(NoSession(timeout)),
            });
        }
    };
    // Drives the socket; ends when the client is dropped or the session ends (the client's
    // calls then fail, saying so).
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // The deadline for answers follows the statement_timeout the server enforces.
    let probe = Session::new(at.clone(), timeout, false);
    let row = probe
        .within(client.query_one(
            "SELECT CAST(extract(epoch FROM CAST(current_setting('statement_timeout') AS interval)) * 1000 AS BIGINT)",
            &[],
        ))
        .await?;
    let statement_timeout: i64 = row.try_get(0).map_err(|e| probe.error(e))?;
    Ok(Connection {
        client,
        session: Session::new(at, config::answer_deadline(statement_timeout), false),
        prepared: HashMap::new(),
        written: 0,
    })
}

/// Takes the advisory lock without waiting (or reports who holds it), then [`hold`]s it;
/// returns the new fencing epoch.
async fn take_lock(conn: &mut Connection, command: &str) -> Result<i64, LedgerError> {
    let (client, session) = (&conn.client, &conn.session);
    let at = &session.at;
    if let Contents::NoSchema = session.within(schema::identify(client)).await? {
        return Err(LedgerError::NoSchema { at: at.clone() });
    }
    if !session.within(lock::try_take(client)).await? {
        let holder = session.within(lock::describe_holder(client)).await;
        return Err(LedgerError::Locked {
            at: at.clone(),
            holder: holder.unwrap_or_else(|_| "another session".into()),
        });
    }
    hold(conn, command).await
}

/// With the advisory lock just taken on `conn`: creates or upgrades the schema under it and
/// records this session as the holder; returns the new fencing epoch.
async fn hold(conn: &mut Connection, command: &str) -> Result<i64, LedgerError> {
    let (client, session) = (&conn.client, &conn.session);
    let at = &session.at;
    // The server ends a dead writer's session (and frees the lock) within about 30 s.
    if let Err(e) = session
        .within(client.batch_execute(lock::SERVER_KEEPALIVES))
        .await
    {
        tracing::warn!(error = %crate::errors::chain(&e), "cannot set the server's keepalives for this session; a dead writer may hold the lock longer");
    }
    let from = match session.within(schema::identify(client)).await? {
        Contents::Empty => {
            tracing::info!("starting a new ledger at {at}");
            0
        }
        Contents::Ledger(v) if v > SCHEMA_VERSION => {
            return Err(LedgerError::TooNew {
                at: at.clone(),
                version: v,
            });
        }
        Contents::Ledger(v) => v,
        Contents::NoSchema => return Err(LedgerError::NoSchema { at: at.clone() }),
        Contents::Foreign(what) => {
            return Err(LedgerError::Foreign {
                at: at.clone(),
                what,
            });
        }
    };
    if from < SCHEMA_VERSION {
        if from > 0 {
            tracing::info!(ledger = %at, from, to = SCHEMA_VERSION, "upgrading the ledger's schema");
        }
        session.within(schema::upgrade(client, from)).await?;
    }
    session
        .within(client.batch_execute(schema::STAGING))
        .await?;
    let epoch = session.within(lock::record_holder(client, command)).await?;
    tracing::debug!(ledger = %at, epoch, "took the ledger's writer lock");
    conn.session.writer = true;
    Ok(epoch)
}

/// An open PostgreSQL ledger, read-only.
struct Postgres {
    conn: Connection,
}

impl Postgres {
    /// Starts a transaction: a consistent read-only one, or a write (read committed: each
    /// statement sees what the ones before it wrote) fenced by `epoch`.
    async fn begin(&mut self, epoch: Option<i64>) -> Result<PgTx<'_>, LedgerError> {
        let Connection {
            client,
            session,
            prepared,
            written,
        } = &mut self.conn;
        let builder = match epoch {
            Some(_) => client.build_transaction(),
            None => client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true),
        };
        let tx = session.within(builder.start()).await?;
        Ok(PgTx::new(tx, session, prepared, epoch, written))
    }
}

impl Store for Postgres {
    fn location(&self) -> &str {
        &self.conn.session.at
    }

    fn read(&mut self) -> Fut<'_, Box<dyn ReadTx<'_> + '_>> {
        Box::pin(async move { Ok(Box::new(self.begin(None).await?) as Box<dyn ReadTx<'_> + '_>) })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        // Dropping the client ends the session (and with it any lock it held).
        Box::pin(async move { drop(self) })
    }
}

/// An open PostgreSQL ledger whose writer lock this session holds, at `epoch`.
struct PgWriter {
    db: Postgres,
    epoch: i64,
}

impl Store for PgWriter {
    fn location(&self) -> &str {
        self.db.location()
    }

    fn read(&mut self) -> Fut<'_, Box<dyn ReadTx<'_> + '_>> {
        self.db.read()
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::new(self.db).close()
    }
}

impl WriterStore for PgWriter {
    fn write(&mut self) -> Fut<'_, Box<dyn WriteTx<'_> + '_>> {
        let epoch = self.epoch;
        Box::pin(async move {
            Ok(Box::new(self.db.begin(Some(epoch)).await?) as Box<dyn WriteTx<'_> + '_>)
        })
    }

    fn check_lock(&mut self) -> Fut<'_, ()> {
        Box::pin(async move {
            let Connection {
                client, session, ..
            } = &self.db.conn;
            session.usable()?;
            match session
                .bounded(PROBE, lock::still_held(client, self.epoch))
                .await?
            {
                None => Ok(()),
                Some(loss) => Err(LedgerError::LockLost {
                    at: session.at.clone(),
                    loss,
                }),
            }
        })
    }

    fn settle(&mut self) -> Fut<'_, ()> {
        Box::pin(async move {
            let Connection {
                client,
                session,
                written,
                ..
            } = &mut self.db.conn;
            if *written < SETTLE_AFTER {
                return Ok(());
            }
            session.within(client.batch_execute(SETTLE)).await?;
            *written = 0;
            Ok(())
        })
    }

    fn stage(&mut self, account: String, page: Vec<String>) -> Fut<'_, ()> {
        Box::pin(async move {
            let Connection {
                client, session, ..
            } = &self.db.conn;
            session
                .within(client.execute(sql::STAGE, &[&account, &page]))
                .await
                .map(drop)
        })
    }

    fn unstage(&mut self, account: String) -> Fut<'_, ()> {
        Box::pin(async move {
            let Connection {
                client, session, ..
            } = &self.db.conn;
            session
                .within(client.execute(sql::UNSTAGE, &[&account]))
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests;

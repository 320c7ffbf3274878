//! The PostgreSQL backend, for replicas that share one ledger.
//!
//! The ledger is a set of tables in the connection's current schema (`public` unless the URL's
//! `options` set a `search_path`); that schema must be empty or a subsync ledger. The writer
//! lock is a session advisory lock held on the writer's own connection ([`lock`]), and every
//! write goes through that connection and checks the fencing epoch, so a writer whose session
//! ended, or that another replica took over from, writes nothing further.
//!
//! Time is bounded everywhere: connecting (TCP, TLS and authentication together) within
//! `connect_timeout`; every statement within the server's `statement_timeout`, which subsync
//! sets on its sessions, and the client gives up on a server that has said nothing for a little
//! longer than that ([`PgTarget::answer_deadline`]). A session given up on is never used again:
//! for a writer that is a lost lock. TCP keepalives on both ends (the server's set per session)
//! make the server end a dead writer's session, releasing its lock, within about 30 seconds.
//!
//! The driver is `tokio-postgres` on a current-thread runtime private to this connection: it
//! runs only on the thread that owns the connection (the writer's own thread, or a synchronous
//! command), never on a runtime worker of the daemon.

mod lock;
mod tx;

use tx::PgTx;
mod schema;
mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio_postgres::{Client, IsolationLevel, Statement};

use super::backend::{Backend, TxFn};
use super::location::Access;
use super::{LedgerError, PgHost, PgTarget};

/// Keepalives: idle, then probes every interval; the connection is dead after the retries.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
/// Unacknowledged data for this long ends the connection (a partition during a write).
const USER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a liveness probe of the writer's session may take.
const PROBE: Duration = Duration::from_secs(5);

/// Why a call to the server failed.
enum Fault {
    Db(tokio_postgres::Error),
    /// The server said nothing for this long.
    Silent(Duration),
    /// The session was given up on earlier.
    Abandoned,
    /// The caller's own error, raised while rows streamed in.
    Caller(LedgerError),
}

impl From<tokio_postgres::Error> for Fault {
    fn from(e: tokio_postgres::Error) -> Fault {
        Fault::Db(e)
    }
}

/// One connection and the runtime that drives it.
struct Session {
    rt: Runtime,
    /// `None` once given up on.
    client: Option<Client>,
    deadline: Duration,
    prepared: HashMap<&'static str, Statement>,
}

impl Session {
    /// Runs `fut` on this session's runtime within `deadline`.
    fn wait<T>(
        rt: &Runtime,
        deadline: Duration,
        fut: impl Future<Output = Result<T, Fault>>,
    ) -> Result<T, Fault> {
        // The timer is made inside the runtime: it needs the runtime's clock.
        match rt.block_on(async { tokio::time::timeout(deadline, fut).await }) {
            Ok(result) => result,
            Err(_) => Err(Fault::Silent(deadline)),
        }
    }
}

/// An open PostgreSQL ledger: a reader, or the writer with its lock.
pub struct Postgres {
    session: Session,
    /// The URL without its password.
    at: String,
    /// The fencing epoch this writer took the lock at; `None` for a reader.
    epoch: Option<i64>,
}

/// Opens the ledger at `target`: read-only (`None` when its schema holds no ledger yet), or
/// as the writer, taking the lock and creating or upgrading the schema under it.
pub fn open(
    target: &PgTarget,
    access: Access<'_>,
) -> Result<Option<Box<dyn Backend>>, LedgerError> {
    let at = target.shown().to_owned();
    let name = match access {
        Access::Read => "subsync reader".to_owned(),
        Access::Write { command } => format!("subsync {command}"),
    };
    let mut db = Postgres {
        session: connect(target, &name)?,
        at,
        epoch: None,
    };
    match access {
        Access::Read => match db.check(call(&db.session, schema::identify))? {
            schema::Identity::Empty => Ok(None),
            schema::Identity::Ledger(version) => {
                LedgerError::check_version(&db.at, version)?;
                Ok(Some(Box::new(db)))
            }
            other => Err(other.refusal(&db.at)),
        },
        Access::Write { command } => {
            let epoch = db.take_lock(command)?;
            db.epoch = Some(epoch);
            Ok(Some(Box::new(db)))
        }
    }
}

fn connect(target: &PgTarget, application_name: &str) -> Result<Session, LedgerError> {
    let unavailable = |detail: String| LedgerError::Unavailable {
        at: target.shown().to_owned(),
        detail,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| unavailable(format!("cannot start the database driver: {e}")))?;
    let mut config = tokio_postgres::Config::new();
    match &target.host {
        PgHost::Tcp(host) => config.host(host),
        PgHost::Socket(dir) => config.host_path(dir),
    };
    config
        .port(target.port)
        .user(&target.user)
        .dbname(&target.dbname)
        .application_name(application_name)
        .connect_timeout(target.connect_timeout)
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(USER_TIMEOUT)
        .options(target.server_options())
        .ssl_mode(tls::driver_mode(target.tls));
    if let Some(password) = target.password() {
        config.password(password);
    }
    let connector = tls::connector(target)?;
    // The driver's own connect_timeout covers the TCP connection only: a server that accepts it
    // and then says nothing would hang the TLS and startup exchange. This bounds all of it.
    let connected = rt.block_on(async {
        tokio::time::timeout(target.connect_timeout, config.connect(connector)).await
    });
    let (client, connection) = match connected {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(unavailable(describe(&e))),
        Err(_) => {
            return Err(unavailable(format!(
                "the server accepted no session within {}s (connect_timeout); check that a PostgreSQL server answers at that host and port",
                target.connect_timeout.as_secs()
            )));
        }
    };
    // Driven whenever this thread waits on the runtime; its errors surface through the client.
    rt.spawn(async move {
        let _ = connection.await;
    });
    Ok(Session {
        rt,
        client: Some(client),
        deadline: target.answer_deadline(),
        prepared: HashMap::new(),
    })
}

/// Runs the future `f` makes of the session's client within the answer deadline.
fn call<'s, T, Fut>(session: &'s Session, f: impl FnOnce(&'s Client) -> Fut) -> Result<T, Fault>
where
    Fut: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let Some(client) = &session.client else {
        return Err(Fault::Abandoned);
    };
    let fut = f(client);
    Session::wait(&session.rt, session.deadline, async move {
        fut.await.map_err(Fault::Db)
    })
}

impl Postgres {
    /// The outcome of a call, a silent server abandoning the session.
    fn check<T>(&mut self, result: Result<T, Fault>) -> Result<T, LedgerError> {
        result.map_err(|fault| self.fail(fault))
    }

    /// The error for `fault`, abandoning the session when it can no longer be trusted.
    fn fail(&mut self, fault: Fault) -> LedgerError {
        if matches!(fault, Fault::Silent(_)) {
            self.session.client = None;
            self.session.prepared.clear();
        }
        self.error(fault)
    }

    fn error(&self, fault: Fault) -> LedgerError {
        let at = self.at.clone();
        let lost = |detail: String| {
            if self.epoch.is_some() {
                LedgerError::LockLost {
                    at: at.clone(),
                    detail,
                }
            } else {
                LedgerError::Unavailable {
                    at: at.clone(),
                    detail,
                }
            }
        };
        match fault {
            Fault::Caller(e) => e,
            Fault::Silent(after) => lost(format!(
                "the server did not answer within {}s; check that it is up and reachable",
                after.as_secs()
            )),
            Fault::Abandoned => {
                lost("the session was given up on after the server fell silent".into())
            }
            Fault::Db(e) if lost_session(&e) => {
                lost(format!("the database session ended: {}", describe(&e)))
            }
            Fault::Db(e) => LedgerError::Database {
                at,
                detail: describe(&e),
            },
        }
    }

    /// Takes the advisory lock (or reports who holds it), upgrades the schema under it and
    /// records this session as the holder; returns the new fencing epoch.
    fn take_lock(&mut self, command: &str) -> Result<i64, LedgerError> {
        if let schema::Identity::NoSchema = self.check(call(&self.session, schema::identify))? {
            return Err(schema::Identity::NoSchema.refusal(&self.at));
        }
        if !self.check(call(&self.session, lock::try_take))? {
            let holder = call(&self.session, |c| async move {
                Ok(lock::describe_holder(c).await)
            });
            return Err(LedgerError::Locked {
                at: self.at.clone(),
                holder: holder.unwrap_or_else(|_| "another session".into()),
            });
        }
        // The server ends a dead writer's session (and frees the lock) within about 30 s.
        let keepalive = call(&self.session, |c| {
            c.batch_execute("SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 30000")
        });
        if let Err(e) = self.check(keepalive) {
            tracing::warn!(error = %e, "cannot set the server's keepalives for this session; a dead writer may hold the lock longer");
        }
        let at = self.at.clone();
        let migrated = call(&self.session, |c| async move {
            Ok(schema::migrate(c, &at).await)
        });
        self.check(migrated)??;
        let epoch = self.check(call(&self.session, |c| lock::record_holder(c, command)))?;
        tracing::debug!(ledger = %self.at, epoch, "took the ledger's writer lock");
        Ok(epoch)
    }

    /// Runs `f` in a transaction: a read-only repeatable-read one, or a write ending with the
    /// fenced serial bump.
    fn transaction(&mut self, write: bool, f: &mut TxFn<'_>) -> Result<(), LedgerError> {
        let epoch = self.epoch;
        if write && epoch.is_none() {
            return Err(LedgerError::Database {
                at: self.at.clone(),
                detail: "this connection does not hold the writer lock".into(),
            });
        }
        if self.session.client.is_none() {
            return Err(self.error(Fault::Abandoned));
        }
        let result = self.run_transaction(write, epoch, f);
        result.map_err(|fault| match fault {
            Fault::Caller(LedgerError::LockLost { detail, .. }) => LedgerError::LockLost {
                at: self.at.clone(),
                detail,
            },
            fault => self.fail(fault),
        })
    }

    fn run_transaction(
        &mut self,
        write: bool,
        epoch: Option<i64>,
        f: &mut TxFn<'_>,
    ) -> Result<(), Fault> {
        let Session {
            rt,
            client,
            deadline,
            prepared,
        } = &mut self.session;
        let deadline = *deadline;
        let Some(client) = client.as_mut() else {
            return Err(Fault::Abandoned);
        };
        let begun = Session::wait(rt, deadline, async move {
            let builder = client.build_transaction();
            let builder = if write {
                builder
            } else {
                builder
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
            };
            Ok(builder.start().await?)
        });
        match begun {
            Err(fault) => Err(fault),
            Ok(tx) => {
                let mut pg = PgTx {
                    rt,
                    tx: &tx,
                    deadline,
                    prepared,
                    fault: None,
                };
                let outcome = f(&mut pg);
                let kept = pg.fault.take();
                match outcome {
                    Err(e) => Err(kept.unwrap_or(Fault::Caller(e))),
                    Ok(()) => Session::wait(rt, deadline, async move {
                        if let Some(epoch) = epoch.filter(|_| write) {
                            let bumped = tx.execute(lock::BUMP_FENCED, &[&epoch]).await?;
                            if bumped != 1 {
                                return Ok(false);
                            }
                        }
                        tx.commit().await?;
                        Ok(true)
                    })
                    .and_then(|committed| {
                        if committed {
                            Ok(())
                        } else {
                            Err(Fault::Caller(LedgerError::LockLost {
                                at: String::new(),
                                detail: "fenced: another replica took the lock over".into(),
                            }))
                        }
                    }),
                }
            }
        }
    }
}

/// True when `e` means the session is gone (and with it any lock it held).
fn lost_session(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || is_io(e)
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("57P") || c.starts_with("08")
        })
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// What went wrong, with what to do about it; each cause said once, never the password.
fn describe(e: &tokio_postgres::Error) -> String {
    use tokio_postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        let mut text = e.to_string();
        if let Some(cause) = std::error::Error::source(e) {
            text = format!("{text}: {cause}");
        }
        return if e.is_closed() || is_io(e) {
            format!("{text}; check that the server runs and is reachable at that host and port")
        } else {
            text
        };
    };
    let code = db.code();
    let fix = if *code == SqlState::INVALID_PASSWORD {
        "; check the user and the password (in the URL, SUBSYNC_STATE_PASSWORD_FILE or PGPASSWORD)"
    } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
        "; the server refused this user from this host (see its pg_hba.conf)"
    } else if *code == SqlState::INVALID_CATALOG_NAME {
        "; create the database or fix its name in the URL"
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        "; grant the user USAGE and CREATE on the schema, or connect as its owner"
    } else if *code == SqlState::TOO_MANY_CONNECTIONS {
        "; the server has no free connection; raise max_connections or try again"
    } else if *code == SqlState::QUERY_CANCELED {
        "; a statement ran past statement_timeout (raise it with options=-c statement_timeout=… in the URL)"
    } else if *code == SqlState::LOCK_NOT_AVAILABLE {
        "; a table lock was not granted within lock_timeout; another session holds it"
    } else if code.code().starts_with("57P") {
        "; the server is restarting or shutting down; try again shortly"
    } else {
        ""
    };
    format!("{}{fix}", crate::quote::clean(db.message(), 300))
}

impl Backend for Postgres {
    fn location(&self) -> &str {
        &self.at
    }

    fn read(&mut self, f: &mut TxFn<'_>) -> Result<(), LedgerError> {
        self.transaction(false, f)
    }

    fn write(&mut self, f: &mut TxFn<'_>) -> Result<(), LedgerError> {
        self.transaction(true, f)
    }

    fn check_lock(&mut self) -> Result<(), LedgerError> {
        let Some(epoch) = self.epoch else {
            return Ok(());
        };
        let deadline = self.session.deadline;
        self.session.deadline = PROBE;
        let held = call(&self.session, |c| lock::still_held(c, epoch));
        self.session.deadline = deadline;
        match self.check(held)? {
            None => Ok(()),
            Some(why) => Err(LedgerError::LockLost {
                at: self.at.clone(),
                detail: why,
            }),
        }
    }

    fn stage(&mut self, account: &str, page: &[String]) -> Result<(), LedgerError> {
        let staged = call(&self.session, |c| async move {
            c.execute(
                "INSERT INTO observed (account, subscriber) SELECT CAST($1 AS TEXT), unnest(CAST($2 AS TEXT[])) ON CONFLICT DO NOTHING",
                &[&account, &page],
            )
            .await
        });
        self.check(staged).map(drop)
    }

    fn unstage(&mut self, account: &str) -> Result<(), LedgerError> {
        let cleared = call(&self.session, |c| async move {
            c.execute(super::sql::STAGE_CLEAR, &[&account]).await
        });
        self.check(cleared).map(drop)
    }
}

#[cfg(test)]
mod tests;

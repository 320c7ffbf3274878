//! The PostgreSQL backend, for replicas that share one ledger.
//!
//! The ledger is a set of tables in the connection's current schema (`public` unless the URL's
//! `options` set a `search_path`); that schema must be empty or a subsync ledger. The writer
//! lock is a session advisory lock held on the writer's own connection ([`lock`]), and every
//! write goes through that connection and checks the fencing epoch, so a writer whose session
//! ended, or that another replica took over from, writes nothing further.
//!
//! Connections use TCP keepalives on both ends (the server's set per session), so the server
//! ends a dead writer's session, releasing its lock, within about 30 seconds.
//!
//! The driver is the synchronous `postgres` crate: it runs only on the writer's own thread or
//! in synchronous commands (plan, status), never on a runtime worker.

mod lock;
mod read;
mod schema;
mod tls;
mod write;

use std::collections::HashMap;
use std::time::Duration;

use ::postgres::Client;

use super::backend::{AccountDump, Meta, RunRow, View};
use super::{AccountSummary, LedgerError, PgHost, PgTarget, Run, Snapshot};

/// An open PostgreSQL ledger: a reader, or the writer with its lock.
pub struct Postgres {
    client: Client,
    /// The URL without its password.
    at: String,
    /// Account ids already looked up by this writer.
    ids: HashMap<String, i64>,
    /// The writer's lock and prepared statements; `None` for a reader.
    lease: Option<write::Lease>,
}

/// Keepalives: idle, then probes every interval; the connection is dead after the retries.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
/// Unacknowledged data for this long ends the connection (a partition during a write).
const USER_TIMEOUT: Duration = Duration::from_secs(30);

fn connect(target: &PgTarget, application_name: &str) -> Result<Client, LedgerError> {
    let mut config = ::postgres::Config::new();
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
        .ssl_mode(tls::driver_mode(target.tls));
    if let Some(password) = target.password() {
        config.password(password);
    }
    if let Some(options) = &target.options {
        config.options(options);
    }
    let connector = tls::connector(target)?;
    config.connect(connector).map_err(|e| LedgerError::Connect {
        at: target.shown().to_owned(),
        detail: describe(&e),
    })
}

/// What went wrong, with what to do about it. Never includes the password.
fn describe(e: &::postgres::Error) -> String {
    use ::postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        let text = error_chain(e);
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
    } else if code.code().starts_with("57P") {
        "; the server is restarting or shutting down; try again shortly"
    } else {
        ""
    };
    format!("{}{fix}", db.message())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

fn is_io(e: &::postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

impl Postgres {
    /// Connects and checks the schema; `None` when the schema holds no ledger yet.
    pub fn open_read(target: &PgTarget) -> Result<Option<Postgres>, LedgerError> {
        let mut client = connect(target, "subsync reader")?;
        let at = target.shown().to_owned();
        match schema::identify(&mut client).map_err(|e| error(&at, &e))? {
            schema::Identity::Empty => Ok(None),
            schema::Identity::Ledger(version) => {
                LedgerError::check_version(&at, version)?;
                Ok(Some(Postgres {
                    client,
                    at,
                    ids: HashMap::new(),
                    lease: None,
                }))
            }
            other => Err(other.refusal(&at)),
        }
    }

    /// Connects, takes the writer lock on this connection (refused at once, naming the
    /// holder, if another session holds it), then creates or upgrades the schema under it.
    pub fn open_write(target: &PgTarget, command: &str) -> Result<Postgres, LedgerError> {
        let mut client = connect(target, &format!("subsync {command}"))?;
        let at = target.shown().to_owned();
        let lease = write::Lease::take(&mut client, &at, command)?;
        Ok(Postgres {
            client,
            at,
            ids: HashMap::new(),
            lease: Some(lease),
        })
    }

    fn error(&self, e: &::postgres::Error) -> LedgerError {
        if self.lease.is_some() && (self.client.is_closed() || lost_session(e)) {
            return LedgerError::LockLost {
                at: self.at.clone(),
                detail: format!(
                    "the database session ended: {}",
                    e.as_db_error()
                        .map_or_else(|| error_chain(e), |db| db.message().to_owned())
                ),
            };
        }
        error(&self.at, e)
    }
}

/// True when `e` means the session is gone (and with it any lock it held).
fn lost_session(e: &::postgres::Error) -> bool {
    e.is_closed()
        || is_io(e)
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("57P") || c.starts_with("08")
        })
}

fn error(at: &str, e: &::postgres::Error) -> LedgerError {
    LedgerError::Postgres {
        at: at.to_owned(),
        detail: describe(e),
    }
}

impl View for Postgres {
    fn snapshot(&mut self) -> Result<Snapshot, LedgerError> {
        read::snapshot(&mut self.client).map_err(|e| self.error(&e))
    }

    fn summaries(&mut self) -> Result<(Snapshot, Vec<AccountSummary>), LedgerError> {
        read::summaries(&mut self.client).map_err(|e| self.error(&e))
    }

    fn runs(&mut self, limit: usize) -> Result<Vec<Run>, LedgerError> {
        read::runs(&mut self.client, limit).map_err(|e| self.error(&e))
    }

    fn export_account(&mut self, account: &str) -> Result<AccountDump, LedgerError> {
        read::account(&mut self.client, account).map_err(|e| self.error(&e))
    }

    fn export_meta(&mut self) -> Result<Meta, LedgerError> {
        read::meta_full(&mut self.client).map_err(|e| self.error(&e))
    }

    fn export_runs(&mut self) -> Result<Vec<RunRow>, LedgerError> {
        read::all_runs(&mut self.client).map_err(|e| self.error(&e))
    }
}

#[cfg(test)]
mod tests;

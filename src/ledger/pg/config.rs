//! A PostgreSQL ledger's location: a `postgres://` URL, parsed by the driver's own parser
//! (`tokio_postgres::Config`: hosts, ports, sockets, percent-escapes, user, password,
//! database, options, connect_timeout), and what subsync adds to it:
//! - `sslmode` keeps libpq's meaning, `verify-ca` and `verify-full` included, with
//!   `sslrootcert` (a PEM file, or `system`), which the driver does not know;
//! - only the parameters subsync supports are accepted (others are refused by name);
//! - the password comes from the URL, else from the sources [`PASSWORD_SOURCES`] names, in
//!   that order (the caller reads them: it is the one that reads files and the environment);
//! - the URL is only ever shown without its password.

use std::path::PathBuf;
use std::time::Duration;

use crate::ledger::Cause;

/// Where a password the URL leaves out may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordSource {
    /// The password file the command line names (`--state-password-file`).
    File,
    /// An environment variable.
    Env(&'static str),
}

/// The password sources, in the order they are tried.
pub(crate) const PASSWORD_SOURCES: [PasswordSource; 2] =
    [PasswordSource::File, PasswordSource::Env("PGPASSWORD")];

/// A PostgreSQL database to keep the ledger in.
#[derive(Clone)]
pub struct Target {
    /// Host, port, user, database, password, options and connect_timeout, as parsed.
    config: tokio_postgres::Config,
    pub tls: TlsMode,
    /// `sslrootcert`: a PEM file, or `system` for the platform's trust store.
    pub root_cert: Option<RootCert>,
    /// The URL without its password.
    shown: String,
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// TLS when the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS always, unverified unless `sslrootcert` is given.
    Require,
    /// TLS, the certificate chain verified, the host name not.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    System,
}

/// Something wrong with a `--state` URL. The message never includes the password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("--state {shown}: {problem}")]
pub struct UrlError {
    shown: String,
    #[source]
    problem: UrlProblem,
}

#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum UrlProblem {
    #[error("not a valid URL ({0}); write postgres://USER@HOST:PORT/DATABASE")]
    NotUrl(#[source] url::ParseError),
    #[error("the driver cannot use it; write postgres://USER@HOST:PORT/DATABASE")]
    Driver(#[source] Cause),
    #[error("no user; write postgres://USER@HOST:PORT/DATABASE")]
    NoUser,
    #[error(
        "the parameter {0:?} is not supported; subsync understands sslmode, sslrootcert, connect_timeout, options, host, port, user, dbname and password"
    )]
    Unsupported(String),
    #[error("sslmode must be disable, prefer, require, verify-ca or verify-full")]
    SslMode,
    #[error(
        "sslmode=verify-ca and verify-full need sslrootcert=FILE (a PEM file of the CA) or sslrootcert=system"
    )]
    NoRootCert,
    #[error("sslmode=verify-ca needs sslrootcert=FILE; with the system's CAs use verify-full")]
    VerifyCaSystem,
    #[error("connect_timeout must be 1 to 3600 seconds")]
    ConnectTimeout,
}

/// How long a connection attempt (TCP, TLS and authentication together) may take unless the
/// URL says otherwise.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The server-side bounds subsync sets on its sessions unless `options` override them: no
/// statement of the ledger's takes more than seconds, and a lock it waits for is a stuck peer.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The parameters the driver parses for us.
const DRIVER_PARAMETERS: &[&str] = &[
    "connect_timeout",
    "options",
    "host",
    "port",
    "user",
    "dbname",
    "password",
];

impl Target {
    /// True for text that names a PostgreSQL database rather than a directory.
    pub(crate) fn claims(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// Parses a `postgres://` URL.
    pub(crate) fn parse(raw: &str) -> Result<Target, UrlError> {
        let shown = crate::quote::without_password(raw);
        let bad = |problem| UrlError {
            shown: shown.clone(),
            problem,
        };
        let url = url::Url::parse(raw).map_err(|e| bad(UrlProblem::NotUrl(e)))?;
        let mut tls = TlsMode::Prefer;
        let mut root_cert = None;
        let mut theirs = Vec::new();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => {
                    tls = match value.as_ref() {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        _ => return Err(bad(UrlProblem::SslMode)),
                    }
                }
                "sslrootcert" if value == "system" => root_cert = Some(RootCert::System),
                "sslrootcert" => root_cert = Some(RootCert::File(value.as_ref().into())),
                "connect_timeout"
                    if !value.parse::<u64>().is_ok_and(|s| (1..=3600).contains(&s)) =>
                {
                    return Err(bad(UrlProblem::ConnectTimeout));
                }
                // Ours: readers and writers set their own.
                "application_name" => {}
                key if DRIVER_PARAMETERS.contains(&key) => {
                    theirs.push((key.to_owned(), value.into_owned()))
                }
                other => return Err(bad(UrlProblem::Unsupported(other.to_owned()))),
            }
        }
        let mut driver = url.clone();
        driver.set_query(None);
        if !theirs.is_empty() {
            // The driver decodes percent-escapes only: a space must be %20, not the `+` of
            // form encoding (which writes a literal `+` as %2B, so this is exact).
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(theirs)
                .finish()
                .replace('+', "%20");
            driver.set_query(Some(&query));
        }
        let mut config: tokio_postgres::Config = driver
            .as_str()
            .parse()
            .map_err(|e| bad(UrlProblem::Driver(Cause::new(e))))?;
        if config.get_user().is_none_or(str::is_empty) {
            return Err(bad(UrlProblem::NoUser));
        }
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        match (tls, &root_cert) {
            (TlsMode::VerifyCa | TlsMode::VerifyFull, None) => {
                return Err(bad(UrlProblem::NoRootCert));
            }
            (TlsMode::VerifyCa, Some(RootCert::System)) => {
                return Err(bad(UrlProblem::VerifyCaSystem));
            }
            // libpq: with a root certificate, require verifies the chain.
            (TlsMode::Require, Some(_)) => tls = TlsMode::VerifyCa,
            _ => {}
        }
        Ok(Target {
            config,
            tls,
            root_cert,
            shown,
        })
    }

    /// Fills in the password when the URL carries none, from the first of
    /// [`PASSWORD_SOURCES`] that `secret` has one for.
    pub(crate) fn fill_password<E>(
        &mut self,
        mut secret: impl FnMut(PasswordSource) -> Result<Option<String>, E>,
    ) -> Result<(), E> {
        if self.password().is_some() {
            return Ok(());
        }
        for source in PASSWORD_SOURCES {
            if let Some(password) = secret(source)?.filter(|p| !p.is_empty()) {
                self.config.password(password);
                break;
            }
        }
        Ok(())
    }

    pub fn password(&self) -> Option<&[u8]> {
        self.config.get_password().filter(|p| !p.is_empty())
    }

    #[cfg(test)]
    pub(crate) fn user(&self) -> &str {
        self.config.get_user().unwrap_or_default()
    }

    /// The database; `None`: the server's default, the user's name.
    #[cfg(test)]
    pub(crate) fn dbname(&self) -> Option<&str> {
        self.config.get_dbname()
    }

    #[cfg(test)]
    pub(crate) fn hosts(&self) -> &[tokio_postgres::config::Host] {
        self.config.get_hosts()
    }

    #[cfg(test)]
    pub(crate) fn ports(&self) -> &[u16] {
        self.config.get_ports()
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT)
    }

    /// The URL without its password.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// The `options` sent to the server: subsync's timeouts first, the URL's after them (the
    /// server takes the last value of a setting given twice).
    pub(crate) fn server_options(&self) -> String {
        let ours = format!(
            "-c statement_timeout={}ms -c lock_timeout={}ms",
            STATEMENT_TIMEOUT.as_millis(),
            LOCK_TIMEOUT.as_millis()
        );
        match self.config.get_options() {
            Some(theirs) => format!("{ours} {theirs}"),
            None => ours,
        }
    }

    /// The driver's configuration for a session named `application_name`.
    pub(super) fn driver(&self, application_name: &str) -> tokio_postgres::Config {
        let mut config = self.config.clone();
        config
            .application_name(application_name)
            .options(self.server_options());
        config
    }
}

/// How long subsync waits for the server's answer to any one request, given the session's
/// `statement_timeout` in milliseconds (as the server reports it): that, and a margin for the
/// answer to travel. A server that says nothing for this long is treated as gone.
/// `statement_timeout=0` (no limit) waits ten minutes.
pub(super) fn answer_deadline(statement_timeout_ms: i64) -> Duration {
    match u64::try_from(statement_timeout_ms) {
        Ok(ms) if ms > 0 => Duration::from_millis(ms) + Duration::from_secs(5),
        _ => Duration::from_secs(600),
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("pg::Target")
            .field("url", &self.shown)
            .field("password", &self.password().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::config::Host;

    use super::*;

    fn target(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    fn problem(url: &str) -> String {
        crate::errors::chain(&Target::parse(url).unwrap_err())
    }

    #[test]
    fn a_url_gives_host_port_user_database_and_password() {
        let t = target("postgres://sub%40sync:p%2Fw@db.example:6432/ledger");
        assert_eq!(t.hosts(), [Host::Tcp("db.example".into())]);
        assert_eq!((t.ports(), t.user()), (&[6432][..], "sub@sync"));
        assert_eq!(
            (t.dbname(), t.password()),
            (Some("ledger"), Some(&b"p/w"[..]))
        );
        assert_eq!(t.tls, TlsMode::Prefer);
        assert_eq!(t.connect_timeout(), CONNECT_TIMEOUT);
    }

    #[test]
    fn the_password_never_shows_in_text_or_debug() {
        let t = target("postgresql://u:hunter2@[::1]/db?sslmode=disable&password=hunter3");
        for text in [t.shown().to_owned(), format!("{t:?}")] {
            assert!(!text.contains("hunter"), "{text}");
        }
        assert!(t.shown().contains("sslmode=disable"), "{}", t.shown());
        let err = problem("postgres://u:hunter2@h/db?sslmode=bogus");
        assert!(
            !err.contains("hunter2") && err.contains("sslmode must be"),
            "{err}"
        );
        let err = problem("postgres://u:hunter2@h:notaport/db");
        assert!(
            !err.contains("hunter2") && err.contains("not a valid URL"),
            "{err}"
        );
    }

    #[test]
    fn the_url_password_wins_over_the_sources_tried_in_order() {
        let fill = |url: &str| {
            let mut t = target(url);
            let mut asked = Vec::new();
            t.fill_password(|source| {
                asked.push(source);
                Ok::<_, std::convert::Infallible>(match source {
                    PasswordSource::File => None,
                    PasswordSource::Env(_) => Some("from-env".to_owned()),
                })
            })
            .unwrap();
            (t.password().map(|p| p.to_vec()), asked)
        };
        assert_eq!(
            fill("postgres://u:inurl@h/db"),
            (Some(b"inurl".to_vec()), vec![])
        );
        assert_eq!(
            fill("postgres://u@h/db"),
            (Some(b"from-env".to_vec()), PASSWORD_SOURCES.to_vec())
        );
    }

    #[test]
    fn sslmode_keeps_libpq_meaning() {
        assert_eq!(
            target("postgres://u@h/d?sslmode=require&sslrootcert=/ca.pem").tls,
            TlsMode::VerifyCa
        );
        assert!(problem("postgres://u@h/d?sslmode=verify-full").contains("sslrootcert"));
        assert!(
            problem("postgres://u@h/d?sslmode=verify-ca&sslrootcert=system")
                .contains("use verify-full")
        );
        let t = target("postgres://u@h/d?sslmode=verify-full&sslrootcert=system");
        assert_eq!(
            (t.tls, t.root_cert),
            (TlsMode::VerifyFull, Some(RootCert::System))
        );
    }

    #[test]
    fn unknown_parameters_and_missing_users_are_refused_with_the_fix() {
        let err = problem("postgres://u@h/d?target_session_attrs=any");
        assert!(
            err.contains("\"target_session_attrs\" is not supported"),
            "{err}"
        );
        assert!(problem("postgres://h/d").contains("no user"));
        assert!(problem("postgres://u@h/d?connect_timeout=0").contains("1 to 3600"));
    }

    #[test]
    fn subsync_sets_statement_and_lock_timeouts_that_options_can_override() {
        assert_eq!(
            target("postgres://u@h/d").server_options(),
            "-c statement_timeout=30000ms -c lock_timeout=10000ms"
        );
        let t =
            target("postgres://u@h/d?options=-c%20search_path%3Ds%20-c%20statement_timeout%3D2min");
        assert!(
            t.server_options()
                .ends_with("-c search_path=s -c statement_timeout=2min"),
            "{}",
            t.server_options()
        );
        assert_eq!(answer_deadline(30_000), Duration::from_secs(35));
        assert_eq!(answer_deadline(0), Duration::from_secs(600));
    }

    #[test]
    fn a_socket_directory_and_the_default_host_are_understood() {
        let t = target("postgres:///?host=/run/postgresql&user=me");
        assert_eq!(t.hosts(), [Host::Unix("/run/postgresql".into())]);
        assert_eq!((t.user(), t.dbname()), ("me", None));
        assert_eq!(target("postgres://me@h").ports(), [5432]);
        let t = target("postgres:///db?user=me&port=7");
        assert_eq!(
            (t.hosts(), t.ports()),
            (&[Host::Tcp("localhost".into())][..], &[7][..])
        );
    }
}

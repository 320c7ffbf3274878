//! Where a ledger lives: a directory (SQLite, the default) or a PostgreSQL database named by a
//! `postgres://` URL.
//!
//! The URL is parsed here, not by the driver, so that every problem is reported with the URL
//! as it is safe to show (never its password) and so that `sslmode` keeps libpq's meaning,
//! `verify-ca` and `verify-full` included. The password comes from the URL, else the caller's
//! password file, else `PGPASSWORD` (resolved in `settings`, the one place that reads the
//! environment).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::LedgerError;

/// Where a ledger lives.
#[derive(Clone)]
pub enum Location {
    /// SQLite, at `DIR/ledger.db`.
    Sqlite(PathBuf),
    Postgres(Box<PgTarget>),
}

/// How a backend is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access<'a> {
    /// Read-only; a ledger that does not exist yet is `None`, never created.
    Read,
    /// With the writer lock, creating or upgrading the ledger.
    Write { command: &'a str },
}

/// A PostgreSQL database to keep the ledger in.
#[derive(Clone)]
pub struct PgTarget {
    pub host: PgHost,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    password: Option<String>,
    pub tls: TlsMode,
    /// `sslrootcert`: a PEM file, or `system` for the platform's trust store.
    pub root_cert: Option<RootCert>,
    pub connect_timeout: Duration,
    /// `options`, passed to the server after subsync's own timeouts, so that they can override
    /// them (e.g. `-c search_path=subsync -c statement_timeout=2min`).
    pub options: Option<String>,
    /// How long one statement may run: the server's `statement_timeout`, and (with a margin)
    /// how long subsync waits for any answer before it gives the session up.
    pub statement_timeout: Duration,
    /// The URL as it is safe to show: without a password.
    shown: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgHost {
    Tcp(String),
    /// A directory holding the server's Unix socket.
    Socket(PathBuf),
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--state {shown}: {problem}")]
pub struct UrlError {
    shown: String,
    problem: String,
}

/// How long a connection attempt (TCP, TLS and authentication together) may take unless the
/// URL says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The server-side bounds subsync sets on its sessions unless `options` override them: no
/// statement of the ledger's takes more than seconds, and a lock it waits for is a stuck peer.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

impl Location {
    /// True for text that names a PostgreSQL database rather than a directory.
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// Parses a `postgres://` URL; `password` is used when the URL carries none.
    pub fn postgres(url: &str, password: Option<String>) -> Result<Location, UrlError> {
        PgTarget::parse(url, password).map(|t| Location::Postgres(Box::new(t)))
    }

    /// The SQLite file, for a directory ledger.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        self.local_dir().map(|dir| dir.join(super::FILE_NAME))
    }

    /// The local directory the ledger writes, if it writes one (file watchers ignore it).
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(dir) => Some(dir),
            Location::Postgres(_) => None,
        }
    }

    /// Opens the backend this location names.
    pub(crate) fn connect(
        &self,
        access: Access<'_>,
    ) -> Result<Option<Box<dyn super::backend::Backend>>, LedgerError> {
        match self {
            Location::Sqlite(dir) => super::sqlite::open(dir, access),
            Location::Postgres(target) => super::pg::open(target, access),
        }
    }
}

impl From<&Path> for Location {
    fn from(dir: &Path) -> Location {
        Location::Sqlite(dir.to_owned())
    }
}

impl From<PathBuf> for Location {
    fn from(dir: PathBuf) -> Location {
        Location::Sqlite(dir)
    }
}

impl From<&PathBuf> for Location {
    fn from(dir: &PathBuf) -> Location {
        Location::Sqlite(dir.clone())
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Location {
        location.clone()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(dir) => write!(f, "{}", dir.join(super::FILE_NAME).display()),
            Location::Postgres(target) => f.write_str(&target.shown),
        }
    }
}

// Never the password, at any verbosity.
impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(dir) => f.debug_tuple("Sqlite").field(dir).finish(),
            Location::Postgres(target) => f.debug_tuple("Postgres").field(&target.shown).finish(),
        }
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.shown)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The `options` sent to the server: subsync's timeouts first, the URL's after them (the
    /// server takes the last value of a setting given twice).
    pub fn server_options(&self) -> String {
        let ours = format!(
            "-c statement_timeout={}ms -c lock_timeout={}ms",
            self.statement_timeout.as_millis(),
            LOCK_TIMEOUT.as_millis()
        );
        match &self.options {
            Some(theirs) => format!("{ours} {theirs}"),
            None => ours,
        }
    }

    /// How long subsync waits for the server's answer to any one request: the statement
    /// timeout the server enforces, and a margin for the answer to travel. A server that says
    /// nothing for this long is treated as gone. `statement_timeout=0` (no limit) waits ten
    /// minutes.
    pub fn answer_deadline(&self) -> Duration {
        if self.statement_timeout.is_zero() {
            return Duration::from_secs(600);
        }
        self.statement_timeout + Duration::from_secs(5)
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn parse(raw: &str, fallback_password: Option<String>) -> Result<PgTarget, UrlError> {
        let shown_raw = redact(raw);
        let bad = |problem: String| UrlError {
            shown: shown_raw.clone(),
            problem,
        };
        let url = url::Url::parse(raw).map_err(|e| {
            bad(format!(
                "not a valid URL ({e}); write postgres://USER@HOST:PORT/DATABASE"
            ))
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad("the scheme must be postgres:// or postgresql://".into()));
        }
        let decode = |s: &str| -> Result<String, UrlError> {
            percent_decode(s).ok_or_else(|| bad("a percent-escape is not valid UTF-8".into()))
        };
        let mut user = decode(url.username())?;
        let mut password = url.password().map(decode).transpose()?;
        let mut host = match url.host() {
            Some(url::Host::Ipv6(addr)) => Some(PgHost::Tcp(addr.to_string())),
            Some(h) if !h.to_string().is_empty() => Some(PgHost::Tcp(decode(&h.to_string())?)),
            _ => None,
        };
        let mut port = url.port().unwrap_or(5432);
        let mut dbname = decode(url.path().trim_start_matches('/'))?;
        let mut tls = TlsMode::Prefer;
        let mut root_cert = None;
        let mut connect_timeout = CONNECT_TIMEOUT;
        let mut options = None;
        for (key, value) in url.query_pairs() {
            let value = value.into_owned();
            match key.as_ref() {
                "sslmode" => {
                    tls = match value.as_str() {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        _ => {
                            return Err(bad(
                                "sslmode must be disable, prefer, require, verify-ca or verify-full"
                                    .into(),
                            ));
                        }
                    }
                }
                "sslrootcert" => {
                    root_cert = Some(if value == "system" {
                        RootCert::System
                    } else {
                        RootCert::File(PathBuf::from(value))
                    })
                }
                "connect_timeout" => {
                    let secs: u64 = value
                        .parse()
                        .ok()
                        .filter(|s| (1..=3600).contains(s))
                        .ok_or_else(|| bad("connect_timeout must be 1 to 3600 seconds".into()))?;
                    connect_timeout = Duration::from_secs(secs);
                }
                "options" => options = Some(value),
                "host" if value.starts_with('/') => host = Some(PgHost::Socket(value.into())),
                "host" => host = Some(PgHost::Tcp(value)),
                "port" => {
                    port = value
                        .parse()
                        .map_err(|_| bad("port must be a number".into()))?
                }
                "user" => user = value,
                "dbname" => dbname = value,
                "password" => password = Some(value),
                // Ours: readers and writers set their own.
                "application_name" => {}
                other => {
                    return Err(bad(format!(
                        "the parameter {other:?} is not supported; subsync understands sslmode, sslrootcert, connect_timeout, options, host, port, user, dbname and password"
                    )));
                }
            }
        }
        if user.is_empty() {
            return Err(bad(
                "no user; write postgres://USER@HOST:PORT/DATABASE".into()
            ));
        }
        if dbname.is_empty() {
            dbname = user.clone();
        }
        if matches!(tls, TlsMode::VerifyCa | TlsMode::VerifyFull) && root_cert.is_none() {
            return Err(bad(
                "sslmode=verify-ca and verify-full need sslrootcert=FILE (a PEM file of the CA) or sslrootcert=system".into(),
            ));
        }
        if tls == TlsMode::VerifyCa && root_cert == Some(RootCert::System) {
            return Err(bad(
                "sslmode=verify-ca needs sslrootcert=FILE; with the system's CAs use verify-full"
                    .into(),
            ));
        }
        // libpq: with a root certificate, require verifies the chain.
        if tls == TlsMode::Require && root_cert.is_some() {
            tls = TlsMode::VerifyCa;
        }
        if password.as_deref().is_none_or(str::is_empty) {
            password = fallback_password;
        }
        let statement_timeout = options
            .as_deref()
            .and_then(|o| setting(o, "statement_timeout"))
            .map(|v| {
                parse_pg_duration(&v).ok_or_else(|| {
                    bad(format!(
                        "statement_timeout {} in options is not a duration; write e.g. 30s or 2min",
                        crate::quote::quote(&v)
                    ))
                })
            })
            .transpose()?
            .unwrap_or(STATEMENT_TIMEOUT);
        Ok(PgTarget {
            host: host.unwrap_or_else(|| PgHost::Tcp("localhost".into())),
            port,
            user,
            dbname,
            password,
            tls,
            root_cert,
            connect_timeout,
            options,
            statement_timeout,
            shown: shown_raw,
        })
    }
}

/// `raw` without its password: the userinfo's and a `password` parameter's.
fn redact(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        // Unparseable: show the scheme and host part only, up to any '@'.
        let scheme_end = raw.find("://").map_or(0, |i| i + 3);
        let rest = &raw[scheme_end..];
        let after_at = rest.rfind('@').map_or(rest, |i| &rest[i + 1..]);
        let host: String = after_at
            .chars()
            .take_while(|c| !matches!(c, '/' | '?'))
            .take(100)
            .collect();
        return format!("{}{host}/…", &raw[..scheme_end]);
    };
    if url.password().is_some() {
        let _ = url.set_password(None);
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "password")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if url.query().is_some() {
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    url.to_string()
}

/// The value of `-c NAME=VALUE` (or `--NAME=VALUE`) in a libpq `options` string.
fn setting(options: &str, name: &str) -> Option<String> {
    let mut words = options.split_whitespace().peekable();
    let mut found = None;
    while let Some(word) = words.next() {
        let assignment = match word {
            "-c" => words.next().unwrap_or(""),
            w if w.starts_with("-c") => &w[2..],
            w if w.starts_with("--") => &w[2..],
            _ => continue,
        };
        if let Some((key, value)) = assignment.split_once('=')
            && key.replace('-', "_") == name
        {
            found = Some(value.to_owned());
        }
    }
    found
}

/// A PostgreSQL duration setting: a number of milliseconds, or one with a unit (ms, s, min,
/// h, d).
fn parse_pg_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    }?;
    Some(Duration::from_millis(ms))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, fallback: Option<&str>) -> PgTarget {
        match Location::postgres(url, fallback.map(str::to_owned)).unwrap() {
            Location::Postgres(t) => *t,
            Location::Sqlite(_) => unreachable!(),
        }
    }

    #[test]
    fn a_url_gives_host_port_user_database_and_password() {
        let t = target("postgres://sub%40sync:p%2Fw@db.example:6432/ledger", None);
        assert_eq!(t.host, PgHost::Tcp("db.example".into()));
        assert_eq!((t.port, t.user.as_str()), (6432, "sub@sync"));
        assert_eq!((t.dbname.as_str(), t.password()), ("ledger", Some("p/w")));
        assert_eq!(t.tls, TlsMode::Prefer);
    }

    #[test]
    fn the_password_never_shows_in_text_or_debug() {
        let url = "postgresql://u:hunter2@[::1]/db?sslmode=disable&password=hunter3";
        let location = Location::postgres(url, None).unwrap();
        for text in [location.to_string(), format!("{location:?}")] {
            assert!(!text.contains("hunter"), "{text}");
            assert!(text.contains("sslmode=disable"), "{text}");
        }
        let err = Location::postgres("postgres://u:hunter2@h/db?sslmode=bogus", None)
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("hunter2") && err.contains("sslmode must be"),
            "{err}"
        );
        let err = Location::postgres("postgres://u:hunter2@h:notaport/db", None)
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("hunter2") && err.contains("not a valid URL"),
            "{err}"
        );
    }

    #[test]
    fn the_url_password_wins_over_the_fallback() {
        assert_eq!(
            target("postgres://u:inurl@h/db", Some("file")).password(),
            Some("inurl")
        );
        assert_eq!(
            target("postgres://u@h/db", Some("file")).password(),
            Some("file")
        );
        assert_eq!(target("postgres://u@h/db", None).password(), None);
    }

    #[test]
    fn sslmode_keeps_libpq_meaning() {
        assert_eq!(
            target("postgres://u@h/d?sslmode=require&sslrootcert=/ca.pem", None).tls,
            TlsMode::VerifyCa
        );
        let err = Location::postgres("postgres://u@h/d?sslmode=verify-full", None).unwrap_err();
        assert!(err.to_string().contains("sslrootcert"), "{err}");
        let t = target(
            "postgres://u@h/d?sslmode=verify-full&sslrootcert=system",
            None,
        );
        assert_eq!(
            (t.tls, t.root_cert),
            (TlsMode::VerifyFull, Some(RootCert::System))
        );
    }

    #[test]
    fn unknown_parameters_and_missing_users_are_refused_with_the_fix() {
        let err = Location::postgres("postgres://u@h/d?target_session_attrs=any", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"target_session_attrs\" is not supported"),
            "{err}"
        );
        let err = Location::postgres("postgres://h/d", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no user"), "{err}");
    }

    #[test]
    fn subsync_sets_statement_and_lock_timeouts_that_options_can_override() {
        let t = target("postgres://u@h/d", None);
        assert_eq!(
            t.server_options(),
            "-c statement_timeout=30000ms -c lock_timeout=10000ms"
        );
        assert_eq!(t.answer_deadline(), Duration::from_secs(35));
        let t = target(
            "postgres://u@h/d?options=-c%20search_path%3Ds%20-c%20statement_timeout%3D2min",
            None,
        );
        assert!(
            t.server_options()
                .ends_with("-c search_path=s -c statement_timeout=2min"),
            "{}",
            t.server_options()
        );
        assert_eq!(t.statement_timeout, Duration::from_secs(120));
        let err = Location::postgres(
            "postgres://u@h/d?options=-c%20statement_timeout%3Dsoon",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("statement_timeout \"soon\""), "{err}");
    }

    #[test]
    fn a_socket_directory_and_a_default_database_are_understood() {
        let t = target("postgres:///?host=/run/postgresql&user=me", None);
        assert_eq!(t.host, PgHost::Socket("/run/postgresql".into()));
        assert_eq!((t.user.as_str(), t.dbname.as_str()), ("me", "me"));
        assert_eq!(target("postgres://me@h", None).port, 5432);
    }
}

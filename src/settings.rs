//! Settings: the flags (with their environment fallbacks and defaults) that several commands
//! share, and their resolution into validated structs.
//!
//! This is the only module that reads the environment by hand (`SUBSYNC_SECRET_KEY`, which no
//! flag may carry); clap reads the documented fallbacks of the flags declared here. Every
//! error names the flag and the variable to fix.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::ledger::{Location, UrlError};
use crate::manifest::Limits;
use crate::tencent::ClientConfig;
use crate::tencent::api;
use crate::tencent::endpoint::{Endpoint, EndpointError, Region};
use crate::tencent::usersig::SecretKey;

/// Credentials and endpoint of the app.
#[derive(Debug, Clone, Args, Default)]
pub struct ApiArgs {
    /// The app's SDKAppID.
    #[arg(long, env = "SUBSYNC_SDKAPPID", global = true)]
    pub sdkappid: Option<String>,
    /// File holding the app's secret key (or set SUBSYNC_SECRET_KEY; no flag takes the key itself).
    #[arg(
        long,
        env = "SUBSYNC_SECRET_KEY_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub secret_key_file: Option<PathBuf>,
    /// An App administrator's UserID, used as the request identifier.
    #[arg(
        long,
        env = "SUBSYNC_IDENTIFIER",
        global = true,
        default_value = "administrator"
    )]
    pub identifier: String,
    /// Region of the app: china, singapore, seoul, frankfurt, silicon-valley, jakarta, tokyo.
    #[arg(long, env = "SUBSYNC_REGION", global = true)]
    pub region: Option<String>,
    /// Base URL overriding --region (plain http only on loopback).
    #[arg(long, env = "SUBSYNC_ENDPOINT", global = true, value_name = "URL")]
    pub endpoint: Option<String>,
}

/// Where the ledger lives.
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// The state ledger: a directory (SQLite, ledger.db in it) or a postgres:// URL.
    #[arg(
        long = "state",
        env = "SUBSYNC_STATE",
        default_value = ".subsync",
        value_name = "DIR|URL"
    )]
    pub at: PathBuf,
    /// File holding the PostgreSQL password, when the --state URL carries none (PGPASSWORD also works).
    #[arg(long, env = "SUBSYNC_STATE_PASSWORD_FILE", value_name = "FILE")]
    pub state_password_file: Option<PathBuf>,
    /// Work with the sandbox: its own ledger in DIR/sandbox and, for apply, an in-process emulator.
    #[arg(long)]
    pub sandbox: bool,
}

impl StateArgs {
    /// The ledger in effect. The sandbox keeps its own ledger in `DIR/sandbox`, so that demo
    /// runs never mix with the real service's records.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<Location, SettingsError> {
        let is_url = self.at.to_str().is_some_and(Location::is_url);
        match (is_url, self.sandbox) {
            (true, true) => Err(SettingsError::SandboxUrl),
            (false, true) => Ok(Location::Dir(self.at.join("sandbox"))),
            _ => resolve_location(&self.at, self.state_password_file.as_deref(), env),
        }
    }
}

/// A directory, or a `postgres://` URL whose password, when it carries none, comes from
/// `password_file`, else from `PGPASSWORD`.
pub fn resolve_location(
    at: &Path,
    password_file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Location, SettingsError> {
    match at.to_str().filter(|t| Location::is_url(t)) {
        Some(url) => {
            let password = match password_file {
                Some(path) => Some(read_password_file(path)?),
                None => env("PGPASSWORD").filter(|p| !p.is_empty()),
            };
            Ok(Location::postgres(url, password)?)
        }
        None => Ok(Location::Dir(at.to_owned())),
    }
}

fn read_password_file(path: &Path) -> Result<String, SettingsError> {
    let raw = std::fs::read_to_string(path).map_err(|source| SettingsError::PasswordFile {
        path: path.to_owned(),
        source,
    })?;
    let password = raw.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(SettingsError::EmptyPasswordFile(path.to_owned()));
    }
    Ok(password.to_owned())
}

/// Bounds on what reading manifests and subscriber files may cost (see `manifest::Limits`).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest manifest file (bytes; K, M, G suffixes are binary).
    #[arg(long, env = "SUBSYNC_MAX_MANIFEST_BYTES", value_name = "BYTES", value_parser = parse_bytes,
          default_value_t = Limits::default().max_manifest_bytes)]
    pub max_manifest_bytes: u64,
    /// Largest subscriber file once gunzipped (bytes; K, M, G suffixes are binary).
    #[arg(long, env = "SUBSYNC_MAX_LIST_BYTES", value_name = "BYTES", value_parser = parse_bytes,
          default_value_t = Limits::default().max_list_bytes)]
    pub max_list_bytes: u64,
    /// Longest line in a subscriber file, in bytes.
    #[arg(long, env = "SUBSYNC_MAX_LINE_BYTES", value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(64..),
          default_value_t = Limits::default().max_line_bytes as u32)]
    pub max_line_bytes: u32,
    /// Deepest nesting of lists and mappings in a manifest.
    #[arg(long, env = "SUBSYNC_MAX_DEPTH", value_name = "LEVELS",
          value_parser = clap::value_parser!(u32).range(4..=1000),
          default_value_t = Limits::default().max_depth as u32)]
    pub max_depth: u32,
    /// Most distinct subscribers one account may list (raise it with the account's MaxSubscriberNum).
    #[arg(long, env = "SUBSYNC_MAX_SUBSCRIBERS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..),
          default_value_t = Limits::default().max_subscribers as u32)]
    pub max_subscribers: u32,
}

impl LimitArgs {
    pub fn resolve(&self) -> Limits {
        Limits {
            max_manifest_bytes: self.max_manifest_bytes,
            max_list_bytes: self.max_list_bytes,
            max_line_bytes: self.max_line_bytes as usize,
            max_depth: self.max_depth as usize,
            max_subscribers: self.max_subscribers as usize,
        }
    }
}

/// `4096`, `64K`, `16MiB`, `1G`: bytes, with binary suffixes.
pub fn parse_bytes(raw: &str) -> Result<u64, String> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "{raw:?} is not a size; write bytes such as 4096, 64K or 16MiB"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a size; write bytes such as 4096, 64K or 16MiB"))?;
    n.checked_shl(shift)
        .filter(|v| *v >> shift == n && *v > 0)
        .ok_or_else(|| format!("{raw:?} is out of range"))
}

/// `500ms`, `30s`, `10m`, `1h`, `0`: a duration with its unit.
pub fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    let text = raw.trim();
    let bad = || format!("{raw:?} is not a duration; write e.g. 500ms, 30s, 10m or 1h");
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(bad()),
    };
    millis
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("{raw:?} is out of range"))
}

/// How log lines on stderr are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// When stderr gets colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    Always,
    Never,
}

/// How stderr is written, resolved once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Output {
    pub color: bool,
    /// A person watches stderr: progress may be a bar.
    pub terminal: bool,
    /// Every stderr line must be one JSON object.
    pub json: bool,
}

impl Output {
    /// `no_color` is the value of NO_COLOR, which any non-empty value sets (no-color.org).
    pub fn resolve(
        choice: ColorChoice,
        no_color: Option<&str>,
        format: LogFormat,
        terminal: bool,
    ) -> Output {
        let json = format == LogFormat::Json;
        let color = !json
            && match choice {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => terminal && no_color.is_none_or(str::is_empty),
            };
        Output {
            color,
            terminal: terminal && !json,
            json,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("no SDKAppID: pass --sdkappid or set SUBSYNC_SDKAPPID")]
    MissingSdkAppId,
    #[error(
        "SDKAppID {0:?} is not a number; copy the numeric SDKAppID from the console into --sdkappid or SUBSYNC_SDKAPPID"
    )]
    BadSdkAppId(String),
    #[error(
        "no secret key: set SUBSYNC_SECRET_KEY_FILE (or --secret-key-file) to a file holding it, or SUBSYNC_SECRET_KEY"
    )]
    MissingKey,
    #[error(
        "cannot read the secret key file {path}: {source}; check --secret-key-file or SUBSYNC_SECRET_KEY_FILE"
    )]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret key file {0} is empty; put the app's secret key in it")]
    EmptyKeyFile(PathBuf),
    #[error("SUBSYNC_SECRET_KEY is set but empty; set it to the app's secret key or unset it")]
    EmptyKeyVar,
    #[error(
        "identifier {0:?} is not a valid UserID (1 to 32 printable ASCII bytes); fix --identifier or SUBSYNC_IDENTIFIER"
    )]
    BadIdentifier(String),
    #[error("no region: pass --region ({names}) or --endpoint URL", names = Region::ALL.map(Region::name).join(", "))]
    NoEndpoint,
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    StateUrl(#[from] UrlError),
    #[error(
        "cannot read the state password file {path}: {source}; check --state-password-file or SUBSYNC_STATE_PASSWORD_FILE"
    )]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the state password file {0} is empty; put the database password in it")]
    EmptyPasswordFile(PathBuf),
    #[error(
        "--sandbox keeps its ledger in a directory; give --state a directory, not a postgres:// URL"
    )]
    SandboxUrl,
}

/// Validated credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub sdkappid: u64,
    pub identifier: String,
    pub key: SecretKey,
}

/// Reads an environment variable; the one place that does.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl ApiArgs {
    /// SDKAppID, identifier and key; the key file flag (or its variable) wins over SUBSYNC_SECRET_KEY.
    pub fn credentials(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, SettingsError> {
        let raw = self
            .sdkappid
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(SettingsError::MissingSdkAppId)?;
        let sdkappid = raw
            .parse()
            .map_err(|_| SettingsError::BadSdkAppId(raw.to_owned()))?;
        if !api::is_valid_user_id(&self.identifier) {
            return Err(SettingsError::BadIdentifier(self.identifier.clone()));
        }
        let key = match (&self.secret_key_file, env("SUBSYNC_SECRET_KEY")) {
            (Some(path), _) => read_key_file(path)?,
            (None, Some(value)) => SecretKey::new(&value).ok_or(SettingsError::EmptyKeyVar)?,
            (None, None) => return Err(SettingsError::MissingKey),
        };
        Ok(Credentials {
            sdkappid,
            identifier: self.identifier.clone(),
            key,
        })
    }

    /// The endpoint: --endpoint wins over --region.
    pub fn endpoint(&self) -> Result<Endpoint, SettingsError> {
        match (&self.endpoint, &self.region) {
            (Some(url), _) => Ok(Endpoint::parse(url)?),
            (None, Some(region)) => Ok(Endpoint::for_region(region.parse()?)),
            (None, None) => Err(SettingsError::NoEndpoint),
        }
    }

    /// Everything the client needs, checked before any request is built.
    pub fn client_config(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ClientConfig, SettingsError> {
        let endpoint = self.endpoint()?;
        let c = self.credentials(env)?;
        Ok(ClientConfig::new(endpoint, c.sdkappid, c.identifier, c.key))
    }
}

fn read_key_file(path: &Path) -> Result<SecretKey, SettingsError> {
    let raw = std::fs::read_to_string(path).map_err(|source| SettingsError::KeyFile {
        path: path.to_owned(),
        source,
    })?;
    SecretKey::new(&raw).ok_or_else(|| SettingsError::EmptyKeyFile(path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ApiArgs {
        ApiArgs {
            sdkappid: Some("1400000000".into()),
            identifier: "administrator".into(),
            ..ApiArgs::default()
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn key_comes_from_the_file_before_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        let a = ApiArgs {
            secret_key_file: Some(file),
            ..args()
        };
        let env = |n: &str| (n == "SUBSYNC_SECRET_KEY").then(|| "from-env".to_owned());
        let creds = a.credentials(env).unwrap();
        let sig = crate::tencent::usersig::generate(&creds.key, 1, "a", 0, 10);
        let file_key = SecretKey::new("from-file").unwrap();
        assert!(crate::tencent::usersig::verify(sig.as_str(), &file_key, 1, "a", 0).is_ok());
    }

    #[test]
    fn bad_input_gets_one_sentence_naming_the_fix() {
        let err = ApiArgs {
            sdkappid: Some("abc".into()),
            ..args()
        }
        .credentials(no_env)
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"abc\"") && err.contains("SUBSYNC_SDKAPPID"),
            "{err}"
        );
        let err = args().credentials(no_env).unwrap_err().to_string();
        assert!(err.contains("SUBSYNC_SECRET_KEY_FILE"), "{err}");
        let missing = ApiArgs {
            secret_key_file: Some("/nonexistent/key".into()),
            ..args()
        };
        let err = missing.credentials(no_env).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/key"), "{err}");
        let err = ApiArgs {
            region: Some("mars".into()),
            ..args()
        }
        .endpoint()
        .unwrap_err()
        .to_string();
        assert!(err.contains("mars"), "{err}");
    }

    #[test]
    fn endpoint_overrides_region() {
        let a = ApiArgs {
            region: Some("china".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            ..args()
        };
        assert!(a.endpoint().unwrap().is_loopback());
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("1 GB"), Ok(1 << 30));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("99999999999G").is_err());
    }

    #[test]
    fn colour_follows_the_terminal_and_no_color() {
        let text = |c, n, t| Output::resolve(c, n, LogFormat::Text, t).color;
        assert!(text(ColorChoice::Auto, None, true));
        assert!(!text(ColorChoice::Auto, None, false));
        assert!(!text(ColorChoice::Auto, Some("1"), true));
        assert!(text(ColorChoice::Auto, Some(""), true));
        assert!(text(ColorChoice::Always, Some("1"), false));
        assert!(!text(ColorChoice::Never, None, true));
        let json = Output::resolve(ColorChoice::Always, None, LogFormat::Json, true);
        assert!(!json.color && !json.terminal && json.json);
    }

    #[test]
    fn durations_need_a_unit() {
        let ms = |n| Ok(std::time::Duration::from_millis(n));
        assert_eq!(parse_duration("500ms"), ms(500));
        assert_eq!(parse_duration("30s"), ms(30_000));
        assert_eq!(parse_duration("10m"), ms(600_000));
        assert_eq!(parse_duration("1h"), ms(3_600_000));
        assert_eq!(parse_duration("0"), ms(0));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("m").is_err());
    }

    fn state(at: &str, sandbox: bool) -> StateArgs {
        StateArgs {
            at: at.into(),
            state_password_file: None,
            sandbox,
        }
    }

    #[test]
    fn sandbox_keeps_its_own_state_directory() {
        let location = state("st", true).resolve(no_env).unwrap();
        assert_eq!(
            location.sqlite_file(),
            Some(PathBuf::from("st/sandbox/ledger.db"))
        );
        let err = state("postgres://u@h/db", true)
            .resolve(no_env)
            .unwrap_err();
        assert!(err.to_string().contains("--sandbox"), "{err}");
    }

    #[test]
    fn the_state_password_comes_from_the_file_before_pgpassword() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let env = |n: &str| (n == "PGPASSWORD").then(|| "from-env".to_owned());
        let password = |args: &StateArgs| match args.resolve(env).unwrap() {
            Location::Postgres(t) => t.password().map(str::to_owned),
            Location::Dir(_) => None,
        };
        let mut args = state("postgres://u@h/db", false);
        assert_eq!(password(&args).as_deref(), Some("from-env"));
        args.state_password_file = Some(file.clone());
        assert_eq!(password(&args).as_deref(), Some("from-file"));
        args.at = "postgres://u:in-url@h/db".into();
        assert_eq!(password(&args).as_deref(), Some("in-url"));
        std::fs::write(&file, "\n").unwrap();
        let err = args.resolve(env).unwrap_err().to_string();
        assert!(err.contains("is empty") && err.contains("pw"), "{err}");
    }
}

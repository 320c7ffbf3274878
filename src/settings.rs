//! Settings: what a command was asked for, resolved once into a validated [`Config`].
//!
//! The command line fills in the requests ([`ServiceRequest`], [`StateRequest`],
//! [`RunRequest`]) from flags, their environment variables and defaults (clap does that, in
//! `cli`; the library never sees a clap type). [`resolve`] validates them together, reads the
//! secrets (the key file wins over `SUBSYNC_SECRET_KEY`, the password file over `PGPASSWORD`)
//! and reports every problem at once. This is the only module that reads the environment by
//! hand, for the two secrets no flag may carry.
//!
//! Secret files are read like untrusted input: only regular files (a FIFO or a device is
//! refused without blocking), at most [`MAX_SECRET_FILE`] bytes, one line of printable text.
//! A key file that group or others can read is warned about.

use std::path::PathBuf;
use std::time::Duration;

use crate::apply::{Policy, RetryPolicy};
use crate::backoff::Backoff;
use crate::descriptors::{Budget, DescriptorError, Needs};
use crate::ledger::{Location, LocationError};
use crate::manifest::Limits;
use crate::plan::PlanOptions;
use crate::quote::quote;
use crate::tencent::api;
use crate::tencent::endpoint::{Endpoint, EndpointError, Region};
use crate::tencent::usersig::{Credentials, SecretKey};
use crate::tencent::{ClientConfig, Timeouts};

/// The documented limit is 200 calls per second per command; staying just under it means a run
/// never provokes a rate-limit answer by itself.
pub const DEFAULT_QPS: u32 = 190;

/// The variable holding the secret key itself, when no key file is given: no flag takes the
/// key, so that it never shows in a process list.
pub const SECRET_KEY_VAR: &str = "SUBSYNC_SECRET_KEY";

/// Calls in flight needed to keep `qps` calls a second going (Little's law: in flight = rate ×
/// round trip), for round trips up to a second: a far region (250 ms) needs 48 at 190/s. Calls
/// beyond the rate only wait for the limiter, so the bound costs nothing on short paths.
pub(crate) fn default_concurrency(qps: u32) -> usize {
    (qps as usize).clamp(8, 1024)
}

/// The app's credentials and endpoint, as asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceRequest {
    pub sdkappid: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub identifier: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    /// Longest wait for an answer to start; the default when `None`.
    pub timeout: Option<Duration>,
}

/// Where the ledger is, as asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct StateRequest {
    /// A directory or a `postgres://` URL.
    pub at: String,
    pub password_file: Option<PathBuf>,
    /// Work with the sandbox (its own ledger in `DIR/sandbox`, and an in-process emulator).
    pub sandbox: bool,
    /// The sandbox's emulator configuration, when not the default one.
    pub sandbox_config: Option<PathBuf>,
}

/// What a run that talks to the service was asked for.
#[derive(Debug, Clone)]
pub(crate) struct RunRequest {
    pub service: ServiceRequest,
    pub state: StateRequest,
    pub qps: u32,
    pub concurrency: Option<usize>,
    pub limits: Limits,
    pub prune: PlanOptions,
    /// Recorded with each run instead of the manifests' git commit.
    pub revision: Option<String>,
    /// The process's soft open-file limit (`None`: unlimited); see [`crate::descriptors`].
    pub open_files: Option<u64>,
    /// Notification sinks configured: each may hold a connection.
    pub notify_sinks: usize,
}

/// What `watch` was asked for beyond a run: its timing, each checked against its rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DaemonRequest {
    pub debounce: Duration,
    /// `0`: only on changes.
    pub resync: Duration,
    /// `0`: never.
    pub refresh_every: Duration,
    pub takeover_every: Duration,
}

/// The daemon's timing, validated against [`durations`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DaemonTiming {
    pub debounce: Duration,
    /// `None`: only on changes.
    pub resync: Option<Duration>,
    /// How often each account's live list is read; `None`: never.
    pub refresh_every: Option<Duration>,
    pub takeover_every: Duration,
}

/// Longest `--revision` kept: it is stored with every run and shown in reports.
pub(crate) const MAX_REVISION: usize = 256;

/// What a run is for: the policy differences between commands are named here, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `apply`, `import`, `plan --refresh`: one run a person started.
    Once,
    /// `watch`: runs again and again, unattended.
    Daemon,
}

impl Purpose {
    fn policy(self, concurrency: usize, prune: PlanOptions, limits: &Limits) -> Policy {
        let once = self == Purpose::Once;
        Policy {
            concurrency,
            retry: RetryPolicy::default(),
            // A person waits for a run; a daemon being replaced can afford to finish its batches.
            drain: Duration::from_secs(if once { 5 } else { 10 }),
            // A person retries on purpose; a daemon must not hammer a subscriber that keeps failing.
            retry_backoff: (!once).then_some(Backoff::new(
                Duration::from_secs(60),
                Duration::from_secs(6 * 3600),
            )),
            // A daemon resyncs every few minutes: an idle resync leaves no audit entry.
            audit_idle_runs: once,
            prune,
            max_subscribers: limits.max_subscribers as u64,
        }
    }
}

/// Where requests go.
#[derive(Debug, Clone)]
pub(crate) enum Remote {
    /// The service (or an emulator given as --endpoint).
    Service(Service),
    /// An emulator started inside the process.
    Sandbox {
        /// Its accounts and pre-existing subscribers; `None` for none.
        config: Option<PathBuf>,
        /// Where its remote state persists (`STATE/sandbox`).
        state_dir: PathBuf,
    },
}

/// The validated credentials and endpoint of the app.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub endpoint: Endpoint,
    pub sdkappid: u64,
    pub identifier: String,
    pub key: SecretKey,
    /// Where the key came from, when a file: read again when it changes (a rotated Secret).
    pub key_file: Option<PathBuf>,
    pub timeouts: Timeouts,
}

impl Service {
    pub(crate) fn client_config(&self) -> ClientConfig {
        ClientConfig {
            timeouts: self.timeouts,
            ..ClientConfig::new(
                self.endpoint.clone(),
                self.sdkappid,
                self.identifier.clone(),
                self.key.clone(),
            )
        }
    }

    /// The same service with the key file read again; `None` without a key file.
    pub(crate) fn reread_key(&self) -> Option<Result<Service, SettingsError>> {
        let path = self.key_file.as_ref()?;
        Some(read_key_file(path, false).map(|key| Service {
            key,
            ..self.clone()
        }))
    }
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub remote: Remote,
    pub ledger: Location,
    /// Calls per second for each API command.
    pub qps: u32,
    pub policy: Policy,
    pub limits: Limits,
    /// Recorded with each run instead of the manifests' git commit.
    pub revision: Option<String>,
    /// How the open-file limit is shared; `policy.concurrency` fits in it.
    pub descriptors: Budget,
}

/// Resolves a run's request: every problem found is reported, not only the first.
pub(crate) fn resolve(
    request: RunRequest,
    purpose: Purpose,
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, SettingsErrors> {
    let mut problems = Vec::new();
    let (remote, ledger) = if request.state.sandbox {
        let ledger = resolve_state(&request.state, env)
            .map_err(|e| problems.push(e))
            .ok();
        let config = request
            .state
            .sandbox_config
            .clone()
            .or_else(|| crate::sandbox::default_config(paths));
        let state_dir = PathBuf::from(&request.state.at).join("sandbox");
        (Some(Remote::Sandbox { config, state_dir }), ledger)
    } else {
        let service = resolve_service(&request.service, env)
            .map_err(|e| problems.extend(e.0))
            .ok();
        let ledger = resolve_state(&request.state, env)
            .map_err(|e| problems.push(e))
            .ok();
        (service.map(Remote::Service), ledger)
    };
    if let Some(revision) = &request.revision
        && let Err(e) = check_revision(revision)
    {
        problems.push(e);
    }
    let needs = Needs {
        probes: purpose == Purpose::Daemon,
        sinks: request.notify_sinks,
        sandbox: request.state.sandbox,
    };
    let budget = Budget::of(request.open_files, needs)
        .map_err(|e| problems.push(e.into()))
        .ok();
    match (remote, ledger, budget) {
        (Some(remote), Some(ledger), Some(budget)) if problems.is_empty() => {
            let requested = request
                .concurrency
                .unwrap_or_else(|| default_concurrency(request.qps));
            let concurrency = budget.concurrency(requested);
            if concurrency < requested {
                tracing::warn!(
                    limit = budget.limit,
                    reserved = budget.reserved,
                    probes = budget.probes,
                    concurrency,
                    requested,
                    "the open-file limit (ulimit -n) of {} leaves room for {concurrency} API connections after {} kept for the ledger, the manifests{}: at most {concurrency} calls in flight instead of {requested}; raise the limit to go faster",
                    budget.limit.unwrap_or_default(),
                    budget.reserved as usize + if needs.probes { budget.probes } else { 0 },
                    if needs.probes {
                        ", probes and notifications"
                    } else {
                        " and notifications"
                    },
                );
            }
            Ok(Config {
                remote,
                ledger,
                qps: request.qps,
                policy: purpose.policy(concurrency, request.prune, &request.limits),
                limits: request.limits,
                revision: request.revision,
                descriptors: budget,
            })
        }
        _ => Err(SettingsErrors(problems)),
    }
}

/// A run's settings and the daemon's timing, every problem among them at once.
pub(crate) fn resolve_daemon(
    request: RunRequest,
    daemon: DaemonRequest,
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, DaemonTiming), SettingsErrors> {
    let mut problems = Vec::new();
    let mut check = |rule: &durations::Rule, value: Duration| {
        rule.check(value).map_err(|e| problems.push(e)).ok()
    };
    let debounce = check(&durations::DEBOUNCE, daemon.debounce);
    let resync = check(&durations::RESYNC, daemon.resync);
    let refresh_every = check(&durations::REFRESH_EVERY, daemon.refresh_every);
    let takeover_every = check(&durations::TAKEOVER_EVERY, daemon.takeover_every);
    let config = resolve(request, Purpose::Daemon, paths, env).map_err(|e| e.0);
    match (config, debounce, resync, refresh_every, takeover_every) {
        (
            Ok(config),
            Some(Some(debounce)),
            Some(resync),
            Some(refresh_every),
            Some(Some(takeover_every)),
        ) if problems.is_empty() => Ok((
            config,
            DaemonTiming {
                debounce,
                resync,
                refresh_every,
                takeover_every,
            },
        )),
        (config, ..) => {
            problems.extend(config.err().unwrap_or_default());
            Err(SettingsErrors(problems))
        }
    }
}

/// A revision to record: at most [`MAX_REVISION`] bytes of printable text, not empty.
fn check_revision(revision: &str) -> Result<(), SettingsError> {
    let problem = if revision.trim().is_empty() {
        "is empty; leave it unset to record the manifests' git commit".to_owned()
    } else if revision.len() > MAX_REVISION {
        format!(
            "is {} bytes; at most {MAX_REVISION} are kept (a commit id is 40 or 64)",
            revision.len()
        )
    } else if revision.chars().any(char::is_control) {
        "holds a control character (a newline?); give one line of text such as a commit id"
            .to_owned()
    } else {
        return Ok(());
    };
    Err(SettingsError::BadRevision {
        shown: quote(revision),
        problem,
    })
}

/// SDKAppID, identifier and key; every problem among them at once.
pub(crate) fn resolve_credentials(
    request: &ServiceRequest,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, SettingsErrors> {
    let mut problems = Vec::new();
    let sdkappid = match request.sdkappid.as_deref().map(str::trim) {
        None | Some("") => Err(SettingsError::MissingSdkAppId),
        Some(raw) => raw
            .parse::<u64>()
            .map_err(|_| SettingsError::BadSdkAppId(quote(raw))),
    }
    .map_err(|e| problems.push(e))
    .ok();
    if !api::is_valid_user_id(&request.identifier) {
        problems.push(SettingsError::BadIdentifier(quote(&request.identifier)));
    }
    let key = match (&request.secret_key_file, env(SECRET_KEY_VAR)) {
        (Some(path), _) => read_key_file(path, true),
        (None, Some(value)) => check_key(&value).ok_or(SettingsError::BadKeyVar),
        (None, None) => Err(SettingsError::MissingKey),
    }
    .map_err(|e| problems.push(e))
    .ok();
    match (sdkappid, key) {
        (Some(sdkappid), Some(key)) if problems.is_empty() => Ok(Credentials {
            sdkappid,
            identifier: request.identifier.clone(),
            key,
        }),
        _ => Err(SettingsErrors(problems)),
    }
}

/// The endpoint: `--endpoint` wins over `--region`.
pub(crate) fn resolve_endpoint(request: &ServiceRequest) -> Result<Endpoint, SettingsError> {
    match (&request.endpoint, &request.region) {
        (Some(url), _) => Ok(Endpoint::parse(url)?),
        (None, Some(region)) => Ok(Endpoint::for_region(region.parse()?)),
        (None, None) => Err(SettingsError::NoEndpoint),
    }
}

/// Endpoint and credentials; every problem among them at once.
pub(crate) fn resolve_service(
    request: &ServiceRequest,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Service, SettingsErrors> {
    let endpoint = resolve_endpoint(request);
    let credentials = resolve_credentials(request, env);
    let mut timeout_problem = None;
    let timeout = request.timeout.map(|t| {
        durations::API_TIMEOUT
            .check(t)
            .map_err(|e| timeout_problem = Some(e))
            .ok()
    });
    match (endpoint, credentials) {
        (Ok(endpoint), Ok(c)) if timeout_problem.is_none() => Ok(Service {
            endpoint,
            sdkappid: c.sdkappid,
            identifier: c.identifier,
            key: c.key,
            key_file: request.secret_key_file.clone(),
            timeouts: timeout
                .flatten()
                .flatten()
                .map_or_else(Timeouts::default, Timeouts::answering_within),
        }),
        (endpoint, credentials) => {
            let mut problems: Vec<SettingsError> = endpoint.err().into_iter().collect();
            problems.extend(credentials.err().map(|e| e.0).unwrap_or_default());
            problems.extend(timeout_problem);
            Err(SettingsErrors(problems))
        }
    }
}

/// `4096`, `64K`, `16MiB`, `1G`: bytes, with binary suffixes.
pub(crate) fn parse_bytes(raw: &str) -> Result<u64, String> {
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
                "{} is not a size; write bytes such as 4096, 64K or 16MiB",
                quote(raw)
            ));
        }
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!(
            "{} is not a size; write bytes such as 4096, 64K or 16MiB",
            quote(raw)
        )
    })?;
    n.checked_shl(shift)
        .filter(|v| *v >> shift == n && *v > 0)
        .ok_or_else(|| format!("{} is out of range", quote(raw)))
}

/// `500ms`, `30s`, `10m`, `1h`, `0`: a duration with its unit.
pub(crate) fn parse_duration(raw: &str) -> Result<Duration, String> {
    let text = raw.trim();
    let bad = || {
        format!(
            "{} is not a duration; write e.g. 500ms, 30s, 10m or 1h",
            quote(raw)
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
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
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{} is out of range", quote(raw)))
}

/// How log lines on stderr are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// When stderr gets colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    Always,
    Never,
}

/// How stderr is written, resolved once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Output {
    pub color: bool,
    /// A person watches stderr: progress may be a bar.
    pub terminal: bool,
    /// Every stderr line must be one JSON object.
    pub json: bool,
}

impl Output {
    /// `no_color` is the value of NO_COLOR, which any non-empty value sets (no-color.org).
    pub(crate) fn resolve(
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

/// One problem with the settings; each names the flag and the variable to fix.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SettingsError {
    #[error("no SDKAppID: pass --sdkappid or set SUBSYNC_SDKAPPID")]
    MissingSdkAppId,
    #[error(
        "SDKAppID {0} is not a number; copy the numeric SDKAppID from the console into --sdkappid or SUBSYNC_SDKAPPID"
    )]
    BadSdkAppId(String),
    #[error(
        "no secret key: set SUBSYNC_SECRET_KEY_FILE (or --secret-key-file) to a file holding it, or SUBSYNC_SECRET_KEY"
    )]
    MissingKey,
    #[error("the {what} {path}: it {problem}")]
    BadSecretFile {
        what: Secret,
        path: PathBuf,
        problem: String,
    },
    #[error(
        "SUBSYNC_SECRET_KEY does not hold a secret key (one line of letters, digits and punctuation without spaces); fix it or unset it"
    )]
    BadKeyVar,
    #[error(
        "identifier {0} is not a valid UserID (1 to 32 printable ASCII bytes); fix --identifier or SUBSYNC_IDENTIFIER"
    )]
    BadIdentifier(String),
    #[error("no region: pass --region ({names}) or --endpoint URL", names = Region::ALL.map(Region::name).join(", "))]
    NoEndpoint,
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    State(#[from] LocationError),
    #[error("{flag} {value} {problem}; set {flag} ({env}) {range}")]
    Duration {
        flag: &'static str,
        env: &'static str,
        value: String,
        problem: String,
        range: String,
    },
    #[error("--revision {shown} {problem} (SUBSYNC_REVISION)")]
    BadRevision { shown: String, problem: String },
    #[error(transparent)]
    Descriptors(#[from] DescriptorError),
}

/// Every problem with the settings, found together.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) struct SettingsErrors(pub Vec<SettingsError>);

impl std::fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems with the settings:", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<SettingsError> for SettingsErrors {
    fn from(e: SettingsError) -> SettingsErrors {
        SettingsErrors(vec![e])
    }
}

/// Reads an environment variable; the one place that does.
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub(crate) mod durations;
pub(crate) mod secret;
mod state;

pub(crate) use secret::{Secret, read_secret_file};
use secret::{check_key, read_key_file};
pub(crate) use state::{resolve_location, resolve_state};

#[cfg(test)]
mod tests;

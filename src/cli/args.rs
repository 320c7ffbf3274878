//! The flags commands share, with their environment fallbacks and defaults, and their
//! conversion into the library's plain requests (`settings`), which validate them.

use std::path::PathBuf;

use clap::Args;

use crate::manifest::Limits;
use crate::plan::PlanOptions;
use crate::settings::{self, DEFAULT_QPS, RunRequest, ServiceRequest, StateRequest, parse_bytes};

/// The app's credentials (what signs a UserSig).
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Credentials")]
pub(super) struct CredentialArgs {
    /// The app's SDKAppID.
    #[arg(long, env = "SUBSYNC_SDKAPPID", value_name = "ID")]
    pub(crate) sdkappid: Option<String>,
    /// File holding the app's secret key (or set SUBSYNC_SECRET_KEY; no flag takes the key itself).
    #[arg(long, env = "SUBSYNC_SECRET_KEY_FILE", value_name = "FILE")]
    pub(crate) secret_key_file: Option<PathBuf>,
    /// An App administrator's UserID, used as the request identifier.
    #[arg(
        long,
        env = "SUBSYNC_IDENTIFIER",
        default_value = "administrator",
        value_name = "USERID"
    )]
    pub(crate) identifier: String,
}

impl CredentialArgs {
    pub(super) fn request(&self) -> ServiceRequest {
        ServiceRequest {
            sdkappid: self.sdkappid.clone(),
            secret_key_file: self.secret_key_file.clone(),
            identifier: self.identifier.clone(),
            ..ServiceRequest::default()
        }
    }
}

/// Credentials and endpoint of the app.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Service")]
pub(super) struct ServiceArgs {
    /// Region of the app: china, singapore, seoul, frankfurt, silicon-valley, jakarta, tokyo.
    #[arg(long, env = "SUBSYNC_REGION", value_name = "REGION")]
    pub(crate) region: Option<String>,
    /// Base URL overriding --region (plain http only on loopback; no user name or password).
    #[arg(long, env = "SUBSYNC_ENDPOINT", value_name = "URL")]
    pub(crate) endpoint: Option<String>,
    /// Longest wait for the API's answer to start (a whole call takes at most half as long again); an endpoint silent this long before it ever answered counts as unreachable (500ms to 10m).
    #[arg(long, env = "SUBSYNC_API_TIMEOUT", value_parser = settings::parse_duration, value_name = "DURATION")]
    pub(crate) api_timeout: Option<std::time::Duration>,
    #[command(flatten)]
    pub(crate) credentials: CredentialArgs,
}

impl ServiceArgs {
    pub(super) fn request(&self) -> ServiceRequest {
        ServiceRequest {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            timeout: self.api_timeout,
            ..self.credentials.request()
        }
    }
}

/// Where the ledger lives.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Ledger")]
pub(super) struct StateArgs {
    /// The state ledger: a directory (SQLite, ledger.db in it) or a postgres:// URL.
    #[arg(
        long = "state",
        env = "SUBSYNC_STATE",
        default_value = ".subsync",
        value_name = "DIR|URL"
    )]
    pub(crate) at: String,
    /// File holding the PostgreSQL password, when the --state URL carries none (PGPASSWORD also works).
    #[arg(long, env = "SUBSYNC_STATE_PASSWORD_FILE", value_name = "FILE")]
    pub(crate) state_password_file: Option<PathBuf>,
    /// Work with the sandbox: its own ledger in DIR/sandbox and, for apply, an in-process emulator.
    #[arg(long)]
    pub(crate) sandbox: bool,
}

impl StateArgs {
    pub(super) fn request(&self, sandbox_config: Option<PathBuf>) -> StateRequest {
        StateRequest {
            at: self.at.clone(),
            password_file: self.state_password_file.clone(),
            sandbox: self.sandbox,
            sandbox_config,
        }
    }
}

/// Bounds on what reading manifests and subscriber files may cost (see `manifest::Limits`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Input limits")]
pub(super) struct LimitArgs {
    /// Largest manifest file (bytes; K, M, G suffixes are binary).
    #[arg(long, env = "SUBSYNC_MAX_MANIFEST_BYTES", value_name = "BYTES", value_parser = parse_bytes,
          default_value_t = Limits::default().max_manifest_bytes)]
    pub(crate) max_manifest_bytes: u64,
    /// Largest subscriber file once gunzipped (bytes; K, M, G suffixes are binary).
    #[arg(long, env = "SUBSYNC_MAX_LIST_BYTES", value_name = "BYTES", value_parser = parse_bytes,
          default_value_t = Limits::default().max_list_bytes)]
    pub(crate) max_list_bytes: u64,
    /// Longest line in a subscriber file, in bytes.
    #[arg(long, env = "SUBSYNC_MAX_LINE_BYTES", value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(64..),
          default_value_t = Limits::default().max_line_bytes as u32)]
    pub(crate) max_line_bytes: u32,
    /// Deepest nesting of lists and mappings in a manifest (a manifest needs 3).
    #[arg(long, env = "SUBSYNC_MAX_DEPTH", value_name = "LEVELS",
          value_parser = clap::value_parser!(u32).range(4..=1000),
          default_value_t = Limits::default().max_depth as u32)]
    pub(crate) max_depth: u32,
    /// Most distinct subscribers one account may list (raise it with the account's MaxSubscriberNum).
    #[arg(long, env = "SUBSYNC_MAX_SUBSCRIBERS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..),
          default_value_t = Limits::default().max_subscribers as u32)]
    pub(crate) max_subscribers: u32,
}

impl LimitArgs {
    pub(super) fn limits(&self) -> Limits {
        Limits {
            max_manifest_bytes: self.max_manifest_bytes,
            max_list_bytes: self.max_list_bytes,
            max_line_bytes: self.max_line_bytes as usize,
            max_depth: self.max_depth as usize,
            max_subscribers: self.max_subscribers as usize,
        }
    }
}

/// The prune guards.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Prune guards")]
pub(super) struct PruneArgs {
    /// Most subscribers prune may remove from one account in one run (default: 10% of its confirmed subscribers, at least 100; never more than half of the account).
    #[arg(long, env = "SUBSYNC_MAX_PRUNE", value_name = "N")]
    pub(crate) max_prune: Option<u64>,
    /// Let prune remove more than --max-prune, or more than half of an account, in one run.
    #[arg(long, env = "SUBSYNC_ALLOW_MASS_PRUNE")]
    pub(crate) allow_mass_prune: bool,
    /// Create a missing official account whose manifest declares spec.create (its owner, with its declared properties); without it a missing account is only reported.
    #[arg(long, env = "SUBSYNC_ALLOW_CREATE", help_heading = "Guards")]
    pub(crate) allow_create: bool,
}

impl PruneArgs {
    pub(super) fn options(&self) -> PlanOptions {
        PlanOptions {
            max_prune: self.max_prune,
            allow_mass_prune: self.allow_mass_prune,
            allow_create: self.allow_create,
        }
    }
}

/// Where the service and the ledger are, and how fast to talk to the service.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Service")]
pub(super) struct RemoteArgs {
    /// Calls per second for each API command (the service allows 200).
    #[arg(long, env = "SUBSYNC_QPS", default_value_t = DEFAULT_QPS, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) qps: u32,
    /// Emulator configuration for --sandbox (default: sandbox.yaml beside the manifest directory).
    #[arg(long, value_name = "FILE", requires = "sandbox")]
    pub(crate) sandbox_config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    #[command(flatten)]
    pub(crate) api: ServiceArgs,
}

impl RemoteArgs {
    pub(super) fn state_request(&self) -> StateRequest {
        self.state.request(self.sandbox_config.clone())
    }

    /// A run's request with these pace, state and credentials.
    pub(super) fn run_request(&self, limits: Limits, prune: PlanOptions) -> RunRequest {
        RunRequest {
            service: self.api.request(),
            state: self.state_request(),
            qps: self.qps,
            concurrency: None,
            limits,
            prune,
            revision: None,
            open_files: crate::descriptors::soft_limit(),
            notify_sinks: 0,
        }
    }
}

/// What `apply` and `watch` share: pace, ledger, credentials, bounds, guards.
#[derive(Debug, Clone, Args)]
pub(super) struct ReconcileArgs {
    /// Most calls in flight at once (default: one second's worth of --qps, enough for round trips up to 1 s; lowered, with a warning, to what the open-file limit leaves).
    #[arg(long, env = "SUBSYNC_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) concurrency: Option<u16>,
    /// Recorded with each run (one line, at most 256 bytes); defaults to the git commit of the manifest directory.
    #[arg(long, env = "SUBSYNC_REVISION", value_name = "TEXT")]
    pub(crate) revision: Option<String>,
    /// Send events and commit statuses to the sinks this YAML file lists (see docs/notifications.md).
    #[arg(long, env = "SUBSYNC_NOTIFY_CONFIG", value_name = "FILE")]
    pub(crate) notify_config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) prune: PruneArgs,
}

impl ReconcileArgs {
    pub(super) fn run_request(&self) -> RunRequest {
        RunRequest {
            concurrency: self.concurrency.map(usize::from),
            revision: self.revision.clone(),
            ..self
                .remote
                .run_request(self.limits.limits(), self.prune.options())
        }
    }
}

/// How log lines are written, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormatArg {
    /// For people.
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

impl From<LogFormatArg> for settings::LogFormat {
    fn from(arg: LogFormatArg) -> settings::LogFormat {
        match arg {
            LogFormatArg::Text => settings::LogFormat::Text,
            LogFormatArg::Json => settings::LogFormat::Json,
        }
    }
}

/// When stderr gets colour, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorArg {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always, even into a file or a pipe.
    Always,
    /// Never.
    Never,
}

impl From<ColorArg> for settings::ColorChoice {
    fn from(arg: ColorArg) -> settings::ColorChoice {
        match arg {
            ColorArg::Auto => settings::ColorChoice::Auto,
            ColorArg::Always => settings::ColorChoice::Always,
            ColorArg::Never => settings::ColorChoice::Never,
        }
    }
}

//! The command line: clap definitions, logging set-up, dispatch, and the one mapping from
//! outcomes and errors to exit codes. Command bodies are in [`commands`]; they resolve the
//! settings, call the library and render what it returns.

mod args;
mod commands;
mod progress;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::settings::{Output, parse_duration};
use args::{
    ColorArg, CredentialArgs, LimitArgs, LogFormatArg, PruneArgs, ReconcileArgs, RemoteArgs,
    StateArgs,
};

/// The version `--version` prints: the package's, and the git commit it was built from.
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("SUBSYNC_GIT_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "subsync",
    version = VERSION,
    about = "Keep Tencent Cloud Chat official-account subscribers equal to YAML manifests in git"
)]
pub(crate) struct Cli {
    /// Log filter for stderr, in tracing's EnvFilter syntax (e.g. `debug`, `subsync=trace`).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "RUST_LOG",
        default_value = "subsync=info,warn",
        value_name = "FILTER"
    )]
    log: String,
    /// Log lines as text for people or one JSON object a line for log collectors.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "SUBSYNC_LOG_FORMAT",
        value_enum,
        default_value = "text",
        value_name = "FORMAT"
    )]
    log_format: LogFormatArg,
    /// Colour on stderr: auto (a terminal, unless NO_COLOR is set), always or never.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "SUBSYNC_COLOR",
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    color: ColorArg,
    /// NO_COLOR (no-color.org): any non-empty value turns colour off.
    #[arg(
        long = "no-color",
        global = true,
        env = "NO_COLOR",
        hide = true,
        num_args = 0..=1,
        default_missing_value = "1"
    )]
    no_color: Option<String>,
    #[command(subcommand)]
    command: CliCommand,
}

#[derive(Debug, Subcommand)]
enum CliCommand {
    /// Check manifests without touching anything; exit 0 when valid, 1 otherwise.
    Validate(ValidateArgs),
    /// Show what apply would change (a dry run; reads the ledger, never writes it).
    Plan(PlanArgs),
    /// Add and remove subscribers through the API as `plan` shows, and record every outcome.
    Apply(ApplyArgs),
    /// Keep reconciling: at start, on every change to the manifests, and every --resync.
    Watch(WatchArgs),
    /// Record the live subscribers of the manifests' accounts in the ledger, changing nothing remotely.
    Import(ImportArgs),
    /// Show what the ledger holds and the latest runs.
    Status(StatusArgs),
    /// Move or upgrade the ledger.
    Ledger {
        #[command(subcommand)]
        action: LedgerAction,
    },
    /// Print a fresh UserSig for the configured credentials, or decode or verify one.
    Usersig(UsersigArgs),
    /// Run a local copy of the official-account API.
    Emulator(EmulatorArgs),
    /// Print a JSON Schema: manifest, plan or summary.
    Schema {
        /// Which document's schema.
        #[arg(value_parser = ["manifest", "plan", "summary"])]
        name: String,
    },
    /// Print a shell completion script (where it goes: `subsync completions --help`).
    #[command(after_help = COMPLETIONS_INSTALL)]
    Completions {
        /// The shell to complete in.
        shell: Shell,
    },
    /// Print the man page (roff) of subsync or of one command, or write every page to a directory.
    #[command(after_help = MAN_INSTALL)]
    Man(ManArgs),
    /// Maintainers: write the reference pages (commands, metrics, events, codes, schemas)
    /// generated from the code, as committed under docs/reference.
    #[command(hide = true)]
    Reference {
        /// The directory to write the pages into (created if missing).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

/// Where each shell's completion script goes, per user (no root needed): said here once,
/// shown by `subsync completions --help` and quoted by the README.
pub(crate) const COMPLETIONS_INSTALL: &str = "\
Install, per user:
  bash        subsync completions bash > ~/.local/share/bash-completion/completions/subsync
  zsh         subsync completions zsh > ~/.zfunc/_subsync
              (with fpath+=(~/.zfunc) before compinit in ~/.zshrc)
  fish        subsync completions fish > ~/.config/fish/completions/subsync.fish
  powershell  subsync completions powershell >> $PROFILE";

/// Where the man pages go, per user: said here once, shown by `subsync man --help` and quoted
/// by the README.
pub(crate) const MAN_INSTALL: &str = "\
Install, per user:
  subsync man --out-dir ~/.local/share/man/man1   (then: man subsync-plan)";

#[derive(Debug, Args)]
struct ManArgs {
    /// The command whose page to print, e.g. `plan` or `ledger copy` (default: subsync's own).
    #[arg(value_name = "COMMAND", conflicts_with = "out_dir")]
    command: Vec<String>,
    /// Write every page (subsync.1, subsync-plan.1, subsync-ledger-copy.1, ...) into DIR,
    /// created if missing, instead of printing one.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// The shells `completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Manifest files or directories (searched recursively for *.yaml and *.yml).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlanFormat {
    /// For people at a terminal.
    Text,
    /// For pipelines (schema/plan.schema.json).
    Json,
    /// For a pull-request comment (kept under GitHub's size limit).
    Markdown,
    /// The removals and adds apply would make, as -/+ lines per account.
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// For people at a terminal.
    Text,
    /// For pipelines.
    Json,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// Manifest files or directories.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// How to print the plan.
    #[arg(long, value_enum, default_value = "text")]
    format: PlanFormat,
    /// Also save the plan as JSON, for `apply --plan FILE`; `-` prints that JSON on stdout instead of the --format rendering. FILE must be a regular file or a new path: a device, a FIFO or a directory is refused.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 2 when apply would send a change or end short of the manifests (held-back removals, a shortfall not accepted), 0 when it would do nothing, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Read the live subscriber lists first and record them (needs credentials and the writer lock).
    #[arg(long)]
    refresh: bool,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    prune: PruneArgs,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// Manifest files or directories: their accounts are imported.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// How to print what was imported.
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// Manifest files or directories (with --plan: defaults to the paths the plan was made from).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Apply a plan saved by `plan --out`, refusing it unless it is what the manifests and the ledger call for now.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// How to print the summary (JSON: schema/summary.schema.json).
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    /// Read the live subscriber lists first, so that the plan sees drift in both directions.
    #[arg(long, conflicts_with = "plan")]
    refresh: bool,
    /// Not an apply flag: `subsync plan` with the same arguments shows what apply would do.
    #[arg(long, hide = true)]
    dry_run: bool,
    #[command(flatten)]
    run: ReconcileArgs,
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// Manifest files or directories to watch (they may appear later, or be symlinks that are swapped).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "SUBSYNC_LISTEN",
        default_value = "127.0.0.1:9464",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Quiet time after a change before the manifests are read again (100ms to 10m).
    #[arg(long, env = "SUBSYNC_DEBOUNCE", default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    debounce: Duration,
    /// Reconcile this often even without changes (1s to 168h; 0: only on changes).
    #[arg(long, env = "SUBSYNC_RESYNC", default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    resync: Duration,
    /// Read the live subscriber lists this often, to see drift (1s to 720h; 0: never).
    #[arg(long, env = "SUBSYNC_REFRESH_EVERY", default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    refresh_every: Duration,
    /// When another replica holds the ledger, stand by and take over when it goes, instead of exiting.
    #[arg(long, env = "SUBSYNC_STANDBY")]
    standby: bool,
    /// How often a replica that does not lead tries to take the ledger's lock (SQLite; on
    /// PostgreSQL it waits on the lock, and this paces new attempts after a failed wait).
    /// 100ms to 1h.
    #[arg(long, env = "SUBSYNC_TAKEOVER_EVERY", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    takeover_every: Duration,
    #[command(flatten)]
    run: ReconcileArgs,
}

#[derive(Debug, Subcommand)]
enum LedgerAction {
    /// Copy a whole ledger into an empty one, e.g. from a directory to PostgreSQL.
    Copy(CopyArgs),
    /// Upgrade the ledger's schema to this subsync's (apply, import and watch also do).
    Migrate {
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Args)]
struct CopyArgs {
    /// The ledger to copy: a directory or a postgres:// URL.
    #[arg(long, value_name = "DIR|URL")]
    from: String,
    /// The empty ledger to fill: a directory or a postgres:// URL.
    #[arg(long, value_name = "DIR|URL")]
    to: String,
    /// File holding the password of --from, when its URL carries none (PGPASSWORD also works).
    #[arg(long, value_name = "FILE")]
    from_password_file: Option<PathBuf>,
    /// File holding the password of --to, when its URL carries none (PGPASSWORD also works).
    #[arg(long, value_name = "FILE")]
    to_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// How to print the status.
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    /// How many recent runs to show.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct UsersigArgs {
    /// Validity of the new UserSig, in seconds.
    #[arg(long, default_value_t = 86_400, value_name = "SECONDS")]
    expire: u32,
    #[command(flatten)]
    credentials: CredentialArgs,
    #[command(subcommand)]
    action: Option<UsersigAction>,
}

#[derive(Debug, Subcommand)]
enum UsersigAction {
    /// Print the JSON inside a UserSig (needs no key).
    Decode {
        /// The UserSig to decode.
        usersig: String,
    },
    /// Exit 0 when the UserSig is valid for the configured app, identifier and key; 1 with the reason otherwise.
    Verify {
        /// The UserSig to check.
        usersig: String,
        #[command(flatten)]
        credentials: CredentialArgs,
    },
}

#[derive(Debug, Args)]
struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port (printed on the first stdout line).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Emulator configuration (YAML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Keep the accounts and subscribers in FILE (and FILE.journal) across restarts.
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,
}

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done, nothing left to do.
    Success,
    /// `plan --detailed-exitcode` found changes.
    Changes,
    /// Finished, but some subscribers could not be added.
    Incomplete,
    /// Stopped by Ctrl-C or SIGTERM.
    Interrupted,
}

/// The one mapping from results to exit codes (documented in docs/plan-and-apply.md).
pub(crate) fn exit_code(result: &anyhow::Result<Outcome>) -> u8 {
    match result {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::Changes | Outcome::Incomplete) => 2,
        Ok(Outcome::Interrupted) => 130,
        Err(_) => 1,
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1, not clap's 2: 2 means "changes" or "incomplete" here.
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let output = Output::resolve(
        cli.color.into(),
        cli.no_color.as_deref(),
        cli.log_format.into(),
        terminal,
    );
    if let Err(e) = init_logging(&cli.log, output) {
        eprintln!("error: {e:#}");
        return ExitCode::from(1);
    }
    // Before anything opens a file: the budget of descriptors follows what is in force.
    let open_files = crate::descriptors::raise_soft_limit();
    tracing::debug!(open_files, "open-file limit");
    let result = run(cli, output);
    if let Err(e) = &result {
        report_error(e, output);
    }
    ExitCode::from(exit_code(&result))
}

/// The final error: a line for people, or JSON events (one per manifest problem) for
/// collectors, so that every stderr line stays one JSON object. Each cause is said once: the
/// library's errors carry their cause in their own text, never again as a source.
fn report_error(error: &anyhow::Error, output: Output) {
    if !output.json {
        eprintln!("error: {error:#}");
        return;
    }
    let problems = match (
        error.downcast_ref::<crate::manifest::ManifestError>(),
        error.downcast_ref::<crate::notifications::ConfigError>(),
    ) {
        (Some(e), _) => e.problems.as_slice(),
        (None, Some(e)) => e.problems(),
        (None, None) => &[],
    };
    for p in problems {
        p.log(tracing::Level::ERROR, true);
    }
    let text = format!("{error:#}");
    let first = text.lines().next().unwrap_or_default();
    tracing::error!("{first}");
}

fn init_logging(filter: &str, output: Output) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).with_context(|| {
        format!("invalid log filter {filter:?}; use e.g. `info` or `subsync=debug`")
    })?;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(output.color)
        .with_target(false);
    let installed = if output.json {
        builder.event_format(crate::logs::JsonLines).try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// For commands that only read the ledger (plan, status): one thread drives the database
/// connection and answers the planner's reads, so that neither waits on a wake-up from
/// another thread; blocking work still has the blocking pool.
fn reading_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli, output: Output) -> anyhow::Result<Outcome> {
    match cli.command {
        CliCommand::Validate(args) => commands::validate(args, output),
        CliCommand::Plan(args) if args.refresh => {
            runtime()?.block_on(commands::plan_refreshed(args, output))
        }
        CliCommand::Plan(args) => commands::plan(args, output),
        CliCommand::Import(args) => runtime()?.block_on(commands::import(args, output)),
        CliCommand::Apply(args) => runtime()?.block_on(commands::apply(args, output)),
        CliCommand::Watch(args) => {
            let runtime = runtime()?;
            let result = runtime.block_on(commands::watch(args, output));
            // A second signal asked to go now: do not wait for blocking work still running.
            runtime.shutdown_timeout(Duration::from_millis(200));
            result
        }
        CliCommand::Status(args) => commands::status(args),
        CliCommand::Ledger { action } => runtime()?.block_on(commands::ledger(action)),
        CliCommand::Usersig(args) => commands::usersig(args),
        CliCommand::Emulator(args) => runtime()?.block_on(commands::emulator(args)),
        CliCommand::Schema { name } => commands::schema(&name),
        CliCommand::Completions { shell } => commands::completions(shell),
        CliCommand::Man(args) => commands::man(args),
        CliCommand::Reference { out_dir } => commands::reference(&out_dir),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_argument_of_every_command_is_described() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let mut command = Cli::command();
        command.build();
        walk(&command, "subsync", &mut missing);
        assert!(missing.is_empty(), "undescribed: {missing:?}");
    }

    #[test]
    fn usersig_decode_takes_no_credentials() {
        let mut command = Cli::command();
        command.build();
        let usersig = command.find_subcommand("usersig").unwrap();
        let decode = usersig.find_subcommand("decode").unwrap();
        let own: Vec<&str> = decode
            .get_arguments()
            .filter(|a| !a.is_global_set())
            .map(|a| a.get_id().as_str())
            .collect();
        assert_eq!(own, ["usersig", "help"]);
    }
}

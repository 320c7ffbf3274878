//! The command line: clap definitions, logging set-up, dispatch, and the one mapping from
//! outcomes and errors to exit codes.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::emulator::{Emulator, EmulatorConfig, EmulatorOptions};
use crate::ledger::Reader;
use crate::manifest::{self, ManifestSet};
use crate::sandbox::Sandbox;
use crate::settings::{ApiArgs, ColorChoice, LimitArgs, Output, StateArgs, env_var};
use crate::tencent::{Client, usersig};
use crate::{apply, plan, report, schema};

#[derive(Debug, Parser)]
#[command(
    name = "subsync",
    version,
    about = "Keep Tencent Cloud Chat official-account subscribers equal to YAML manifests in git"
)]
pub struct Cli {
    /// Log filter for stderr, in tracing's EnvFilter syntax (e.g. `debug`, `subsync=trace`).
    #[arg(
        long,
        global = true,
        env = "RUST_LOG",
        default_value = "subsync=info,warn",
        value_name = "FILTER"
    )]
    log: String,
    /// Colour on stderr: auto (a terminal, unless NO_COLOR is set), always or never.
    #[arg(
        long,
        global = true,
        env = "SUBSYNC_COLOR",
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    color: ColorChoice,
    /// NO_COLOR (no-color.org): any non-empty value turns colour off.
    #[arg(long = "no-color", global = true, env = "NO_COLOR", hide = true, num_args = 0..=1, default_missing_value = "1")]
    no_color: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests without touching anything; exit 0 when valid, 1 otherwise.
    Validate(ValidateArgs),
    /// Show what apply would change (a dry run; reads the ledger, never writes it).
    Plan(PlanArgs),
    /// Add the planned subscribers through the API and record every outcome.
    Apply(ApplyArgs),
    /// Show what the ledger holds and the latest runs.
    Status(StatusArgs),
    /// Print a fresh UserSig for the configured credentials, or decode or verify one.
    Usersig(UsersigArgs),
    /// Run a local copy of the official-account API.
    Emulator(EmulatorArgs),
    /// Print a JSON Schema: manifest, plan or summary.
    Schema {
        #[arg(value_parser = ["manifest", "plan", "summary"])]
        name: String,
    },
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
    Text,
    Json,
    Markdown,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// Manifest files or directories.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: PlanFormat,
    /// Also save the plan as JSON, for `apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// Manifest files or directories (with --plan: defaults to the paths the plan was made from).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Apply a plan saved by `plan --out`, refusing it if the ledger or manifests changed since.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    /// add_subscriber calls per second (the service allows 200).
    #[arg(long, env = "SUBSYNC_QPS", default_value_t = apply::DEFAULT_QPS, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    qps: u32,
    /// Most calls in flight at once (default: one second's worth of --qps, enough for round trips up to 1 s).
    #[arg(long, env = "SUBSYNC_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: Option<u16>,
    /// Recorded with the run; defaults to the git HEAD of the manifest directory.
    #[arg(long, env = "SUBSYNC_REVISION")]
    revision: Option<String>,
    /// Emulator configuration for --sandbox (default: sandbox.yaml beside the manifest directory).
    #[arg(long, value_name = "FILE", requires = "sandbox")]
    sandbox_config: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    /// How many recent runs to show.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(Debug, Args)]
struct UsersigArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Validity of the new UserSig, in seconds.
    #[arg(long, default_value_t = 86_400, value_name = "SECONDS")]
    expire: u32,
    #[command(subcommand)]
    action: Option<UsersigAction>,
}

#[derive(Debug, Subcommand)]
enum UsersigAction {
    /// Print the JSON inside a UserSig (needs no key).
    Decode { usersig: String },
    /// Exit 0 when the UserSig is valid for the configured app, identifier and key; 1 with the reason otherwise.
    Verify { usersig: String },
}

#[derive(Debug, Args)]
struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port (printed on the first stdout line).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Emulator configuration (YAML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Keep the accounts and subscribers in FILE across restarts.
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,
}

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done, nothing left to do.
    Success,
    /// `plan --detailed-exitcode` found changes.
    Changes,
    /// Finished, but some subscribers could not be added.
    Incomplete,
    /// Stopped by Ctrl-C or SIGTERM.
    Interrupted,
}

/// The one mapping from results to exit codes (documented in the README).
pub fn exit_code(result: &anyhow::Result<Outcome>) -> u8 {
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
    let output = Output::resolve(cli.color, cli.no_color.as_deref(), terminal);
    if let Err(e) = init_logging(&cli.log, output) {
        eprintln!("error: {}", error_text(&e));
        return ExitCode::from(1);
    }
    let result = run(cli, output);
    if let Err(e) = &result {
        eprintln!("error: {}", error_text(e));
    }
    ExitCode::from(exit_code(&result))
}

/// The error and its causes on one line, each said once: many messages already quote their
/// cause, and printing the chain again would repeat it.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn init_logging(filter: &str, output: Output) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).with_context(|| {
        format!("invalid log filter {filter:?}; use e.g. `info` or `subsync=debug`")
    })?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(output.color)
        .with_target(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli, output: Output) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Validate(args) => validate_command(args),
        Command::Plan(args) => plan_command(args),
        Command::Apply(args) => runtime()?.block_on(apply_command(args, output)),
        Command::Status(args) => status_command(args),
        Command::Usersig(args) => usersig_command(args),
        Command::Emulator(args) => runtime()?.block_on(emulator_command(args)),
        Command::Schema { name } => {
            let schema =
                schema::by_name(&name).with_context(|| format!("no schema called {name}"))?;
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(Outcome::Success)
        }
    }
}

fn usersig_command(args: UsersigArgs) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    match args.action {
        Some(UsersigAction::Decode { usersig }) => {
            let decoded = usersig::decode(&usersig)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&decoded.json)?)?;
        }
        Some(UsersigAction::Verify { usersig }) => {
            let creds = args.api.credentials(env_var)?;
            let now = crate::clock::unix_now() as i64;
            let decoded =
                usersig::verify(&usersig, &creds.key, creds.sdkappid, &creds.identifier, now)?;
            writeln!(
                out,
                "valid: SDKAppID {}, identifier {:?}, expires {}",
                decoded.sdkappid,
                decoded.identifier,
                crate::clock::rfc3339(decoded.expires_at())
            )?;
        }
        None => {
            let creds = args.api.credentials(env_var)?;
            let now = crate::clock::unix_now() as i64;
            let sig = usersig::generate(
                &creds.key,
                creds.sdkappid,
                &creds.identifier,
                now,
                i64::from(args.expire),
            );
            writeln!(out, "{}", sig.as_str())?;
        }
    }
    Ok(Outcome::Success)
}

async fn emulator_command(args: EmulatorArgs) -> anyhow::Result<Outcome> {
    let config = EmulatorConfig::load(&args.config)?;
    let credentials = config.credentials(&args.config)?;
    let now = crate::clock::unix_now() as i64;
    let (state, journal) = match &args.state_file {
        Some(path) => {
            let file = crate::emulator::StateFile::new(path);
            let cannot = || format!("cannot use the emulator state file {}", path.display());
            let loaded = file.load().with_context(cannot)?;
            let changed = loaded.is_none();
            let state = loaded.unwrap_or_else(|| config.initial_state(now));
            let journal = file.resume(&state, changed).with_context(cannot)?;
            (state, Some(journal))
        }
        None => (config.initial_state(now), None),
    };
    let options = EmulatorOptions {
        credentials,
        qps: config.qps,
        rules: config.rules(),
        latency: config.latency_ms,
        faults: config.faults,
        clock_skew_secs: config.clock_skew_seconds,
        state,
        journal,
    };
    let emulator = Emulator::start(options, args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", emulator.url())?;
        out.flush()?;
    }
    if !args.listen.ip().is_loopback() {
        tracing::warn!("the emulator listens beyond loopback; it is a test tool, not a service");
    }
    let stop = crate::shutdown::on_signal();
    stop.cancelled().await;
    emulator.shutdown(Duration::from_secs(5)).await;
    Ok(Outcome::Success)
}

/// Loads manifests, printing warnings to stderr.
fn load_manifests(paths: &[PathBuf], limits: &LimitArgs) -> anyhow::Result<ManifestSet> {
    let set = manifest::load(paths, &limits.resolve())?;
    for w in &set.warnings {
        eprintln!("{w}");
    }
    Ok(set)
}

fn path_strings(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

fn validate_command(args: ValidateArgs) -> anyhow::Result<Outcome> {
    let set = load_manifests(&args.paths, &args.limits)?;
    println!(
        "valid: {} manifest files, {} accounts, {} desired subscribers",
        set.files.len(),
        set.sets.len(),
        set.desired_total()
    );
    Ok(Outcome::Success)
}

fn plan_command(args: PlanArgs) -> anyhow::Result<Outcome> {
    let manifests = load_manifests(&args.paths, &args.limits)?;
    let reader = Reader::open(&args.state.resolve())?;
    let snapshot = reader.snapshot()?;
    let plan = plan::compute(&manifests, &snapshot, path_strings(&args.paths));
    if let Some(out) = &args.out {
        crate::files::write_atomically(out, serde_json::to_string_pretty(&plan)?.as_bytes())
            .with_context(|| format!("cannot write the plan to {}", out.display()))?;
    }
    let text = match args.format {
        PlanFormat::Text => report::plan_text(&plan),
        PlanFormat::Json => serde_json::to_string_pretty(&plan)? + "\n",
        PlanFormat::Markdown => report::plan_markdown(&plan),
        PlanFormat::Diff => report::plan_diff(&manifests, &snapshot),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(if args.detailed_exitcode && plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

async fn apply_command(args: ApplyArgs, output: Output) -> anyhow::Result<Outcome> {
    let saved = match &args.plan {
        Some(file) => Some(plan::load_saved(file)?),
        None => None,
    };
    let paths: Vec<PathBuf> = match (&saved, args.paths.is_empty()) {
        (Some(plan), true) => plan.manifest_paths.iter().map(PathBuf::from).collect(),
        _ => args.paths.clone(),
    };
    if paths.is_empty() {
        anyhow::bail!("no manifests: give PATH arguments or --plan FILE");
    }
    let state_root = args.state.dir.clone();
    // Credentials are checked before anything else happens; the sandbox makes its own.
    let client_config = if args.state.sandbox {
        None
    } else {
        Some(args.api.client_config(env_var)?)
    };
    let manifests = load_manifests(&paths, &args.limits)?;
    let revision = args
        .revision
        .clone()
        .or_else(|| manifest::git_revision(&paths));
    let options = apply::Options {
        qps: args.qps,
        concurrency: args
            .concurrency
            .map_or_else(|| apply::default_concurrency(args.qps), usize::from),
        revision,
        manifest_paths: path_strings(&paths),
        ..apply::Options::default()
    };
    let (sandbox, client_config, state_dir) = match client_config {
        Some(config) => (None, config, args.state.resolve()),
        None => {
            let config = args
                .sandbox_config
                .clone()
                .or_else(|| crate::sandbox::default_config(&paths));
            let sandbox = Sandbox::start(&state_root, config, &manifests).await?;
            let (client, dir) = (sandbox.client.clone(), sandbox.state_dir.clone());
            (Some(sandbox), client, dir)
        }
    };
    let client = std::sync::Arc::new(Client::new(client_config)?);
    let cancel = crate::shutdown::on_signal();
    let outcome = apply::apply(
        &manifests, saved, &state_dir, &options, client, output, &cancel,
    )
    .await;
    if let Some(sandbox) = sandbox {
        sandbox.stop().await;
    }
    let outcome = outcome?;
    let text = match args.format {
        OutputFormat::Text => report::summary_text(&outcome.summary),
        OutputFormat::Json => serde_json::to_string_pretty(&outcome.summary)? + "\n",
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    if let Some(fatal) = outcome.fatal {
        if fatal.is_answer() {
            anyhow::bail!("stopped by the service's answer: {fatal}");
        }
        anyhow::bail!("stopped: {fatal}");
    }
    Ok(
        match (outcome.summary.interrupted, outcome.summary.result) {
            (true, _) => Outcome::Interrupted,
            (false, apply::RunResult::Converged) => Outcome::Success,
            (false, apply::RunResult::Partial) => Outcome::Incomplete,
            (false, apply::RunResult::Failed) => anyhow::bail!(
                "apply failed: {}",
                outcome.summary.error.unwrap_or_default()
            ),
        },
    )
}

fn status_command(args: StatusArgs) -> anyhow::Result<Outcome> {
    let dir = args.state.resolve();
    let reader = Reader::open(&dir)?;
    let (snapshot, accounts) = reader.summaries()?;
    let runs = reader.runs(args.runs)?;
    let status = report::StatusReport::new(
        crate::ledger::db_path(&dir).display().to_string(),
        snapshot.lineage,
        snapshot.serial,
        accounts,
        runs,
    );
    let text = match args.format {
        OutputFormat::Text => report::status_text(&status),
        OutputFormat::Json => serde_json::to_string_pretty(&status)? + "\n",
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(Outcome::Success)
}

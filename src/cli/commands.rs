//! The body of each command: resolve the settings, run the library (through the Engine for
//! anything that talks to the service or writes the ledger), render the result. Blocking work
//! (files, SQLite, gzip) runs on the blocking pool, never on a runtime worker.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::progress::Progress;
use super::{
    ApplyArgs, EmulatorArgs, ImportArgs, LedgerAction, ManArgs, Outcome, OutputFormat, PlanArgs,
    PlanFormat, StatusArgs, UsersigAction, UsersigArgs, ValidateArgs, WatchArgs,
};
use crate::apply::{Ending, Job, Refresh, Trigger};
use crate::emulator::{Emulator, EmulatorConfig, StateFile};
use crate::engine::{self, Engine, Hooks};
use crate::manifest::{self, Limits, ManifestSet};
use crate::notifications::{self, Notifier, NotifyConfig};
use crate::plan::PlanHeader;
use crate::settings::{self, Config, Output, Purpose, RunRequest, env_var};
use crate::task::blocking;
use crate::tencent::usersig;
use crate::words::{count, noun};
use crate::{report, schema};

/// Prints the warnings of a loaded set: lines for people, events for collectors.
fn print_warnings(set: &ManifestSet, output: Output) {
    for w in &set.warnings {
        if output.json {
            w.log(tracing::Level::WARN, true);
        } else {
            eprintln!("{w}");
        }
    }
}

/// Loads manifests on the blocking pool and prints their warnings.
async fn load_manifests(
    paths: Vec<PathBuf>,
    limits: Limits,
    output: Output,
) -> anyhow::Result<ManifestSet> {
    let set = blocking(move || manifest::load(&paths, &limits)).await??;
    print_warnings(&set, output);
    Ok(set)
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn shown_paths(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

/// Resolves a run's settings (reading secret files) before anything else is read or sent.
async fn resolve(
    request: RunRequest,
    purpose: Purpose,
    paths: &[PathBuf],
) -> anyhow::Result<Config> {
    let paths = paths.to_vec();
    Ok(blocking(move || settings::resolve(request, purpose, &paths, &env_var)).await??)
}

/// Opens the engine and takes the writer lock for `command`.
async fn lead(config: Config, hooks: Hooks, command: &str) -> anyhow::Result<Engine> {
    let mut engine = Engine::open(config, hooks).await?;
    if let Err(e) = engine.lead(command).await {
        engine.close().await;
        return Err(e.into());
    }
    Ok(engine)
}

pub(super) fn validate(args: ValidateArgs, output: Output) -> anyhow::Result<Outcome> {
    let set = manifest::load(&args.paths, &args.limits.limits())?;
    print_warnings(&set, output);
    write_stdout(&format!(
        "valid: {}, {}, {}\n",
        count(set.files.len() as u64, "manifest file", "manifest files"),
        count(set.sets.len() as u64, "account", "accounts"),
        count(
            set.desired_total() as u64,
            "desired subscriber",
            "desired subscribers"
        )
    ))?;
    Ok(Outcome::Success)
}

/// `plan`: the manifests are read and the ledger's location resolved before any runtime
/// starts (on this thread, as nothing else runs yet), then the ledger is read.
pub(super) fn plan(args: PlanArgs, output: Output) -> anyhow::Result<Outcome> {
    let manifests = manifest::load(&args.paths, &args.limits.limits())?;
    print_warnings(&manifests, output);
    let location = settings::resolve_state(&args.remote.state_request(), &env_var)?;
    super::reading_runtime()?.block_on(print_plan(args, Arc::new(manifests), location, output))
}

/// `plan --refresh`: read and record the live lists first, then plan from what was recorded.
pub(super) async fn plan_refreshed(args: PlanArgs, output: Output) -> anyhow::Result<Outcome> {
    let request = args
        .remote
        .run_request(args.limits.limits(), args.prune.options());
    let config = resolve(request, Purpose::Once, &args.paths).await?;
    let manifests = Arc::new(load_manifests(args.paths.clone(), config.limits, output).await?);
    let location = config.ledger.clone();
    let engine = lead(config, Hooks::default(), "plan").await?;
    let shutdown = crate::shutdown::on_signal();
    let refreshed = engine
        .refresh(manifests.clone(), Refresh::Check, &shutdown.graceful)
        .await;
    engine.close().await;
    let (refreshed, stop) = refreshed?;
    if let Some(stop) = stop {
        anyhow::bail!("the refresh stopped: {}", crate::errors::chain(&stop));
    }
    for f in &refreshed.failed {
        tracing::warn!(account = %f.official_account, "{}", f.error);
    }
    print_plan(args, manifests, location, output).await
}

/// Plans account by account against the ledger at `location` and writes each account in the
/// chosen format (and, with `--out`, as JSON to the file) as soon as it is planned: on the
/// blocking pool, over one consistent read of the ledger.
async fn print_plan(
    args: PlanArgs,
    manifests: Arc<ManifestSet>,
    location: crate::ledger::Location,
    output: Output,
) -> anyhow::Result<Outcome> {
    let mut reader = crate::ledger::Reader::open(&location).await?;
    let planned = reader
        .view(move |source| Ok(write_plan(&args, &manifests, source, output)))
        .await;
    reader.close().await;
    planned?
}

/// Writes the plan of `manifests` against `source` (see [`print_plan`]).
fn write_plan(
    args: &PlanArgs,
    manifests: &ManifestSet,
    source: &mut dyn crate::ledger::AccountSource,
    output: Output,
) -> anyhow::Result<Outcome> {
    // `--out -`: the saved plan is what stdout shows.
    let out = args.out.as_deref().filter(|out| *out != Path::new("-"));
    let to_stdout = args.out.is_some() && out.is_none();
    let clash = match args.format {
        PlanFormat::Markdown => Some("markdown"),
        PlanFormat::Diff => Some("diff"),
        PlanFormat::Text | PlanFormat::Json => None,
    };
    if let Some(format) = clash.filter(|_| to_stdout) {
        anyhow::bail!(
            "--out - prints the JSON plan on stdout, where --format {format} would go too; drop one of them"
        );
    }
    let mut saved = match out {
        Some(out) => Some((
            out,
            report::JsonSink::new(
                crate::files::Replacement::create(out)
                    .with_context(|| format!("cannot write the plan to {}", out.display()))?,
            ),
        )),
        None => None,
    };
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut shown: Box<dyn report::PlanSink> = match args.format {
        _ if to_stdout => Box::new(report::JsonSink::new(stdout)),
        PlanFormat::Text => Box::new(report::TextSink::new(stdout, output.color)),
        PlanFormat::Json => Box::new(report::JsonSink::new(stdout)),
        PlanFormat::Markdown => Box::new(report::MarkdownSink::new(stdout)),
        PlanFormat::Diff => Box::new(report::DiffSink(stdout)),
    };
    let options = args.prune.options();
    let header = PlanHeader::of(manifests, source, shown_paths(&args.paths))?;
    let mut sinks: Vec<&mut dyn report::PlanSink> = vec![shown.as_mut()];
    if let Some((_, file)) = &mut saved {
        sinks.push(file);
    }
    let mut written = sinks.iter_mut().try_for_each(|s| s.header(&header));
    let summary = crate::plan::stream(manifests, source, &options, &mut |p| {
        if written.is_ok() {
            written = sinks.iter_mut().try_for_each(|s| s.account(&p.plan));
        }
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    })?;
    if written.is_ok() {
        written = sinks.iter_mut().try_for_each(|s| s.end(&summary));
    }
    drop(sinks);
    written.context("cannot write the plan")?;
    if let Some((out, file)) = saved {
        file.into_inner()
            .commit()
            .with_context(|| format!("cannot write the plan to {}", out.display()))?;
    }
    Ok(if args.detailed_exitcode && summary.needs_apply {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

pub(super) async fn apply(args: ApplyArgs, output: Output) -> anyhow::Result<Outcome> {
    if args.dry_run {
        anyhow::bail!(
            "apply has no --dry-run: `subsync plan` with the same arguments shows what apply would do, and changes nothing"
        );
    }
    let saved = match args.plan.clone() {
        Some(file) => Some(blocking(move || crate::plan::load_saved(&file)).await??),
        None => None,
    };
    let paths: Vec<PathBuf> = match (&saved, args.paths.is_empty()) {
        (Some(plan), true) => plan
            .header
            .manifest_paths
            .iter()
            .map(PathBuf::from)
            .collect(),
        _ => args.paths.clone(),
    };
    if paths.is_empty() {
        anyhow::bail!("no manifests: give PATH arguments or --plan FILE");
    }
    let notify = load_notify_config(args.run.notify_config.clone()).await?;
    let request = RunRequest {
        notify_sinks: notify.sinks.len(),
        ..args.run.run_request()
    };
    let config = resolve(request, Purpose::Once, &paths).await?;
    let manifests = match load_manifests(paths.clone(), config.limits, output).await {
        Ok(set) => set,
        Err(e) => {
            // A pipeline learns it from the commit's status and the team's chat too.
            if let Some(invalid) = e.downcast_ref::<manifest::ManifestError>() {
                let first = invalid.problems.first().map(ToString::to_string);
                let revision = match config.revision.clone() {
                    Some(r) => Some(r),
                    None => {
                        let paths = paths.clone();
                        blocking(move || manifest::git_revision(&paths)).await?
                    }
                };
                let notifier =
                    Notifier::start(notify, Arc::new(crate::metrics::Metrics::new())).await;
                notifier.manifests_invalid(
                    revision.as_deref(),
                    invalid.problems.len(),
                    &first.unwrap_or_default(),
                );
                notifier.close(NOTIFY_DRAIN).await;
            }
            return Err(e);
        }
    };
    let hooks = Hooks {
        observer: Arc::new(Progress::new(output)),
        calls: None,
    };
    let engine = lead(config, hooks, "apply").await?;
    let notifier = Notifier::start(notify, Arc::new(crate::metrics::Metrics::new())).await;
    let shutdown = crate::shutdown::on_signal();
    let revision = engine.revision(&paths).await;
    if let Some(r) = &revision {
        notifier.status(notifications::event::pending(r));
    }
    let job = Job {
        manifests: Arc::new(manifests),
        saved: saved.map(Arc::new),
        revision: revision.clone(),
        trigger: Trigger::Apply,
        refresh: args.refresh,
    };
    let result = engine.reconcile(job, &shutdown.graceful).await;
    engine.close().await;
    match &result {
        Ok(reconciled) => notifier.run_ended(
            notifications::event::of_run(&reconciled.summary),
            &reconciled.summary,
        ),
        Err(e) => notifier.not_started(revision.as_deref(), &crate::errors::chain(e)),
    }
    notifier.close(NOTIFY_DRAIN).await;
    let reconciled = result?;
    let summary = &reconciled.summary;
    write_stdout(&match args.format {
        OutputFormat::Text => report::summary_text(summary),
        OutputFormat::Json => serde_json::to_string_pretty(summary)? + "\n",
    })?;
    Ok(match reconciled.ending() {
        Ending::Stopped(why) => anyhow::bail!("{why}"),
        Ending::Interrupted => Outcome::Interrupted,
        Ending::Converged => Outcome::Success,
        Ending::Partial => Outcome::Incomplete,
    })
}

/// `import`: record the live lists of the manifests' accounts, and say what was adopted.
pub(super) async fn import(args: ImportArgs, output: Output) -> anyhow::Result<Outcome> {
    let request = args
        .remote
        .run_request(args.limits.limits(), Default::default());
    let config = resolve(request, Purpose::Once, &args.paths).await?;
    let manifests = Arc::new(load_manifests(args.paths.clone(), config.limits, output).await?);
    let engine = lead(config, Hooks::default(), "import").await?;
    let shutdown = crate::shutdown::on_signal();
    let refreshed = engine
        .refresh(manifests.clone(), Refresh::Import, &shutdown.graceful)
        .await;
    let location = engine.config().ledger.clone();
    engine.close().await;
    let (summary, stop) = refreshed?;
    let kept = out_of_band_unlisted(&location, manifests.clone()).await?;
    let report = report::ImportReport::new(location.to_string(), &manifests, summary, &kept);
    write_stdout(&match args.format {
        OutputFormat::Text => report::import_text(&report),
        OutputFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
    })?;
    if let Some(stop) = stop {
        anyhow::bail!("the import stopped: {}", crate::errors::chain(&stop));
    }
    Ok(
        match (
            shutdown.graceful.is_cancelled(),
            report.refresh.failed.is_empty(),
        ) {
            (true, _) => Outcome::Interrupted,
            (false, true) => Outcome::Success,
            (false, false) => Outcome::Incomplete,
        },
    )
}

/// Per set, how many of the subscribers the ledger confirms and the set does not list are out
/// of band (seen by a refresh, never added, imported or listed): what prune leaves to
/// `pruneOutOfBand`, as the plan decides it.
async fn out_of_band_unlisted(
    location: &crate::ledger::Location,
    manifests: Arc<ManifestSet>,
) -> anyhow::Result<Vec<u64>> {
    let mut reader = crate::ledger::Reader::open(location).await?;
    let kept = reader
        .view(move |source| {
            manifests
                .sets
                .iter()
                .map(|set| {
                    let mut kept = 0;
                    source.account(&set.official_account, &mut |ledger, _| {
                        kept = crate::plan::out_of_band_unlisted(set, ledger);
                        Ok(())
                    })?;
                    Ok(kept)
                })
                .collect()
        })
        .await;
    reader.close().await;
    Ok(kept?)
}

/// How long `apply` waits for its notifications to be delivered before it exits.
const NOTIFY_DRAIN: Duration = Duration::from_secs(10);

/// The notification config named by `--notify-config`, checked; none without the flag.
async fn load_notify_config(path: Option<PathBuf>) -> anyhow::Result<NotifyConfig> {
    match path {
        Some(path) => Ok(blocking(move || notifications::load(&path)).await??),
        None => Ok(NotifyConfig::default()),
    }
}

pub(super) async fn watch(args: WatchArgs, output: Output) -> anyhow::Result<Outcome> {
    let notify = load_notify_config(args.run.notify_config.clone()).await?;
    let request = RunRequest {
        notify_sinks: notify.sinks.len(),
        ..args.run.run_request()
    };
    let daemon = settings::DaemonRequest {
        debounce: args.debounce,
        resync: args.resync,
        refresh_every: args.refresh_every,
        takeover_every: args.takeover_every,
    };
    let paths = args.paths.clone();
    let (run, daemon) =
        blocking(move || settings::resolve_daemon(request, daemon, &paths, &env_var)).await??;
    let config = crate::watch::WatchConfig {
        run,
        paths: args.paths.clone(),
        listen: args.listen,
        timing: crate::watch::Timing {
            debounce: daemon.debounce,
            resync: daemon.resync,
            takeover_every: daemon.takeover_every,
        },
        refresh_every: daemon.refresh_every,
        standby: args.standby,
        output,
        notify,
    };
    Ok(match crate::watch::run(config).await? {
        crate::watch::Exit::Gracefully => Outcome::Success,
        crate::watch::Exit::Forced => Outcome::Interrupted,
    })
}

pub(super) fn status(args: StatusArgs) -> anyhow::Result<Outcome> {
    let location = settings::resolve_state(&args.state.request(None), &env_var)?;
    let status = super::reading_runtime()?.block_on(engine::status(&location, args.runs))?;
    let status = report::StatusReport::new(status);
    write_stdout(&match args.format {
        OutputFormat::Text => report::status_text(&status),
        OutputFormat::Json => serde_json::to_string_pretty(&status)? + "\n",
    })?;
    Ok(Outcome::Success)
}

/// `ledger copy` and `ledger migrate`.
pub(super) async fn ledger(action: LedgerAction) -> anyhow::Result<Outcome> {
    match action {
        LedgerAction::Copy(args) => {
            let (from, to) = blocking(move || {
                let from = settings::resolve_location(
                    &args.from,
                    args.from_password_file.as_deref(),
                    &env_var,
                )?;
                let to = settings::resolve_location(
                    &args.to,
                    args.to_password_file.as_deref(),
                    &env_var,
                )?;
                Ok::<_, settings::SettingsError>((from, to))
            })
            .await??;
            let reader = crate::ledger::Reader::open(&from).await?;
            let exists = reader.exists();
            reader.close().await;
            if !exists {
                anyhow::bail!("there is no ledger at {from}; check --from");
            }
            let copied = crate::ledger::copy(&from, &to).await?;
            write_stdout(&format!(
                "copied {from} to {to}: {}, {} confirmed and {} failed {}, {} (lineage and serial kept)\n",
                count(copied.accounts, "account", "accounts"),
                copied.confirmed,
                copied.failed,
                noun(copied.failed, "subscriber", "subscribers"),
                count(copied.runs, "run", "runs")
            ))?;
        }
        LedgerAction::Migrate { state } => {
            let state = state.request(None);
            let location = blocking(move || settings::resolve_state(&state, &env_var)).await??;
            crate::ledger::Writer::open(&location, "ledger migrate")
                .await?
                .close()
                .await;
            write_stdout(&format!(
                "{location} is at schema version {}\n",
                crate::ledger::SCHEMA_VERSION
            ))?;
        }
    }
    Ok(Outcome::Success)
}

pub(super) fn usersig(args: UsersigArgs) -> anyhow::Result<Outcome> {
    let now = crate::clock::unix_now() as i64;
    let text = match args.action {
        Some(UsersigAction::Decode { usersig }) => {
            let decoded = usersig::decode(&usersig)?;
            serde_json::to_string_pretty(&decoded.json)?
        }
        Some(UsersigAction::Verify {
            usersig,
            credentials,
        }) => {
            let creds = settings::resolve_credentials(&credentials.request(), &env_var)?;
            let decoded =
                usersig::verify(&usersig, &creds.key, creds.sdkappid, &creds.identifier, now)?;
            format!(
                "valid: SDKAppID {}, identifier {:?}, expires {}",
                decoded.sdkappid,
                decoded.identifier,
                crate::clock::rfc3339(decoded.expires_at())
            )
        }
        None => {
            let creds = settings::resolve_credentials(&args.credentials.request(), &env_var)?;
            let expire = i64::from(args.expire);
            let sig = usersig::generate(&creds.key, creds.sdkappid, &creds.identifier, now, expire);
            sig.as_str().to_owned()
        }
    };
    write_stdout(&(text + "\n"))?;
    Ok(Outcome::Success)
}

pub(super) async fn emulator(args: EmulatorArgs) -> anyhow::Result<Outcome> {
    let config_path = args.config.clone();
    let state_file = args.state_file.clone();
    let options = blocking(move || -> anyhow::Result<_> {
        let config = EmulatorConfig::load(&config_path)?;
        let credentials = config.credentials(&config_path)?;
        let now = crate::clock::unix_now() as i64;
        let (state, journal) = match &state_file {
            Some(path) => {
                let file = StateFile::new(path);
                let cannot = || format!("cannot use the emulator state file {}", path.display());
                let loaded = file.load().with_context(cannot)?;
                let changed = loaded.is_none();
                let state = loaded.unwrap_or_else(|| config.initial_state(now));
                let journal = file.resume(&state, changed).with_context(cannot)?;
                (state, Some(journal))
            }
            None => (config.initial_state(now), None),
        };
        Ok(config.options(credentials, state, journal))
    })
    .await??;
    let emulator = Emulator::start(options, args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    write_stdout(&format!("listening on {}\n", emulator.url()))?;
    if !args.listen.ip().is_loopback() {
        tracing::warn!("the emulator listens beyond loopback; it is a test tool, not a service");
    }
    crate::shutdown::on_signal().graceful.cancelled().await;
    emulator.shutdown(Duration::from_secs(5)).await;
    Ok(Outcome::Success)
}

pub(super) fn schema(name: &str) -> anyhow::Result<Outcome> {
    let schema = schema::by_name(name).with_context(|| format!("no schema called {name}"))?;
    write_stdout(&(serde_json::to_string_pretty(&schema)? + "\n"))?;
    Ok(Outcome::Success)
}

pub(super) fn completions(shell: super::Shell) -> anyhow::Result<Outcome> {
    use clap::CommandFactory;
    let shell = match shell {
        super::Shell::Bash => clap_complete::Shell::Bash,
        super::Shell::Zsh => clap_complete::Shell::Zsh,
        super::Shell::Fish => clap_complete::Shell::Fish,
        super::Shell::Powershell => clap_complete::Shell::PowerShell,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut super::Cli::command(), "subsync", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(Outcome::Success)
}

/// One man page on stdout, or every page (one per command, as `subsync-plan(1)`) in a directory.
pub(super) fn man(args: ManArgs) -> anyhow::Result<Outcome> {
    use clap::CommandFactory;
    let mut cli = super::Cli::command().disable_help_subcommand(true);
    cli.build();
    if let Some(dir) = args.out_dir {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let written = man_pages(&cli, &dir)
            .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        write_stdout(&format!(
            "wrote {} into {}\n",
            count(written, "man page", "man pages"),
            dir.display()
        ))?;
        return Ok(Outcome::Success);
    }
    let mut command = &cli;
    for name in &args.command {
        command = command
            .get_subcommands()
            .find(|c| c.get_name() == name && !c.is_hide_set())
            .with_context(|| {
                let parent = command.get_display_name().unwrap_or("subsync");
                format!(
                    "{parent} has no command {}; `{} --help` lists them",
                    crate::quote::quote(name),
                    parent.replace('-', " ")
                )
            })?;
    }
    let mut page = Vec::new();
    man_page(command).render(&mut page)?;
    std::io::stdout().lock().write_all(&page)?;
    Ok(Outcome::Success)
}

/// The page of one command of the built command line: `subsync-plan(1)`, from subsync's version.
fn man_page(command: &clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(command.clone()).source(format!("subsync {}", super::VERSION))
}

/// Writes the page of `command` and of each of its commands into `dir` (clap_mangen's own
/// `generate_to` cannot name the source on the pages of commands); returns how many.
fn man_pages(command: &clap::Command, dir: &std::path::Path) -> std::io::Result<u64> {
    let mut written = 1;
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        written += man_pages(sub, dir)?;
    }
    man_page(command).generate_to(dir)?;
    Ok(written)
}

/// Writes the generated reference pages into `dir`.
pub(super) fn reference(dir: &std::path::Path) -> anyhow::Result<Outcome> {
    use clap::CommandFactory;
    let mut cli = super::Cli::command();
    cli.build();
    let written = crate::reference::write(&cli, dir)?;
    write_stdout(&format!(
        "wrote {} into {}\n",
        count(written as u64, "reference page", "reference pages"),
        dir.display()
    ))?;
    Ok(Outcome::Success)
}

//! The body of each command: resolve settings, call the library, print the result. Blocking
//! work (files, SQLite, gzip) runs on the blocking pool, never on a runtime worker.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::{
    ApplyArgs, EmulatorArgs, ImportArgs, LedgerAction, Outcome, OutputFormat, PlanArgs, PlanFormat,
    RemoteArgs, StatusArgs, UsersigAction, UsersigArgs, ValidateArgs, WatchArgs,
};
use crate::apply::{self, Job, Nobody, Reconciler, RunResult, Stop, Trigger};
use crate::emulator::{Emulator, EmulatorConfig, EmulatorOptions, StateFile};
use crate::ledger::{Location, Reader, Writer};
use crate::manifest::{self, Limits, ManifestSet};
use crate::sandbox::Sandbox;
use crate::settings::{Output, env_var, resolve_location};
use crate::task::blocking;
use crate::tencent::{Client, ClientConfig, usersig};
use crate::{plan, report, schema};

/// Prints the warnings of a loaded set: lines for people, events for collectors.
pub fn print_warnings(set: &ManifestSet, output: Output) {
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

pub fn validate(args: ValidateArgs, output: Output) -> anyhow::Result<Outcome> {
    let set = manifest::load(&args.paths, &args.limits.resolve())?;
    print_warnings(&set, output);
    write_stdout(&format!(
        "valid: {} manifest files, {} accounts, {} desired subscribers\n",
        set.files.len(),
        set.sets.len(),
        set.desired_total()
    ))?;
    Ok(Outcome::Success)
}

pub fn plan(args: PlanArgs, output: Output) -> anyhow::Result<Outcome> {
    let manifests = manifest::load(&args.paths, &args.limits.resolve())?;
    print_warnings(&manifests, output);
    let snapshot = Reader::open(args.remote.state.resolve(env_var)?)?.snapshot()?;
    print_plan(&args, &manifests, &snapshot, output)
}

/// `plan --refresh`: read and record the live lists first, then plan from what was recorded.
pub async fn plan_refreshed(args: PlanArgs, output: Output) -> anyhow::Result<Outcome> {
    let limits = args.limits.resolve();
    let resolved = remote_settings(&args.remote).await?;
    let manifests = load_manifests(args.paths.clone(), limits, output).await?;
    let options = args.remote.options(&args.paths, output);
    let opened = open(
        &args.remote,
        resolved,
        &args.paths,
        &manifests,
        "plan",
        options,
    )
    .await?;
    let shutdown = crate::shutdown::on_signal();
    let (refreshed, stop) = opened
        .reconciler
        .refresh(&manifests.accounts(), "plan --refresh", &shutdown.graceful)
        .await?;
    let snapshot = opened.reconciler.writer().snapshot().await?;
    opened.close().await;
    if let Some(stop) = stop {
        anyhow::bail!("the refresh stopped: {stop}");
    }
    for f in &refreshed.failed {
        tracing::warn!(account = %f.official_account, "{}", f.error);
    }
    print_plan(&args, &manifests, &snapshot, output)
}

fn print_plan(
    args: &PlanArgs,
    manifests: &ManifestSet,
    snapshot: &crate::ledger::Snapshot,
    output: Output,
) -> anyhow::Result<Outcome> {
    let paths = args.paths.iter().map(|p| p.display().to_string()).collect();
    let plan = plan::compute(manifests, snapshot, paths, &args.prune.options());
    if let Some(out) = &args.out {
        crate::files::write_atomically(out, serde_json::to_string_pretty(&plan)?.as_bytes())
            .with_context(|| format!("cannot write the plan to {}", out.display()))?;
    }
    let text = match args.format {
        PlanFormat::Text => report::plan_text(&plan, output.color),
        PlanFormat::Json => serde_json::to_string_pretty(&plan)? + "\n",
        PlanFormat::Markdown => report::plan_markdown(&plan),
        PlanFormat::Diff => report::plan_diff(manifests, snapshot),
    };
    write_stdout(&text)?;
    Ok(if args.detailed_exitcode && plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// A reconciler on the real service or the sandbox, holding the ledger's writer lock.
struct Opened {
    reconciler: Reconciler,
    sandbox: Option<Sandbox>,
}

impl Opened {
    async fn close(self) {
        drop(self.reconciler);
        if let Some(sandbox) = self.sandbox {
            sandbox.stop().await;
        }
    }
}

/// The credentials and the ledger, resolved once, before the manifests are read, so that bad
/// settings stop a run before anything is read or sent. `None` with the sandbox, which makes
/// its own.
async fn remote_settings(remote: &RemoteArgs) -> anyhow::Result<Option<(ClientConfig, Location)>> {
    if remote.state.sandbox {
        return Ok(None);
    }
    let (api, state) = (remote.api.clone(), remote.state.clone());
    let resolved =
        blocking(move || anyhow::Ok((api.client_config(env_var)?, state.resolve(env_var)?)))
            .await??;
    Ok(Some(resolved))
}

/// Starts the sandbox when asked, takes the writer lock and builds the reconciler.
async fn open(
    remote: &RemoteArgs,
    resolved: Option<(ClientConfig, Location)>,
    paths: &[PathBuf],
    manifests: &ManifestSet,
    command: &str,
    options: apply::Options,
) -> anyhow::Result<Opened> {
    let (sandbox, client_config, location) = match resolved {
        Some((config, location)) => (None, config, location),
        None => {
            let config = remote
                .sandbox_config
                .clone()
                .or_else(|| crate::sandbox::default_config(paths));
            let sandbox = Sandbox::start(&remote.state.at, config, manifests).await?;
            let (client, dir) = (sandbox.client.clone(), sandbox.state_dir.clone());
            (Some(sandbox), client, Location::Dir(dir))
        }
    };
    let writer = Writer::open(location, command).await?;
    let client = Arc::new(Client::new(client_config)?);
    let reconciler = Reconciler::new(writer, client, options, Arc::new(Nobody));
    Ok(Opened {
        reconciler,
        sandbox,
    })
}

pub async fn apply(args: ApplyArgs, output: Output) -> anyhow::Result<Outcome> {
    let saved = match args.plan.clone() {
        Some(file) => Some(blocking(move || plan::load_saved(&file)).await??),
        None => None,
    };
    let paths: Vec<PathBuf> = match (&saved, args.paths.is_empty()) {
        (Some(plan), true) => plan.manifest_paths.iter().map(PathBuf::from).collect(),
        _ => args.paths.clone(),
    };
    if paths.is_empty() {
        anyhow::bail!("no manifests: give PATH arguments or --plan FILE");
    }
    let run = &args.run;
    let resolved = remote_settings(&run.remote).await?;
    let manifests = load_manifests(paths.clone(), run.limits.resolve(), output).await?;
    let revision = match run.revision.clone() {
        Some(r) => Some(r),
        None => {
            let paths = paths.clone();
            blocking(move || manifest::git_revision(&paths)).await?
        }
    };
    let options = run.options(&paths, output);
    let opened = open(&run.remote, resolved, &paths, &manifests, "apply", options).await?;
    let shutdown = crate::shutdown::on_signal();
    let job = Job {
        manifests: &manifests,
        saved: saved.as_ref(),
        revision,
        trigger: Trigger::Apply,
        refresh: args.refresh,
    };
    let result = opened.reconciler.reconcile(job, &shutdown.graceful).await;
    opened.close().await;
    let reconciled = result?;
    let summary = &reconciled.summary;
    write_stdout(&match args.format {
        OutputFormat::Text => report::summary_text(summary),
        OutputFormat::Json => serde_json::to_string_pretty(summary)? + "\n",
    })?;
    match reconciled.stop {
        Some(Stop::Fatal(e)) if e.is_answer() => {
            anyhow::bail!("stopped by the service's answer: {e}")
        }
        Some(stop) => anyhow::bail!("stopped: {stop}"),
        None => {}
    }
    Ok(match (summary.interrupted, summary.result) {
        (true, _) => Outcome::Interrupted,
        (false, RunResult::Converged) => Outcome::Success,
        (false, _) => Outcome::Incomplete,
    })
}

/// `import`: record the live lists of the manifests' accounts, and say what was adopted.
pub async fn import(args: ImportArgs, output: Output) -> anyhow::Result<Outcome> {
    let resolved = remote_settings(&args.remote).await?;
    let manifests = load_manifests(args.paths.clone(), args.limits.resolve(), output).await?;
    let options = args.remote.options(&args.paths, output);
    let opened = open(
        &args.remote,
        resolved,
        &args.paths,
        &manifests,
        "import",
        options,
    )
    .await?;
    let shutdown = crate::shutdown::on_signal();
    let accounts = manifests.accounts();
    let refreshed = opened
        .reconciler
        .refresh(&accounts, "import", &shutdown.graceful)
        .await;
    let snapshot = match &refreshed {
        Ok(_) => Some(opened.reconciler.writer().snapshot().await?),
        Err(_) => None,
    };
    let ledger = opened.reconciler.writer().location().to_owned();
    opened.close().await;
    let (summary, stop) = refreshed?;
    let report = report::ImportReport::new(ledger, &manifests, snapshot.as_ref(), summary);
    write_stdout(&match args.format {
        OutputFormat::Text => report::import_text(&report),
        OutputFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
    })?;
    if let Some(stop) = stop {
        anyhow::bail!("the import stopped: {stop}");
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

pub async fn watch(args: WatchArgs, output: Output) -> anyhow::Result<Outcome> {
    let run = &args.run;
    let remote = &run.remote;
    let state_args = remote.state.clone();
    let state = if remote.state.sandbox {
        None
    } else {
        Some(blocking(move || state_args.resolve(env_var)).await??)
    };
    let settings = crate::watch::Settings {
        paths: args.paths.clone(),
        listen: args.listen,
        debounce: args.debounce,
        resync: args.resync,
        refresh_every: args.refresh_every,
        state,
        sandbox_root: remote.state.sandbox.then(|| remote.state.at.clone()),
        standby: args.standby,
        takeover_every: args.takeover_every,
        sandbox_config: remote.sandbox_config.clone(),
        api: remote.api.clone(),
        limits: run.limits.resolve(),
        revision: run.revision.clone(),
        options: apply::Options {
            retry_backoff: Some(apply::RetryBackoff::default()),
            audit_idle_runs: false,
            drain: Duration::from_secs(10),
            ..run.options(&args.paths, output)
        },
        output,
    };
    Ok(match crate::watch::run(settings).await? {
        crate::watch::Ended::Gracefully => Outcome::Success,
        crate::watch::Ended::Forced => Outcome::Interrupted,
    })
}

pub fn status(args: StatusArgs) -> anyhow::Result<Outcome> {
    let location = args.state.resolve(env_var)?;
    let mut reader = Reader::open(&location)?;
    let (snapshot, accounts) = reader.summaries()?;
    let runs = reader.runs(args.runs)?;
    let status = report::StatusReport::new(
        location.to_string(),
        snapshot.lineage,
        snapshot.serial,
        accounts,
        runs,
    );
    write_stdout(&match args.format {
        OutputFormat::Text => report::status_text(&status),
        OutputFormat::Json => serde_json::to_string_pretty(&status)? + "\n",
    })?;
    Ok(Outcome::Success)
}

/// `ledger copy` and `ledger migrate`.
pub fn ledger(action: LedgerAction) -> anyhow::Result<Outcome> {
    match action {
        LedgerAction::Copy(args) => {
            let from = resolve_location(&args.from, args.from_password_file.as_deref(), env_var)?;
            let to = resolve_location(&args.to, args.to_password_file.as_deref(), env_var)?;
            if !Reader::open(&from)?.exists() {
                anyhow::bail!("there is no ledger at {from}; check --from");
            }
            let copied = crate::ledger::copy(&from, &to)?;
            write_stdout(&format!(
                "copied {from} to {to}: {} accounts, {} confirmed and {} failed subscribers, {} runs (lineage and serial kept)\n",
                copied.accounts, copied.confirmed, copied.failed, copied.runs
            ))?;
        }
        LedgerAction::Migrate { state } => {
            let location = state.resolve(env_var)?;
            drop(crate::ledger::Ledger::open(&location, "ledger migrate")?);
            write_stdout(&format!(
                "{location} is at schema version {}\n",
                crate::ledger::SCHEMA_VERSION
            ))?;
        }
    }
    Ok(Outcome::Success)
}

pub fn usersig(args: UsersigArgs) -> anyhow::Result<Outcome> {
    let now = crate::clock::unix_now() as i64;
    let text = match args.action {
        Some(UsersigAction::Decode { usersig }) => {
            let decoded = usersig::decode(&usersig)?;
            serde_json::to_string_pretty(&decoded.json)?
        }
        Some(UsersigAction::Verify { usersig }) => {
            let creds = args.api.credentials(env_var)?;
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
            let creds = args.api.credentials(env_var)?;
            let expire = i64::from(args.expire);
            let sig = usersig::generate(&creds.key, creds.sdkappid, &creds.identifier, now, expire);
            sig.as_str().to_owned()
        }
    };
    write_stdout(&(text + "\n"))?;
    Ok(Outcome::Success)
}

pub async fn emulator(args: EmulatorArgs) -> anyhow::Result<Outcome> {
    let config_path = args.config.clone();
    let state_file = args.state_file.clone();
    let (config, credentials, state, journal) = blocking(move || -> anyhow::Result<_> {
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
        Ok((config, credentials, state, journal))
    })
    .await??;
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
    write_stdout(&format!("listening on {}\n", emulator.url()))?;
    if !args.listen.ip().is_loopback() {
        tracing::warn!("the emulator listens beyond loopback; it is a test tool, not a service");
    }
    crate::shutdown::on_signal().graceful.cancelled().await;
    emulator.shutdown(Duration::from_secs(5)).await;
    Ok(Outcome::Success)
}

pub fn schema(name: &str) -> anyhow::Result<Outcome> {
    let schema = schema::by_name(name).with_context(|| format!("no schema called {name}"))?;
    write_stdout(&(serde_json::to_string_pretty(&schema)? + "\n"))?;
    Ok(Outcome::Success)
}

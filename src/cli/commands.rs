//! The body of each command: resolve settings, call the library, print the result. Blocking
//! work (files, SQLite, gzip) runs on the blocking pool, never on a runtime worker.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::{
    ApplyArgs, EmulatorArgs, Outcome, OutputFormat, PlanArgs, PlanFormat, StatusArgs,
    UsersigAction, UsersigArgs, ValidateArgs, WatchArgs,
};
use crate::apply::{self, Job, Nobody, Reconciler, RunResult, Stop, Trigger};
use crate::emulator::{Emulator, EmulatorConfig, EmulatorOptions, StateFile};
use crate::ledger::{Reader, Writer};
use crate::manifest::{self, Limits, ManifestSet};
use crate::sandbox::Sandbox;
use crate::settings::{Output, env_var};
use crate::task::blocking;
use crate::tencent::{Client, usersig};
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
    let reader = Reader::open(&args.state.resolve())?;
    let snapshot = reader.snapshot()?;
    let paths = args.paths.iter().map(|p| p.display().to_string()).collect();
    let plan = plan::compute(&manifests, &snapshot, paths);
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
    write_stdout(&text)?;
    Ok(if args.detailed_exitcode && plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
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
    // Credentials are checked before anything else happens; the sandbox makes its own.
    let client_config = if run.state.sandbox {
        None
    } else {
        let api = run.api.clone();
        Some(blocking(move || api.client_config(env_var)).await??)
    };
    let manifests = load_manifests(paths.clone(), run.limits.resolve(), output).await?;
    let revision = match run.revision.clone() {
        Some(r) => Some(r),
        None => {
            let paths = paths.clone();
            blocking(move || manifest::git_revision(&paths)).await?
        }
    };
    let (sandbox, client_config, state_dir) = match client_config {
        Some(config) => (None, config, run.state.resolve()),
        None => {
            let config = run
                .sandbox_config
                .clone()
                .or_else(|| crate::sandbox::default_config(&paths));
            let sandbox = Sandbox::start(&run.state.dir, config, &manifests).await?;
            let (client, dir) = (sandbox.client.clone(), sandbox.state_dir.clone());
            (Some(sandbox), client, dir)
        }
    };
    let writer = Writer::open(&state_dir, "apply").await?;
    let options = run.options(&paths, output);
    let reconciler = Reconciler::new(
        writer,
        Client::new(client_config)?,
        options,
        Arc::new(Nobody),
    );
    let shutdown = crate::shutdown::on_signal();
    let job = Job {
        manifests: &manifests,
        saved: saved.as_ref(),
        revision,
        trigger: Trigger::Apply,
    };
    let result = reconciler.reconcile(job, &shutdown.graceful).await;
    drop(reconciler);
    if let Some(sandbox) = sandbox {
        sandbox.stop().await;
    }
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

pub async fn watch(args: WatchArgs, output: Output) -> anyhow::Result<Outcome> {
    let run = &args.run;
    let settings = crate::watch::Settings {
        paths: args.paths.clone(),
        listen: args.listen,
        debounce: args.debounce,
        resync: args.resync,
        state_dir: run.state.dir.clone(),
        sandbox: run.state.sandbox,
        sandbox_config: run.sandbox_config.clone(),
        api: run.api.clone(),
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
    write_stdout(&match args.format {
        OutputFormat::Text => report::status_text(&status),
        OutputFormat::Json => serde_json::to_string_pretty(&status)? + "\n",
    })?;
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

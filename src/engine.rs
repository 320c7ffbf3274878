//! The Engine: the one way into everything that talks to the service or writes the ledger.
//!
//! Opened from a resolved [`Config`] (and the caller's observers), it owns the sandbox when
//! one was asked for, the API client (its only owner: each run is handed it), the pace of each
//! command and, while this process holds the writer lock ([`Engine::lead`]), the ledger writer
//! inside the [`Reconciler`]. `apply`,
//! `import`, `plan --refresh` and `watch` all run through it; [`Engine::close`] records what is
//! queued, releases the lock (waiting for the writer's task) and stops the sandbox. `status`
//! reads the ledger through [`status`], never waiting for the writer.
//!
//! Invariants: nothing is sent before the writer lock is held; the client in use changes only
//! between runs ([`Engine::reload_key`]); the pace is shared by every run of the process.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::apply::{
    Job, Observer, Reconciled, Reconciler, Refresh, RefreshSummary, RunError, RunSummary, Stop,
};
use crate::ledger::{AccountOverview, LedgerError, Location, LockLoss, Reader, Run, Writer};
use crate::manifest::ManifestSet;
use crate::sandbox::{Sandbox, SandboxError};
use crate::settings::{Config, Remote, Service, SettingsError};
use crate::task::blocking;
use crate::tencent::client::BuildError;
use crate::tencent::ratelimit::Pacer;
use crate::tencent::{Api, CallObserver, Client, ClientConfig};

/// Who hears about runs and calls: a progress display, the daemon's metrics.
#[derive(Clone)]
pub(crate) struct Hooks {
    pub observer: Arc<dyn Observer>,
    /// Told the outcome of every API call.
    pub calls: Option<Arc<dyn CallObserver>>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            observer: Arc::new(crate::apply::Nobody),
            calls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EngineError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Client(#[from] BuildError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

pub(crate) struct Engine {
    config: Config,
    sandbox: Option<Sandbox>,
    /// The credentials in use, when they are the service's (not the sandbox's).
    service: Option<Service>,
    api: Arc<dyn Api>,
    pacer: Arc<Pacer>,
    hooks: Hooks,
    /// Present while this process holds the ledger's writer lock.
    reconciler: Option<Reconciler>,
}

/// A client keeping at most `pool` idle connections: the calls in flight. Built on the
/// blocking pool: building one reads the system's CA certificates (a hundred files and more),
/// and a daemon's key reload builds one while probes are being answered.
async fn client(
    config: ClientConfig,
    pool: usize,
    hooks: &Hooks,
) -> Result<Arc<dyn Api>, BuildError> {
    let client = blocking(move || Client::new(ClientConfig { pool, ..config }))
        .await
        .map_err(|e| BuildError::interrupted(&e))??;
    Ok(match &hooks.calls {
        Some(calls) => Arc::new(client.observed(calls.clone())),
        None => Arc::new(client),
    })
}

impl Engine {
    /// Starts the sandbox when asked for and builds the client; takes no lock yet.
    pub(crate) async fn open(config: Config, hooks: Hooks) -> Result<Engine, EngineError> {
        let (sandbox, service, client_config) = match &config.remote {
            Remote::Sandbox {
                config: file,
                state_dir,
            } => {
                let sandbox = Sandbox::start(state_dir, file.as_deref()).await?;
                let client = sandbox.client.clone();
                (Some(sandbox), None, client)
            }
            Remote::Service(service) => (None, Some(service.clone()), service.client_config()),
        };
        let api = client(client_config, config.policy.concurrency, &hooks).await?;
        Ok(Engine::assemble(config, sandbox, service, api, hooks))
    }

    /// An engine calling `api` instead of a client of its own (tests: an in-process API).
    #[cfg(test)]
    pub(crate) fn with_api(config: Config, api: Arc<dyn Api>, hooks: Hooks) -> Engine {
        Engine::assemble(config, None, None, api, hooks)
    }

    fn assemble(
        config: Config,
        sandbox: Option<Sandbox>,
        service: Option<Service>,
        api: Arc<dyn Api>,
        hooks: Hooks,
    ) -> Engine {
        Engine {
            pacer: Arc::new(Pacer::new(config.qps)),
            config,
            sandbox,
            service,
            api,
            hooks,
            reconciler: None,
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Takes the ledger's writer lock: refused at once, naming the holder, when another
    /// process holds it. Leading already is fine.
    pub(crate) async fn lead(&mut self, command: &str) -> Result<(), LedgerError> {
        if self.reconciler.is_some() {
            return Ok(());
        }
        let writer = Writer::open(&self.config.ledger, command).await?;
        self.lead_with(writer).await;
        Ok(())
    }

    /// A wait for the writer lock that holds no borrow of the engine, so that a replica
    /// standing by goes on with everything else meanwhile: it yields the writer the moment
    /// the holder lets go (hand it to [`Engine::lead_with`]), `None` once `stop` is
    /// cancelled. `None` where the ledger cannot wait on its lock (SQLite): try it from
    /// time to time instead.
    pub(crate) fn lock_waiter(
        &self,
        command: &'static str,
        stop: CancellationToken,
    ) -> Option<impl Future<Output = Result<Option<Writer>, LedgerError>> + Send + 'static> {
        let location = self.config.ledger.clone();
        if !Writer::can_wait(&location) {
            return None;
        }
        Some(async move { Writer::wait(&location, command, &stop).await })
    }

    /// Leads with `writer`, which holds the lock (from [`Engine::lock_waiter`]). A writer
    /// this engine already has stays; the new one is let go.
    pub(crate) async fn lead_with(&mut self, writer: Writer) {
        if self.reconciler.is_some() {
            writer.close().await;
            return;
        }
        self.reconciler = Some(Reconciler::new(
            writer,
            self.pacer.clone(),
            self.config.policy,
            self.hooks.observer.clone(),
        ));
    }

    /// The writer, while this process leads.
    pub(crate) fn writer(&self) -> Option<&Writer> {
        self.reconciler.as_ref().map(Reconciler::writer)
    }

    /// Lets go of the ledger (after its lock was lost, or to stand by); says why it was lost,
    /// if it was.
    pub(crate) async fn step_down(&mut self) -> Option<LockLoss> {
        let reconciler = self.reconciler.take()?;
        let why = reconciler.writer().lost_reason();
        reconciler.close().await;
        why
    }

    fn reconciler(&self) -> Result<&Reconciler, LedgerError> {
        self.reconciler
            .as_ref()
            .ok_or_else(|| LedgerError::LockLost {
                at: self.config.ledger.to_string(),
                loss: LockLoss::NotLeading,
            })
    }

    /// Reconciles once (see [`Reconciler::reconcile`]).
    pub(crate) async fn reconcile(
        &self,
        job: Job,
        cancel: &CancellationToken,
    ) -> Result<Reconciled, RunError> {
        if let Some(sandbox) = &self.sandbox {
            sandbox.ensure_accounts(&job.manifests).await;
        }
        self.reconciler()?
            .reconcile(job, self.api.clone(), cancel)
            .await
    }

    /// Reads and records the live lists of the accounts `manifests` declare.
    pub(crate) async fn refresh(
        &self,
        manifests: Arc<ManifestSet>,
        purpose: Refresh,
        cancel: &CancellationToken,
    ) -> Result<(RefreshSummary, Option<Stop>), RunError> {
        if let Some(sandbox) = &self.sandbox {
            sandbox.ensure_accounts(&manifests).await;
        }
        self.reconciler()?
            .refresh(manifests, purpose, self.api.clone(), cancel)
            .await
    }

    /// The ledger as the writer sees it (tests).
    #[cfg(test)]
    pub(crate) async fn snapshot(&self) -> Result<crate::ledger::Snapshot, LedgerError> {
        self.reconciler()?.writer().snapshot().await
    }

    /// The ledger's serial, as the writer sees it: it changes with every write.
    pub(crate) async fn serial(&self) -> Result<u64, LedgerError> {
        let writer = self.reconciler()?.writer();
        writer.view(|source| Ok(source.identity()?.1)).await
    }

    /// Counts per account, as the writer sees them.
    pub(crate) async fn accounts(&self) -> Result<Vec<AccountOverview>, LedgerError> {
        self.reconciler()?.writer().accounts().await
    }

    /// Reads the key file again and, when the key changed (a rotated Secret), uses it from the
    /// next run on. True when it changed.
    pub(crate) async fn reload_key(&mut self) -> Result<bool, SettingsError> {
        let Some(service) = self.service.clone() else {
            return Ok(false);
        };
        let Some(reread) = blocking(move || service.reread_key()).await.ok().flatten() else {
            return Ok(false);
        };
        let reread = reread?;
        let same = self
            .service
            .as_ref()
            .is_some_and(|s| s.key.fingerprint() == reread.key.fingerprint());
        if same {
            return Ok(false);
        }
        match client(
            reread.client_config(),
            self.config.policy.concurrency,
            &self.hooks,
        )
        .await
        {
            Ok(api) => {
                self.api = api;
                self.service = Some(reread);
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot use the new credentials; keeping the ones in use");
                Ok(false)
            }
        }
    }

    /// The revision recorded with a run: the configured one, else the manifests' git commit.
    pub(crate) async fn revision(&self, paths: &[PathBuf]) -> Option<String> {
        if let Some(fixed) = &self.config.revision {
            return Some(fixed.clone());
        }
        let paths = paths.to_vec();
        blocking(move || crate::manifest::git_revision(&paths))
            .await
            .ok()
            .flatten()
    }

    /// Records what is queued, releases the writer lock, waits for the writer's task and stops
    /// the sandbox.
    pub(crate) async fn close(mut self) {
        self.step_down().await;
        if let Some(sandbox) = self.sandbox.take() {
            sandbox.stop().await;
        }
    }
}

/// What `status` shows: the ledger's identity, its accounts and its latest runs.
pub(crate) struct LedgerStatus {
    pub ledger: String,
    pub lineage: Option<String>,
    pub serial: u64,
    pub accounts: Vec<AccountOverview>,
    pub runs: Vec<Run<RunSummary>>,
}

/// Reads what `status` shows, without writing or waiting for the writer.
pub(crate) async fn status(ledger: &Location, runs: usize) -> Result<LedgerStatus, LedgerError> {
    let mut reader = Reader::open(ledger).await?;
    let (snapshot, accounts) = reader.overviews().await?;
    let runs = reader.runs(runs).await?;
    reader.close().await;
    Ok(LedgerStatus {
        ledger: ledger.to_string(),
        lineage: snapshot.lineage,
        serial: snapshot.serial,
        accounts,
        runs,
    })
}

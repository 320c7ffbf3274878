//! The one reconcile path, shared by `apply` (once) and `watch` (again and again): plan from
//! the manifests and the ledger (account by account, see [`outline`]), probe the accounts,
//! execute, summarise, record.
//!
//! A [`Reconciler`] lives as long as this process leads: it holds the ledger writer (and so the
//! writer lock) and one rate limiter per API command, so that consecutive reconciles of the
//! daemon share the pace the service allows. The client is not its own: each run is handed the
//! one the [`Engine`](crate::engine::Engine) owns, so that a rotated key is used from the next
//! run on with nothing to keep in step.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::observe::Observer;
use super::outline::{self, Outline, Outlined, Pass};
use super::own;
use super::probe::{Probed, probe};
use super::refresh::{self, Refresh, RefreshSummary};
use super::summary::{AccountStatus, RefreshRecord, RunResult, RunSummary, Summary};
use super::work::{Known, Load, Pending, Report};
use super::{Policy, Reconciled, RunError, Stop, Trigger, executor};
use crate::ledger::{AccountFact, Record, RecordError, Recorder, RunOutcome, Stored, Writer};
use crate::manifest::ManifestSet;
use crate::plan::SavedPlan;
use crate::tencent::Api;
use crate::tencent::api::Command;
use crate::tencent::ratelimit::Pacer;

/// What one reconcile is asked to do.
pub(crate) struct Job {
    pub(crate) manifests: Arc<ManifestSet>,
    /// A reviewed plan that must agree with the one computed now.
    pub(crate) saved: Option<Arc<SavedPlan>>,
    pub(crate) revision: Option<String>,
    pub(crate) trigger: Trigger,
    /// Read the live lists first, so that the plan sees drift in both directions.
    pub(crate) refresh: bool,
}

pub(crate) struct Reconciler {
    writer: Writer,
    /// The service limits each command separately: one limiter each, shared by every run.
    pacer: Arc<Pacer>,
    policy: Policy,
    observer: Arc<dyn Observer>,
}

impl Reconciler {
    pub(crate) fn new(
        writer: Writer,
        pacer: Arc<Pacer>,
        policy: Policy,
        observer: Arc<dyn Observer>,
    ) -> Reconciler {
        Reconciler {
            writer,
            pacer,
            policy,
            observer,
        }
    }

    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Lets go of the ledger: what is queued is recorded, the lock released, the thread joined.
    pub(crate) async fn close(self) {
        self.writer.close().await;
    }

    /// The readers of a refresh through `api`; `wanted` counts, per account, what the
    /// manifests list.
    fn readers(
        &self,
        api: Arc<dyn Api>,
        purpose: Refresh,
        wanted: Option<Arc<ManifestSet>>,
    ) -> Arc<refresh::Readers> {
        Arc::new(refresh::Readers {
            api,
            pacer: self.pacer.clone(),
            policy: self.policy.retry,
            writer: self.writer.clone(),
            max_subscribers: self.policy.max_subscribers,
            adopt: purpose == Refresh::Import,
            wanted,
            concurrency: self.policy.concurrency,
        })
    }

    /// Reads and records the live lists of the accounts `manifests` declare, alone
    /// (`plan --refresh`, `import`), under an audit entry of its own.
    pub(crate) async fn refresh(
        &self,
        manifests: Arc<ManifestSet>,
        purpose: Refresh,
        api: Arc<dyn Api>,
        cancel: &CancellationToken,
    ) -> Result<(RefreshSummary, Option<Stop>), RunError> {
        let run = self.writer.begin_run(purpose.command(), None).await?;
        let accounts = manifests.accounts();
        let readers = self.readers(api, purpose, Some(manifests));
        let (summary, stop) = refresh::refresh(readers, &accounts, run, cancel).await;
        let result = match (&stop, cancel.is_cancelled(), summary.failed.is_empty()) {
            (Some(_), _, _) => RunOutcome::Failed,
            (None, true, _) => RunOutcome::Interrupted,
            (None, false, false) => RunOutcome::Partial,
            (None, false, true) => RunOutcome::Refreshed,
        };
        let record = RunSummary::Refresh(RefreshRecord::new(
            summary.clone(),
            stop.as_ref().map(|s| crate::errors::chain(s)),
        ));
        self.writer.finish_run(run, result, &record).await?;
        Ok((summary, stop))
    }

    /// Reconciles once. Errors are for runs refused before anything happened (the ledger, a
    /// stale saved plan); a run that started always comes back with its summary.
    pub(crate) async fn reconcile(
        &self,
        job: Job,
        api: Arc<dyn Api>,
        cancel: &CancellationToken,
    ) -> Result<Reconciled, RunError> {
        let started = Instant::now();
        // A refresh writes the ledger, so its run's audit entry opens first.
        let mut run = None;
        let mut refreshed = None;
        let mut stopped = None;
        if job.refresh {
            let id = self
                .writer
                .begin_run(job.trigger.command(), job.revision.as_deref())
                .await?;
            let accounts = job.manifests.accounts();
            let readers = self.readers(api.clone(), Refresh::Check, None);
            let (summary, stop) = refresh::refresh(readers, &accounts, id, cancel).await;
            (run, refreshed, stopped) = (Some(id), Some(summary), stop);
        }
        let pass = Pass {
            manifests: job.manifests.clone(),
            options: self.policy.prune,
            backoff: self.policy.retry_backoff,
            now_ms: crate::clock::unix_millis(),
        };
        let (first, saved) = (pass.clone(), job.saved.clone());
        let outline = self
            .writer
            .view(move |source| outline::outline(&first, source, saved.as_deref()))
            .await??;
        let (planned, deferred) = (outline.summary, outline.deferred);
        let warnings = outline.warnings.clone();
        let idle = outline.idle();
        let mut summary = Summary::start(&outline.accounts, job.revision.clone(), job.trigger);
        summary.refresh = refreshed;
        if idle && !self.policy.audit_idle_runs && run.is_none() {
            summary.finish(
                &Report::not_started(&[]),
                &Default::default(),
                None,
                started,
            );
            return Ok(Reconciled {
                plan: planned,
                deferred,
                warnings,
                summary,
                stop: None,
            });
        }
        let run = match run {
            Some(run) => run,
            None => {
                self.writer
                    .begin_run(job.trigger.command(), job.revision.as_deref())
                    .await?
            }
        };
        let recorder = self.writer.recorder(run);
        let (report, probed, mut stop) = match stopped {
            // The refresh met a fatal answer: nothing is sent.
            Some(stop) => {
                let pending = pending(&outline.accounts, &Probed::default());
                (Report::not_started(&pending), Probed::default(), Some(stop))
            }
            None => self.send(outline, pass, api, &recorder, cancel).await,
        };
        summary.finish(&report, &probed, stop.as_ref(), started);
        if let Err(e) = recorder
            .record(after(&report, &probed, &summary, stop.is_none()))
            .await
        {
            stop.get_or_insert(Stop::Record(e));
        }
        let result = if summary.interrupted {
            RunOutcome::Interrupted
        } else {
            summary.result.into()
        };
        let record = RunSummary::Apply(Box::new(summary.clone()));
        let stop = match self.writer.finish_run(run, result, &record).await {
            Ok(()) => stop,
            Err(e) => stop.or(Some(Stop::Record(RecordError::Ledger(e)))),
        };
        Ok(Reconciled {
            plan: planned,
            deferred,
            warnings,
            summary,
            stop,
        })
    }

    /// Adopts, probes and executes; what happened, what the probe learnt, and why it stopped
    /// early.
    async fn send(
        &self,
        mut outline: Outline,
        pass: Pass,
        api: Arc<dyn Api>,
        recorder: &Recorder,
        cancel: &CancellationToken,
    ) -> (Report, Probed, Option<Stop>) {
        let not_started = |outline: &Outline, probed: Probed, stop: Stop| {
            let pending = pending(&outline.accounts, &probed);
            (Report::not_started(&pending), probed, Some(stop))
        };
        if let Err(e) = recorder.record(std::mem::take(&mut outline.adopt)).await {
            return not_started(&outline, Probed::default(), Stop::Record(e));
        }
        // Accounts with changes to send, and those declaring properties (whose live values
        // only the probe can tell): the same calls, 50 accounts each.
        let targets: Vec<String> = outline
            .accounts
            .iter()
            .filter(|a| a.add + a.remove > 0 || !a.declared.is_empty())
            .map(|a| a.official_account.clone())
            .collect();
        let probed = if targets.is_empty() {
            Probed::default()
        } else {
            let policy = &self.policy.retry;
            let limiter = self.pacer.of(Command::GetOfficialAccountInfo);
            match probe(api.as_ref(), limiter, recorder, &targets, policy, cancel).await {
                Ok(probed) => probed,
                Err(e) => return not_started(&outline, Probed::default(), Stop::Record(e)),
            }
        };
        if let Some(fatal) = probed.fatal.clone() {
            return not_started(&outline, probed, Stop::Fatal(fatal));
        }
        let declared: Vec<Record> = outline
            .accounts
            .iter()
            .filter(|a| !a.declared.is_empty())
            .filter_map(|a| {
                let info = probed.info.get(&a.official_account)?;
                matches!(info.known, Known::Usable | Known::Full)
                    .then(|| own::declared_record(a, info))
            })
            .collect();
        if let Err(e) = recorder.record(declared).await {
            return not_started(&outline, probed, Stop::Record(e));
        }
        let pending = pending(&outline.accounts, &probed);
        let total: u64 = pending.iter().map(|p| p.add + p.remove).sum();
        self.observer.sending(total);
        let context = executor::Context {
            api,
            pacer: self.pacer.clone(),
            recorder: recorder.clone(),
            policy: self.policy.retry,
            concurrency: self.policy.concurrency.max(1),
            drain: self.policy.drain,
            observer: self.observer.clone(),
        };
        let load = self.loader(pass, outline.accounts);
        let report = executor::execute(pending, load, &context, cancel).await;
        self.observer.sent();
        let stop = match (&report.fatal, &report.record_error) {
            (Some(fatal), _) => Some(Stop::Fatal(fatal.clone())),
            (None, Some(e)) => Some(Stop::Record(e.clone())),
            (None, None) => None,
        };
        (report, probed, stop)
    }

    /// Reads an account's work lists from the ledger, through the writer, when the
    /// executor gets to it.
    fn loader(&self, pass: Pass, accounts: Vec<Outlined>) -> Load {
        let writer = self.writer.clone();
        let accounts = Arc::new(accounts);
        Arc::new(move |index| {
            let (writer, pass, accounts) = (writer.clone(), pass.clone(), accounts.clone());
            Box::pin(async move {
                writer
                    .view(move |source| outline::lists(&pass, source, &accounts[index]))
                    .await
            })
        })
    }
}

/// The accounts of a run as the executor starts them, with what the probe learnt: how each
/// stands, and its own call (what differs now, or, for an account the probe did not
/// describe, what the plan said).
fn pending(accounts: &[Outlined], probed: &Probed) -> Vec<Pending> {
    accounts
        .iter()
        .map(|a| {
            let id = &a.official_account;
            let info = probed.info.get(id);
            let own = own::work(a, info);
            let known = info.map_or(Known::Usable, |i| i.known);
            let known = own::known_after(known, &own, id, info.and_then(|i| i.num));
            if known == Known::Full && a.add > 0 {
                tracing::warn!(account = %id, "official account is full; {} not sent", crate::words::count(a.add, "planned add is", "planned adds are"));
            }
            Pending {
                official_account: id.clone(),
                add: a.add,
                remove: a.remove,
                known,
                own,
            }
        })
        .collect()
}

/// What the ledger learns when a run is over: which of its intents are still in doubt, each
/// probed account's remote count as the run left it, and (when it was not stopped) which
/// accounts took everything they were sent and lose any stale limit or missing flag.
fn after(report: &Report, probed: &Probed, summary: &Summary, finished: bool) -> Vec<Record> {
    let mut records = vec![Record::Settle {
        in_doubt: report.in_doubt.clone(),
    }];
    for (account, tally) in summary.accounts.iter().zip(&report.tallies) {
        let id = &account.official_account;
        if let Some(num) = probed.info.get(id).and_then(|i| i.num) {
            let now = i64::try_from(num).unwrap_or(i64::MAX) + tally.count_change;
            records.push(Record::Account {
                account: id.clone(),
                fact: AccountFact::Counted {
                    subscriber_num: u64::try_from(now).unwrap_or(0),
                },
            });
        }
        let own_ok = account
            .properties
            .as_ref()
            .is_none_or(|p| p.result == own::OwnResult::Done);
        if finished && account.status == AccountStatus::Ok && account.failed.is_empty() && own_ok {
            records.push(Record::Account {
                account: id.clone(),
                fact: AccountFact::Healthy,
            });
        }
    }
    records
}

impl RunResult {
    pub(crate) fn name(self) -> &'static str {
        RunOutcome::from(self).as_str()
    }
}

impl From<RunResult> for RunOutcome {
    fn from(result: RunResult) -> RunOutcome {
        match result {
            RunResult::Converged => RunOutcome::Converged,
            RunResult::Partial => RunOutcome::Partial,
            RunResult::Failed => RunOutcome::Failed,
        }
    }
}

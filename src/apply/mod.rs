//! `subsync apply`: make the service match the plan, durably.
//!
//! Order of events: manifests are loaded (bad input stops here: nothing sent, nothing written);
//! the writer lock is taken; the plan is computed under it (or a saved plan is checked fresh);
//! an audit entry opens; one get_official_account_info call per 50 accounts learns the limits
//! (and stops the run at once on bad credentials); the executor sends the adds; the summary
//! closes the audit entry. See [`executor`] for what a crash or a stop signal may lose.

pub mod decide;
mod executor;
mod progress;
mod summary;
mod work;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use decide::Decision;
pub use decide::RetryPolicy;
pub use progress::Progress;
pub use summary::{AccountStatus, AccountSummary, FailedSubscriber, RunResult, Summary, Totals};
pub use work::{End, Known, Report, Tally, Work};

use crate::ledger::{AccountFact, Ledger, LedgerError, Record, RecordError, Recorder};
use crate::manifest::ManifestSet;
use crate::plan::{self, Plan, StalePlan};
use crate::tencent::ratelimit::RateLimiter;
use crate::tencent::{ApiError, Client};

/// The documented limit is 200 calls per second per command; staying just under it means a run
/// never provokes a rate-limit answer by itself.
pub const DEFAULT_QPS: u32 = 190;
/// Calls in flight needed to keep `qps` calls a second going (Little's law: in flight = rate ×
/// round trip), for round trips up to a second: a far region (250 ms) needs 48 at 190/s. Calls
/// beyond the rate only wait for the limiter, so the bound costs nothing on short paths.
pub fn default_concurrency(qps: u32) -> usize {
    (qps as usize).clamp(8, 1024)
}

#[derive(Debug, Clone)]
pub struct Options {
    pub qps: u32,
    pub concurrency: usize,
    pub policy: RetryPolicy,
    /// How long requests in flight may take to finish after Ctrl-C or a fatal answer.
    pub drain: Duration,
    pub revision: Option<String>,
    /// The PATH arguments, recorded with the plan.
    pub manifest_paths: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            qps: DEFAULT_QPS,
            concurrency: default_concurrency(DEFAULT_QPS),
            policy: RetryPolicy::default(),
            drain: Duration::from_secs(5),
            revision: None,
            manifest_paths: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Stale(#[from] StalePlan),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// A finished (or stopped) run.
#[derive(Debug)]
pub struct ApplyOutcome {
    pub summary: Summary,
    /// The answer that stopped the run, if one did.
    pub fatal: Option<ApiError>,
}

/// Applies `manifests` (or `saved`, after checking it is fresh) with `client`.
pub async fn apply(
    manifests: &ManifestSet,
    saved: Option<Plan>,
    state_dir: &std::path::Path,
    options: &Options,
    client: Arc<Client>,
    output: crate::settings::Output,
    cancel: &CancellationToken,
) -> Result<ApplyOutcome, ApplyError> {
    let started = Instant::now();
    let mut ledger = Ledger::open(state_dir, "apply")?;
    let snapshot = ledger.snapshot()?;
    let mut plan = plan::compute(manifests, &snapshot, options.manifest_paths.clone());
    if let Some(saved) = &saved {
        // What runs is the plan computed now; the saved one only has to agree with it.
        plan::verify(saved, &plan)?;
    }
    drop(snapshot);
    let run = ledger.begin_run("apply", options.revision.as_deref())?;
    let recorder = Arc::new(Recorder::start(ledger, run)?);

    let targets: Vec<String> = plan
        .accounts
        .iter()
        .filter(|a| !a.add.is_empty())
        .map(|a| a.official_account.clone())
        .collect();
    let mut requests = 0;
    let (info, fatal) = if targets.is_empty() {
        (HashMap::new(), None)
    } else {
        probe(&client, &recorder, &targets, &options.policy, &mut requests).await?
    };

    // Accounts only the ledger still knows (no manifest) have nothing to apply.
    plan.accounts.retain(|a| a.name.is_some());
    let total: u64 = plan.accounts.iter().map(|a| a.add.len() as u64).sum();
    let progress = Arc::new(Progress::new(total, output));
    // The add lists move into the executor; the summary takes its counts from the tallies.
    let work: Vec<Work> = plan
        .accounts
        .iter_mut()
        .map(|a| {
            let known = info.get(&a.official_account).map_or(Known::Usable, |i| i.known);
            if known == Known::Full && !a.add.is_empty() {
                tracing::warn!(account = %a.official_account, "official account is full; {} planned adds are not sent", a.add.len());
            }
            Work { official_account: a.official_account.clone(), add: std::mem::take(&mut a.add), known }
        })
        .collect();
    let report = if fatal.is_some() {
        Report::not_started(&work)
    } else {
        let context = executor::Context {
            client,
            limiter: Arc::new(RateLimiter::new(options.qps)),
            recorder: recorder.clone(),
            policy: options.policy,
            concurrency: options.concurrency.max(1),
            drain: options.drain,
            progress: progress.clone(),
        };
        executor::execute(work, &context, cancel).await
    };
    progress.finish();

    let mut ledger = Arc::into_inner(recorder).and_then(Recorder::finish);
    if ledger.is_none() {
        tracing::error!(
            "the ledger writer did not shut down cleanly; this run's audit entry stays unfinished"
        );
    }
    let fatal = fatal.or(report.fatal.clone());
    let stopped_by = fatal
        .as_ref()
        .map(|e| e.to_string())
        .or(report.record_error.as_ref().map(|e| e.to_string()));
    let accounts: Vec<AccountSummary> = plan
        .accounts
        .iter()
        .zip(&report.tallies)
        .map(|(a, t)| {
            let max = info.get(&a.official_account).and_then(|i| i.max);
            account_summary(a, t, max, report.interrupted)
        })
        .collect();
    let summary = Summary {
        format_version: summary::FORMAT_VERSION.into(),
        result: Summary::result_of(&accounts, stopped_by.is_some(), report.interrupted),
        interrupted: report.interrupted,
        duration_ms: started.elapsed().as_millis() as u64,
        requests: requests + report.requests,
        retries: report.retries,
        rate_limited: report.rate_limited,
        revision: options.revision.clone(),
        error: stopped_by,
        totals: Summary::totals_of(&accounts),
        accounts,
    };
    if let Some(ledger) = ledger.as_mut() {
        // Accounts that took everything they were sent lose any stale limit or missing flag.
        let healthy: Vec<Record> = summary
            .accounts
            .iter()
            .filter(|a| a.status == AccountStatus::Ok && a.failed.is_empty())
            .map(|a| Record::Account {
                account: a.official_account.clone(),
                fact: AccountFact::Healthy,
            })
            .collect();
        if report.record_error.is_none() && !healthy.is_empty() {
            ledger.record(run, &healthy)?;
        }
        let result = if report.interrupted {
            "interrupted"
        } else {
            result_name(summary.result)
        };
        ledger.finish_run(
            run,
            result,
            &serde_json::to_value(&summary).unwrap_or_default(),
        )?;
    }
    if let Some(e) = report.record_error {
        return Err(ApplyError::Record(e));
    }
    Ok(ApplyOutcome { summary, fatal })
}

fn result_name(result: RunResult) -> &'static str {
    match result {
        RunResult::Converged => "converged",
        RunResult::Partial => "partial",
        RunResult::Failed => "failed",
    }
}

fn account_summary(
    plan: &plan::AccountPlan,
    tally: &Tally,
    max: Option<u64>,
    interrupted: bool,
) -> AccountSummary {
    AccountSummary {
        official_account: plan.official_account.clone(),
        name: plan.name.clone(),
        status: match tally.end {
            End::Done => AccountStatus::Ok,
            End::Full => AccountStatus::LimitReached,
            End::Missing => AccountStatus::Missing,
            End::Invalid => AccountStatus::Failed,
            End::Unfinished if interrupted => AccountStatus::Interrupted,
            End::Unfinished => AccountStatus::Stopped,
        },
        planned_add: tally.planned,
        added: tally.added,
        already_subscribed: tally.already,
        failed: {
            let mut failed: Vec<FailedSubscriber> = tally
                .failed
                .iter()
                .map(|(s, code)| FailedSubscriber {
                    subscriber: s.clone(),
                    code: *code,
                })
                .collect();
            failed.sort_by(|a, b| a.subscriber.cmp(&b.subscriber));
            failed
        },
        not_added_limit: tally.not_added_limit,
        max_subscribers: max,
        remove_skipped: plan.remove.len() as u64,
    }
}

/// What get_official_account_info said about an account.
#[derive(Debug, Clone, Copy)]
struct Info {
    max: Option<u64>,
    known: Known,
}

/// Learns limits and counts, records them, and finds a fatal problem before any add is sent.
async fn probe(
    client: &Client,
    recorder: &Recorder,
    accounts: &[String],
    policy: &RetryPolicy,
    requests: &mut u64,
) -> Result<(HashMap<String, Info>, Option<ApiError>), RecordError> {
    let limiter = RateLimiter::new(DEFAULT_QPS);
    let mut attempt = 0;
    let items = loop {
        limiter.acquire().await;
        *requests += accounts.len().div_ceil(crate::tencent::api::MAX_INFO_IDS) as u64;
        let error = match client.account_info(accounts).await {
            Ok(items) => break items,
            Err(e) => e,
        };
        match decide::on_error(
            &error,
            0,
            attempt,
            client.has_answered(),
            policy,
            rand::random(),
        ) {
            Decision::Fatal => return Ok((HashMap::new(), Some(error))),
            Decision::Retry { delay, .. } => {
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            _ => {
                // Not knowing the limits is no reason to stop: the adds will find them.
                tracing::warn!(%error, "cannot read the accounts' limits; continuing without them");
                return Ok((HashMap::new(), None));
            }
        }
    };
    let mut info = HashMap::new();
    let mut records = Vec::new();
    for (account, item) in items {
        match item.status.error_code {
            0 => {
                let (max, num) = (item.max_subscriber_num, item.subscriber_num);
                let full = matches!((max, num), (Some(max), Some(num)) if num >= max);
                let known = if full { Known::Full } else { Known::Usable };
                info.insert(account.clone(), Info { max, known });
                records.push(Record::Account {
                    account: account.clone(),
                    fact: AccountFact::Info {
                        max_subscribers: max,
                        subscriber_num: num,
                    },
                });
                if full {
                    records.push(Record::Account {
                        account,
                        fact: AccountFact::LimitReached,
                    });
                }
            }
            // The executor records the fact and fails the planned adds with this code.
            130004 => {
                info.insert(
                    account,
                    Info {
                        max: None,
                        known: Known::Missing,
                    },
                );
            }
            code => {
                tracing::warn!(%account, code, "get_official_account_info could not describe the account")
            }
        }
    }
    recorder.record(records).await?;
    Ok((info, None))
}

//! Reading the live subscriber lists, so that drift in both directions is seen: subscribers
//! who came through other paths, and ones who left.
//!
//! For every account: its facts (get_official_account_info, 50 ids a call), then its list
//! (get_subscriber_info, 200 a page, following `Next`), each call through the shared read path
//! (paced, retried, cancellable). Pages are streamed to the ledger writer as they arrive, never
//! gathered here; the ledger then compares the staged list with what it had confirmed and
//! records the result in one transaction per account. Accounts are read concurrently: one
//! account's pages must follow each other, so reading several at once is what keeps the rate
//! limiter busy.
//!
//! A list is bounded by what its account can hold, never by what the answer claims: the
//! account's known MaxSubscriberNum (else `--max-subscribers`) caps the subscribers accepted
//! and the pages followed, and the count recorded is the count seen. An account whose refresh
//! fails (a cursor that repeats, goes backwards or never ends; a list longer than the account
//! can hold; an answer that breaks the protocol; an account missing remotely; retries spent)
//! is reported and left exactly as it was.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Stop;
use super::decide::RetryPolicy;
use super::probe;
use super::read::{self, ReadError};
use super::work::Known;
use crate::ledger::{Record, Refreshed, Writer};
use crate::quote::quote;
use crate::tencent::api::{Command, MAX_PAGE};
use crate::tencent::ratelimit::Pacer;
use crate::tencent::{Api, ApiError};

/// What a refresh did, as reported in the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RefreshSummary {
    /// Accounts whose live list was read and recorded.
    pub accounts: u64,
    /// Subscribers seen in those lists.
    pub seen: u64,
    /// Subscribed remotely although the ledger did not know: now recorded as confirmed.
    pub out_of_band_added: u64,
    /// Confirmed in the ledger but gone remotely: no longer confirmed.
    pub out_of_band_removed: u64,
    /// API calls made.
    pub requests: u64,
    /// Accounts whose refresh failed, left as they were.
    pub failed: Vec<RefreshFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RefreshFailure {
    pub official_account: String,
    pub error: String,
}

/// Why the live lists are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// `import`: what is found is adopted on purpose; subsync manages it from now on.
    Import,
    /// `plan --refresh`, `apply --refresh`, the daemon: what is found is recorded as drift; what
    /// appeared out of band is not subsync's to prune.
    Check,
}

impl Refresh {
    /// The command recorded in the audit log, for a refresh run on its own.
    pub fn command(self) -> &'static str {
        match self {
            Refresh::Import => "import",
            Refresh::Check => "plan --refresh",
        }
    }
}

/// What the readers share: the API, the pace of each command, the policy, the ledger, the
/// most subscribers an account is believed to hold when the service does not say, and whether
/// what is found is adopted.
pub struct Readers {
    pub api: Arc<dyn Api>,
    pub pacer: Arc<Pacer>,
    pub policy: RetryPolicy,
    pub writer: Writer,
    pub max_subscribers: u64,
    pub adopt: bool,
}

/// How many accounts are paged at the same time.
const ACCOUNTS_AT_ONCE: usize = 64;

/// Reads and records the live lists of `accounts` as part of audit entry `run`.
pub async fn refresh(
    readers: Arc<Readers>,
    accounts: &[String],
    run: i64,
    cancel: &CancellationToken,
) -> (RefreshSummary, Option<Stop>) {
    let mut summary = RefreshSummary::default();
    if accounts.is_empty() {
        return (summary, None);
    }
    let api = readers.api.as_ref();
    let limiter = readers.pacer.of(Command::GetOfficialAccountInfo);
    let (items, error, calls) =
        read::account_info(api, limiter, &readers.policy, cancel, accounts).await;
    summary.requests += calls.requests;
    match error {
        Some(ReadError::Fatal(e)) => return (summary, Some(Stop::Fatal(e))),
        Some(ReadError::Cancelled) => return (summary, None),
        Some(other) => {
            tracing::warn!(error = %other, "cannot read some accounts' facts; reading their lists without them")
        }
        None => {}
    }
    let mut limits: HashMap<String, Option<u64>> = HashMap::new();
    let mut gone = HashSet::new();
    let recorder = readers.writer.recorder(run);
    for (account, item) in items {
        let Some((facts, known)) = probe::facts(&account, &item) else {
            continue;
        };
        if matches!(known, Known::Missing | Known::Invalid) {
            let records = facts
                .into_iter()
                .map(|fact| Record::Account {
                    account: account.clone(),
                    fact,
                })
                .collect();
            if let Err(e) = recorder.record(records).await {
                return (summary, Some(Stop::Record(e)));
            }
            summary.failed.push(RefreshFailure {
                official_account: account.clone(),
                error: format!("the account does not exist remotely (error {}); nothing was changed for it and nothing will be pruned from it", item.code),
            });
            gone.insert(account);
            continue;
        }
        limits.insert(account, item.max_subscribers);
    }
    let stop = cancel.child_token();
    let mut tasks = JoinSet::new();
    let mut queue = accounts.iter().filter(|a| !gone.contains(a.as_str()));
    let mut fatal = None;
    loop {
        while tasks.len() < ACCOUNTS_AT_ONCE
            && let Some(account) = queue.next()
        {
            let max = limits.get(account).copied().flatten();
            let (readers, account, stop) = (readers.clone(), account.clone(), stop.clone());
            tasks.spawn(async move {
                let result = page_account(&readers, &account, max, run, &stop).await;
                (account, result)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let Ok((account, (result, requests))) = joined else {
            continue;
        };
        summary.requests += requests;
        match result {
            Ok(counts) => {
                summary.accounts += 1;
                summary.seen += counts.seen;
                summary.out_of_band_added += counts.added;
                summary.out_of_band_removed += counts.removed;
                if counts.added + counts.removed > 0 {
                    tracing::info!(%account, added = counts.added, removed = counts.removed, "drift found in the live list");
                }
            }
            Err(Failure::Fatal(e)) => {
                fatal.get_or_insert(e);
                stop.cancel();
            }
            Err(Failure::Cancelled) => {}
            Err(Failure::Account(error)) => {
                tracing::warn!(%account, %error, "cannot refresh the account; it is left as it was");
                summary.failed.push(RefreshFailure {
                    official_account: account,
                    error,
                });
            }
        }
    }
    summary
        .failed
        .sort_by(|a, b| a.official_account.cmp(&b.official_account));
    (summary, fatal.map(Stop::Fatal))
}

enum Failure {
    Fatal(ApiError),
    Cancelled,
    /// This account only.
    Account(String),
}

/// Forgets what was staged for `account`, which stays exactly as it was, and says why.
async fn abandon(writer: &Writer, account: &str, why: Failure) -> Failure {
    writer.refresh_start(account).await;
    why
}

/// Pages through one account's live list into the ledger; returns what was recorded and the
/// calls it took. `max` is the account's MaxSubscriberNum, when the service said.
async fn page_account(
    readers: &Readers,
    account: &str,
    max: Option<u64>,
    run: i64,
    cancel: &CancellationToken,
) -> (Result<Refreshed, Failure>, u64) {
    let writer = &readers.writer;
    writer.refresh_start(account).await;
    let api = readers.api.as_ref();
    let limiter = readers.pacer.of(Command::GetSubscriberInfo);
    let bound = max.unwrap_or(readers.max_subscribers);
    // Twice the pages a full account needs, and some: a list that goes on is broken.
    let max_pages = bound.div_ceil(u64::from(MAX_PAGE)) * 2 + 10;
    let mut next = String::new();
    let mut cursors: HashSet<String> = HashSet::new();
    let (mut pages, mut listed, mut requests) = (0u64, 0u64, 0u64);
    loop {
        let page = read::read(api, limiter, &readers.policy, cancel, || {
            api.subscriber_page(account, &next)
        })
        .await;
        requests += page.calls;
        let page = match page.value {
            Ok(page) => page,
            Err(error) => {
                let why = match error {
                    ReadError::Fatal(e) => Failure::Fatal(e),
                    ReadError::Cancelled => Failure::Cancelled,
                    ReadError::AccountGone(_, e) | ReadError::Failed(e) => {
                        Failure::Account(format!(
                            "reading the live list failed ({e}); nothing was changed for this account"
                        ))
                    }
                };
                return (Err(abandon(writer, account, why).await), requests);
            }
        };
        pages += 1;
        listed += page.subscribers.len() as u64;
        if listed > bound {
            let why = format!(
                "the live list goes past {bound} subscribers, more than the account can hold ({}); nothing was changed for this account",
                if max.is_some() {
                    "its MaxSubscriberNum"
                } else {
                    "--max-subscribers"
                }
            );
            return (
                Err(abandon(writer, account, Failure::Account(why)).await),
                requests,
            );
        }
        writer.observe(account, page.subscribers).await;
        if page.next.is_empty() {
            break;
        }
        if !cursors.insert(page.next.clone()) || page.next == next {
            let why = format!(
                "the live list's cursor {} came back a second time (it repeats or goes backwards); nothing was changed for this account",
                quote(&page.next)
            );
            return (
                Err(abandon(writer, account, Failure::Account(why)).await),
                requests,
            );
        }
        if pages >= max_pages {
            let why = format!(
                "the live list went on for {pages} pages, more than an account of {bound} subscribers needs; nothing was changed for this account"
            );
            return (
                Err(abandon(writer, account, Failure::Account(why)).await),
                requests,
            );
        }
        next = page.next;
    }
    match writer
        .refresh_finish(run, account, max, readers.adopt)
        .await
    {
        Ok(counts) => (Ok(counts), requests),
        Err(e) => (Err(Failure::Account(e.to_string())), requests),
    }
}

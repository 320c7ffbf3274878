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
//! An account whose refresh fails (a cursor that repeats, goes backwards or never ends; an
//! account missing remotely; retries spent) is reported and left exactly as it was.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Stop;
use super::decide::RetryPolicy;
use super::read::{ReadError, read};
use crate::ledger::{AccountFact, Record, Refreshed, Writer};
use crate::quote::quote;
use crate::tencent::ratelimit::RateLimiter;
use crate::tencent::{ApiError, Client};

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

/// What the readers share: the client, one limiter per command, the policy, the ledger.
pub struct Readers {
    pub client: Arc<Client>,
    pub info: Arc<RateLimiter>,
    pub pages: Arc<RateLimiter>,
    pub policy: RetryPolicy,
    pub writer: Writer,
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
    let calls = accounts.len().div_ceil(crate::tencent::api::MAX_INFO_IDS) as u64;
    let client = readers.client.clone();
    let facts = read(&client, &readers.info, &readers.policy, cancel, || {
        client.account_info(accounts)
    })
    .await;
    let mut known: HashMap<String, (Option<u64>, Option<u64>)> = HashMap::new();
    let mut missing = Vec::new();
    match facts {
        Ok(done) => {
            summary.requests += done.calls * calls;
            for (account, item) in done.value {
                match item.status.error_code {
                    0 => {
                        known.insert(account, (item.subscriber_num, item.max_subscriber_num));
                    }
                    130004 | 130007 => missing.push((account, item.status.error_code)),
                    code => {
                        tracing::warn!(%account, code, "get_official_account_info could not describe the account")
                    }
                }
            }
        }
        Err((ReadError::Fatal(e), tries)) => {
            summary.requests += tries * calls;
            return (summary, Some(Stop::Fatal(e)));
        }
        Err((ReadError::Cancelled, _)) => return (summary, None),
        Err((other, tries)) => {
            summary.requests += tries * calls;
            tracing::warn!(error = %other, "cannot read the accounts' facts; reading their lists without them");
        }
    }
    let recorder = readers.writer.recorder(run);
    for (account, code) in &missing {
        let fact = if *code == 130004 {
            AccountFact::Missing
        } else {
            AccountFact::Invalid
        };
        let record = Record::Account {
            account: account.clone(),
            fact,
        };
        if let Err(e) = recorder.record(vec![record]).await {
            return (summary, Some(Stop::Record(e)));
        }
        summary.failed.push(RefreshFailure {
            official_account: account.clone(),
            error: format!("the account does not exist remotely (error {code}); nothing was changed for it and nothing will be pruned from it"),
        });
    }
    let gone: HashSet<&str> = missing.iter().map(|(a, _)| a.as_str()).collect();
    let stop = cancel.child_token();
    let mut tasks = JoinSet::new();
    let mut queue = accounts.iter().filter(|a| !gone.contains(a.as_str()));
    let mut fatal = None;
    loop {
        while tasks.len() < ACCOUNTS_AT_ONCE
            && let Some(account) = queue.next()
        {
            let facts = known.get(account).copied().unwrap_or_default();
            let (readers, account, stop) = (readers.clone(), account.clone(), stop.clone());
            tasks.spawn(async move {
                let result = page_account(&readers, &account, facts, run, &stop).await;
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

/// Pages through one account's live list into the ledger; returns what was recorded and the
/// calls it took.
async fn page_account(
    readers: &Readers,
    account: &str,
    (num, max): (Option<u64>, Option<u64>),
    run: i64,
    cancel: &CancellationToken,
) -> (Result<Refreshed, Failure>, u64) {
    let writer = &readers.writer;
    writer.refresh_start(account);
    let client = &readers.client;
    let mut next = String::new();
    let mut cursors: HashSet<String> = HashSet::new();
    let (mut pages, mut requests) = (0u64, 0u64);
    let mut reported: Option<u64> = None;
    let failed = |why: Failure| {
        // Forget what was staged: the account stays exactly as it was.
        writer.refresh_start(account);
        why
    };
    loop {
        let page = read(client, &readers.pages, &readers.policy, cancel, || {
            client.subscriber_page(account, &next)
        })
        .await;
        let page = match page {
            Ok(done) => {
                requests += done.calls;
                done.value
            }
            Err((error, tries)) => {
                requests += tries;
                let why = match error {
                    ReadError::Fatal(e) => Failure::Fatal(e),
                    ReadError::Cancelled => Failure::Cancelled,
                    ReadError::AccountGone(e) | ReadError::Failed(e) => Failure::Account(format!(
                        "reading the live list failed ({e}); nothing was changed for this account"
                    )),
                };
                return (Err(failed(why)), requests);
            }
        };
        pages += 1;
        let total = *reported.get_or_insert(page.subscriber_num);
        writer.observe(
            account,
            page.subscriber_list
                .into_iter()
                .map(|s| s.subscriber_account)
                .collect(),
        );
        if page.next.is_empty() {
            break;
        }
        if !cursors.insert(page.next.clone()) || page.next == next {
            let why = format!(
                "the live list's cursor {} came back a second time (it repeats or goes backwards); nothing was changed for this account",
                quote(&page.next)
            );
            return (Err(failed(Failure::Account(why))), requests);
        }
        // Twice the pages the reported count needs, and some: a list that goes on is broken.
        let limit = total.div_ceil(u64::from(crate::tencent::api::MAX_PAGE)) * 2 + 10;
        if pages >= limit {
            let why = format!(
                "the live list went on for {pages} pages although the account reported {total} subscribers; nothing was changed for this account"
            );
            return (Err(failed(Failure::Account(why))), requests);
        }
        next = page.next;
    }
    let num = num.or(reported);
    match writer.refresh_finish(run, account, num, max).await {
        Ok(counts) => (Ok(counts), requests),
        Err(e) => (Err(Failure::Account(e.to_string())), requests),
    }
}

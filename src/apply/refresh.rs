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
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Stop;
use super::decide::RetryPolicy;
use super::probe;
use super::read::{self, ReadError};
use super::work::Known;
use crate::ledger::{Record, Refreshed, Writer};
use crate::manifest::ManifestSet;
use crate::quote::quote;
use crate::tencent::api::{Command, MAX_PAGE};
use crate::tencent::ratelimit::Pacer;
use crate::tencent::{Api, ApiError};
use crate::words::count;

/// What a refresh did, as reported in the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RefreshSummary {
    /// Accounts whose live list was read and recorded.
    pub(crate) accounts: u64,
    /// Subscribers seen in those lists.
    pub(crate) seen: u64,
    /// Subscribed remotely although the ledger did not know: now recorded as confirmed.
    pub(crate) out_of_band_added: u64,
    /// Confirmed in the ledger but gone remotely: no longer confirmed.
    pub(crate) out_of_band_removed: u64,
    /// API calls made.
    pub(crate) requests: u64,
    /// Accounts whose refresh failed, left as they were.
    pub(crate) failed: Vec<RefreshFailure>,
    /// What each account read recorded (for `import`'s report; not part of the summary).
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) read: Vec<AccountRead>,
}

/// What one account's refresh recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccountRead {
    pub(crate) official_account: String,
    pub(crate) counts: Refreshed,
    /// Of the live list, the subscribers the manifests list (when they were given).
    pub(crate) listed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct RefreshFailure {
    pub(crate) official_account: String,
    pub(crate) error: String,
}

/// Why the live lists are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// `import`: what is found is adopted on purpose; subsync manages it from now on.
    Import,
    /// `plan --refresh`, `apply --refresh`, the daemon: what is found is recorded as drift; what
    /// appeared out of band is not subsync's to prune.
    Check,
}

impl Refresh {
    /// The command recorded in the audit log, for a refresh run on its own.
    pub(crate) fn command(self) -> &'static str {
        match self {
            Refresh::Import => "import",
            Refresh::Check => "plan --refresh",
        }
    }
}

/// What the readers share: the API, the pace of each command, the policy, the ledger, the
/// most subscribers an account is believed to hold when the service does not say, whether
/// what is found is adopted, and the desired sets (to count what the manifests list).
pub(super) struct Readers {
    pub(crate) api: Arc<dyn Api>,
    pub(crate) pacer: Arc<Pacer>,
    pub(crate) policy: RetryPolicy,
    pub(crate) writer: Writer,
    pub(crate) max_subscribers: u64,
    pub(crate) adopt: bool,
    pub(crate) wanted: Option<Arc<ManifestSet>>,
    /// Most calls in flight (the run's concurrency): bounds the accounts paged at once.
    pub(crate) concurrency: usize,
}

/// How many accounts are paged at the same time, at most.
const ACCOUNTS_AT_ONCE: usize = 64;

/// How far apart the accounts paged together start. Started together, they page in turn and
/// all end within the last round trip, their closings (one transaction each, on the one
/// writer) queued after the last page; started apart, they end apart and most closings run
/// while other accounts still page. The limiter is full once enough accounts have started to
/// fill a round trip (ten at 50 ms), well before the last one starts.
const STAGGER: Duration = Duration::from_millis(10);

/// What get_official_account_info said about an account.
#[derive(Debug, Clone, Copy)]
enum Fact {
    /// Usable; its MaxSubscriberNum when the service said.
    Max(Option<u64>),
    /// Missing or invalid: its refresh is reported by the facts, not by its pages.
    Gone,
}

/// The facts of every account, once known (an account without an answer is absent).
type Facts = tokio::sync::watch::Receiver<Option<Arc<HashMap<String, Fact>>>>;

/// Reads and records the live lists of `accounts` as part of audit entry `run`. The accounts'
/// facts are asked for while their first pages are read: paging does not wait for them, and
/// a list is bounded by `--max-subscribers` until its account's MaxSubscriberNum is known.
pub(super) async fn refresh(
    readers: Arc<Readers>,
    accounts: &[String],
    run: i64,
    cancel: &CancellationToken,
) -> (RefreshSummary, Option<Stop>) {
    let mut summary = RefreshSummary::default();
    if accounts.is_empty() {
        return (summary, None);
    }
    let stop = cancel.child_token();
    let (told, facts) = tokio::sync::watch::channel(None);
    let learn = learn_facts(&readers, accounts, run, &stop, told);
    let page = page_all(&readers, accounts, run, &stop, facts);
    let ((asked, gone, facts_stop), (paged, paging_stop)) = tokio::join!(learn, page);
    summary.requests += asked;
    summary.failed.extend(gone);
    summary.requests += paged.requests;
    summary.accounts += paged.accounts;
    summary.seen += paged.seen;
    summary.out_of_band_added += paged.out_of_band_added;
    summary.out_of_band_removed += paged.out_of_band_removed;
    summary.failed.extend(paged.failed);
    summary.read = paged.read;
    summary
        .failed
        .sort_by(|a, b| a.official_account.cmp(&b.official_account));
    (summary, facts_stop.or(paging_stop))
}

/// Asks for the accounts' facts, records those that say an account is gone, and tells the
/// pagers. Returns the calls made, the gone accounts' failures, and a fatal answer.
async fn learn_facts(
    readers: &Readers,
    accounts: &[String],
    run: i64,
    stop: &CancellationToken,
    told: tokio::sync::watch::Sender<Option<Arc<HashMap<String, Fact>>>>,
) -> (u64, Vec<RefreshFailure>, Option<Stop>) {
    let api = readers.api.as_ref();
    let limiter = readers.pacer.of(Command::GetOfficialAccountInfo);
    let (items, error, calls) =
        read::account_info(api, limiter, &readers.policy, stop, accounts).await;
    let mut known = HashMap::new();
    let mut gone = Vec::new();
    let mut fatal = None;
    match error {
        Some(ReadError::Fatal(e)) => {
            stop.cancel();
            fatal = Some(Stop::Fatal(e));
        }
        Some(ReadError::Cancelled) | None => {}
        Some(other) => {
            tracing::warn!(error = %other, "cannot read some accounts' facts; reading their lists without them")
        }
    }
    let mut records = Vec::new();
    for (account, item) in items {
        let Some((facts, state)) = probe::facts(&account, &item) else {
            continue;
        };
        if !matches!(state, Known::Missing | Known::Invalid) {
            // The account's own fields are learnt with its facts (the subscriber count and
            // limit are recorded by its list's end).
            records.extend(probe::described(&account, &item));
            known.insert(account, Fact::Max(item.max_subscribers));
            continue;
        }
        records.extend(facts.into_iter().map(|fact| Record::Account {
            account: account.clone(),
            fact,
        }));
        gone.push(RefreshFailure {
            official_account: account.clone(),
            error: format!("the account does not exist remotely (error {}); nothing was changed for it and nothing will be pruned from it", item.code),
        });
        known.insert(account, Fact::Gone);
    }
    // Told even when the call failed, so that no pager waits for facts that will not come;
    // told before what was learnt is recorded, which the pagers do not wait for.
    let _ = told.send(Some(Arc::new(known)));
    if !records.is_empty()
        && let Err(e) = readers.writer.recorder(run).record(records).await
    {
        stop.cancel();
        fatal.get_or_insert(Stop::Record(e));
    }
    (calls.requests, gone, fatal)
}

/// Pages every account, several at once.
async fn page_all(
    readers: &Arc<Readers>,
    accounts: &[String],
    run: i64,
    stop: &CancellationToken,
    facts: Facts,
) -> (RefreshSummary, Option<Stop>) {
    let mut summary = RefreshSummary::default();
    let mut tasks = futures_util::stream::FuturesUnordered::new();
    let mut queue = accounts.iter();
    let mut fatal = None;
    // The accounts started before any has ended; a later one starts as another ends, at once.
    let mut first = 0u32;
    let mut ended = false;
    loop {
        while tasks.len() < ACCOUNTS_AT_ONCE.min(readers.concurrency.max(1))
            && let Some(account) = queue.next()
        {
            let facts = facts.clone();
            let wait = if ended {
                Duration::ZERO
            } else {
                STAGGER * first
            };
            first = first.saturating_add(1);
            tasks.push(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(wait) => {}
                }
                let result = page_account(readers, account, run, stop, facts).await;
                (account.clone(), result)
            });
        }
        let Some((account, (result, requests))) = futures_util::StreamExt::next(&mut tasks).await
        else {
            break;
        };
        ended = true;
        summary.requests += requests;
        match result {
            Ok(read) => {
                let counts = read.counts;
                summary.accounts += 1;
                summary.seen += counts.seen;
                summary.out_of_band_added += counts.added;
                summary.out_of_band_removed += counts.removed;
                if counts.added + counts.removed > 0 {
                    tracing::info!(%account, added = counts.added, removed = counts.removed, "drift found in the live list");
                }
                summary.read.push(read);
            }
            Err(ReadFailure::Fatal(e)) => {
                fatal.get_or_insert(e);
                stop.cancel();
            }
            Err(ReadFailure::Cancelled | ReadFailure::Gone) => {}
            Err(ReadFailure::Account(error)) => {
                tracing::warn!(%account, %error, "cannot refresh the account; it is left as it was");
                summary.failed.push(RefreshFailure {
                    official_account: account,
                    error,
                });
            }
        }
    }
    summary
        .read
        .sort_by(|a, b| a.official_account.cmp(&b.official_account));
    (summary, fatal.map(Stop::Fatal))
}

enum ReadFailure {
    Fatal(ApiError),
    Cancelled,
    /// The facts say the account is gone; they report it.
    Gone,
    /// This account only.
    Account(String),
}

/// Forgets what was staged for `account`, which stays exactly as it was, and says why.
async fn abandon(writer: &Writer, account: &str, why: ReadFailure) -> ReadFailure {
    writer.refresh_start(account).await;
    why
}

/// The account's fact, once the facts are known.
async fn fact_of(facts: &mut Facts, account: &str) -> Fact {
    match facts.wait_for(Option::is_some).await {
        Ok(known) => known
            .as_ref()
            .and_then(|k| k.get(account).copied())
            .unwrap_or(Fact::Max(None)),
        Err(_) => Fact::Max(None),
    }
}

/// Pages through one account's live list into the ledger; returns what was recorded and the
/// calls it took.
async fn page_account(
    readers: &Readers,
    account: &str,
    run: i64,
    cancel: &CancellationToken,
    mut facts: Facts,
) -> (Result<AccountRead, ReadFailure>, u64) {
    let writer = &readers.writer;
    writer.refresh_start(account).await;
    let api = readers.api.as_ref();
    let limiter = readers.pacer.of(Command::GetSubscriberInfo);
    let wanted = readers.wanted.as_ref().and_then(|m| {
        m.sets
            .binary_search_by(|s| s.official_account.as_str().cmp(account))
            .ok()
            .map(|i| &m.sets[i].subscribers)
    });
    let mut next = String::new();
    let mut cursors: HashSet<String> = HashSet::new();
    let (mut pages, mut listed, mut requests, mut in_manifest) = (0u64, 0u64, 0u64, 0u64);
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
                    ReadError::Fatal(e) => ReadFailure::Fatal(e),
                    ReadError::Cancelled => ReadFailure::Cancelled,
                    ReadError::AccountGone(..)
                        if matches!(fact_of(&mut facts, account).await, Fact::Gone) =>
                    {
                        ReadFailure::Gone
                    }
                    ReadError::AccountGone(e) | ReadError::Failed(e) => {
                        ReadFailure::Account(format!(
                            "reading the live list failed ({e}); nothing was changed for this account"
                        ))
                    }
                };
                return (Err(abandon(writer, account, why).await), requests);
            }
        };
        pages += 1;
        listed += page.subscribers.len() as u64;
        if let Some(wanted) = wanted {
            in_manifest += page
                .subscribers
                .iter()
                .filter(|id| wanted.contains(id))
                .count() as u64;
        }
        // The account's own limit once its facts are in, `--max-subscribers` until then.
        let max = match facts
            .borrow()
            .as_ref()
            .and_then(|k| k.get(account).copied())
        {
            Some(Fact::Max(max)) => max,
            _ => None,
        };
        let bound = max.unwrap_or(readers.max_subscribers);
        if listed > bound {
            let why = format!(
                "the live list goes past {}, more than the account can hold ({}); nothing was changed for this account",
                count(bound, "subscriber", "subscribers"),
                if max.is_some() {
                    "its MaxSubscriberNum"
                } else {
                    "--max-subscribers"
                }
            );
            return (
                Err(abandon(writer, account, ReadFailure::Account(why)).await),
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
                Err(abandon(writer, account, ReadFailure::Account(why)).await),
                requests,
            );
        }
        // Twice the pages a full account needs, and some: a list that goes on is broken.
        let max_pages = bound.div_ceil(u64::from(MAX_PAGE)) * 2 + 10;
        if pages >= max_pages {
            let why = format!(
                "the live list went on for {pages} pages, more than an account of {} needs; nothing was changed for this account",
                count(bound, "subscriber", "subscribers")
            );
            return (
                Err(abandon(writer, account, ReadFailure::Account(why)).await),
                requests,
            );
        }
        next = page.next;
    }
    let max = match fact_of(&mut facts, account).await {
        Fact::Gone => {
            return (
                Err(abandon(writer, account, ReadFailure::Gone).await),
                requests,
            );
        }
        Fact::Max(max) => max,
    };
    if max.is_some_and(|max| listed > max) {
        let why = format!(
            "the live list holds {}, more than the account's MaxSubscriberNum {}; nothing was changed for this account",
            count(listed, "subscriber", "subscribers"),
            max.unwrap_or_default()
        );
        return (
            Err(abandon(writer, account, ReadFailure::Account(why)).await),
            requests,
        );
    }
    match writer
        .refresh_finish(run, account, max, readers.adopt)
        .await
    {
        Ok(counts) => (
            Ok(AccountRead {
                official_account: account.to_owned(),
                counts,
                listed: in_manifest,
            }),
            requests,
        ),
        Err(e) => (
            Err(ReadFailure::Account(crate::errors::chain(&e))),
            requests,
        ),
    }
}

//! Before any add: one get_official_account_info call per 50 accounts learns each account's
//! limit and count (recorded in the ledger) and finds a fatal problem (bad credentials, an
//! unreachable endpoint) after a single request, before anything is sent.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use super::decide::RetryPolicy;
use super::read::{self, Calls, ReadError};
use super::work::Known;
use crate::ledger::{AccountFact, PropertyRecord, Record, RecordError, Recorder};
use crate::tencent::codes::{self, Gone};
use crate::tencent::ratelimit::RateLimiter;
use crate::tencent::{AccountInfo, Api, ApiError};

/// What get_official_account_info said about an account.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    pub(crate) max: Option<u64>,
    /// SubscriberNum before anything was sent.
    pub(crate) num: Option<u64>,
    pub(crate) known: Known,
    /// The account's own fields as described.
    pub(crate) properties: crate::properties::Properties,
}

/// What the probe found.
#[derive(Debug, Default)]
pub(crate) struct Probed {
    pub(crate) info: HashMap<String, Info>,
    /// The answer that must stop the run.
    pub(crate) fatal: Option<ApiError>,
    pub(crate) calls: Calls,
}

/// The ledger's record of what an item of get_official_account_info says about its account,
/// and what it means for sending; `None` for an item whose own error says nothing about the
/// account (it is logged and left alone).
pub(super) fn facts(account: &str, item: &AccountInfo) -> Option<(Vec<AccountFact>, Known)> {
    if item.code != 0 {
        return match codes::classify(item.code).account_gone() {
            Some(Gone::Missing) => Some((vec![AccountFact::Missing], Known::Missing)),
            Some(Gone::Invalid) => Some((vec![AccountFact::Invalid], Known::Invalid)),
            None => {
                tracing::warn!(
                    %account,
                    code = item.code,
                    "get_official_account_info could not describe the account"
                );
                None
            }
        };
    }
    let (max, num) = (item.max_subscribers, item.subscriber_num);
    let full = matches!((max, num), (Some(max), Some(num)) if num >= max);
    let mut recorded = vec![AccountFact::Info {
        max_subscribers: max,
        subscriber_num: num,
    }];
    if full {
        recorded.push(AccountFact::LimitReached);
    }
    Some((recorded, if full { Known::Full } else { Known::Usable }))
}

/// The ledger's record of the account's own fields an item of get_official_account_info
/// described, if it described any.
pub(super) fn described(account: &str, item: &AccountInfo) -> Option<Record> {
    (item.code == 0 && (!item.properties.is_empty() || item.owner.is_some())).then(|| {
        Record::Properties(Box::new(PropertyRecord {
            account: account.to_owned(),
            live: item.properties.clone(),
            owner: item.owner.clone(),
            declared: None,
            kept: None,
        }))
    })
}

/// Learns limits and counts of `accounts`, records them, and finds a fatal problem.
pub(super) async fn probe(
    api: &dyn Api,
    limiter: &RateLimiter,
    recorder: &Recorder,
    accounts: &[String],
    policy: &RetryPolicy,
    cancel: &CancellationToken,
) -> Result<Probed, RecordError> {
    let mut probed = Probed::default();
    let (items, error, calls) = read::account_info(api, limiter, policy, cancel, accounts).await;
    probed.calls = calls;
    match error {
        Some(ReadError::Fatal(e)) => {
            probed.fatal = Some(e);
            return Ok(probed);
        }
        Some(ReadError::Cancelled) => return Ok(probed),
        // Not knowing the limits is no reason to stop: the batches will find them.
        Some(other) => {
            tracing::warn!(error = %other, "cannot read some accounts' limits; continuing without them")
        }
        None => {}
    }
    let mut records = Vec::new();
    for (account, item) in items {
        let Some((recorded, known)) = facts(&account, &item) else {
            continue;
        };
        // A missing or invalid account is recorded by the executor, with its subscribers.
        if matches!(known, Known::Usable | Known::Full) {
            records.extend(recorded.into_iter().map(|fact| Record::Account {
                account: account.clone(),
                fact,
            }));
            records.extend(described(&account, &item));
        }
        probed.info.insert(
            account,
            Info {
                max: item.max_subscribers,
                num: item.subscriber_num,
                known,
                properties: item.properties,
            },
        );
    }
    recorder.record(records).await?;
    Ok(probed)
}

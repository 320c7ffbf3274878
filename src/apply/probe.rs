//! Before any add: one get_official_account_info call per 50 accounts learns each account's
//! limit and count (recorded in the ledger) and finds a fatal problem (bad credentials, an
//! unreachable endpoint) after a single request, before anything is sent.

use std::collections::HashMap;

use super::decide::{self, Decision, RetryPolicy};
use super::work::Known;
use crate::ledger::{AccountFact, Record, RecordError, Recorder};
use crate::tencent::ratelimit::RateLimiter;
use crate::tencent::{ApiError, Client};

/// What get_official_account_info said about an account.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    pub max: Option<u64>,
    pub known: Known,
}

/// What the probe found.
#[derive(Debug, Default)]
pub struct Probed {
    pub info: HashMap<String, Info>,
    /// The answer that must stop the run.
    pub fatal: Option<ApiError>,
    pub requests: u64,
    pub retries: u64,
}

/// Learns limits and counts of `accounts`, records them, and finds a fatal problem.
pub async fn probe(
    client: &Client,
    limiter: &RateLimiter,
    recorder: &Recorder,
    accounts: &[String],
    policy: &RetryPolicy,
) -> Result<Probed, RecordError> {
    let mut probed = Probed::default();
    let calls = accounts.len().div_ceil(crate::tencent::api::MAX_INFO_IDS) as u64;
    let mut attempt = 0;
    let items = loop {
        limiter.acquire().await;
        probed.requests += calls;
        let error = match client.account_info(accounts).await {
            Ok(items) => break items,
            Err(e) => e,
        };
        let reached = client.has_answered();
        match decide::on_error(&error, 0, attempt, reached, policy, rand::random()) {
            Decision::Fatal => {
                probed.fatal = Some(error);
                return Ok(probed);
            }
            Decision::Retry { delay, .. } => {
                tokio::time::sleep(delay).await;
                attempt += 1;
                probed.retries += 1;
            }
            _ => {
                // Not knowing the limits is no reason to stop: the adds will find them.
                tracing::warn!(%error, "cannot read the accounts' limits; continuing without them");
                return Ok(probed);
            }
        }
    };
    let mut records = Vec::new();
    for (account, item) in items {
        match item.status.error_code {
            0 => {
                let (max, num) = (item.max_subscriber_num, item.subscriber_num);
                let full = matches!((max, num), (Some(max), Some(num)) if num >= max);
                let known = if full { Known::Full } else { Known::Usable };
                probed.info.insert(account.clone(), Info { max, known });
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
                let info = Info {
                    max: None,
                    known: Known::Missing,
                };
                probed.info.insert(account, info);
            }
            code => {
                tracing::warn!(%account, code, "get_official_account_info could not describe the account")
            }
        }
    }
    recorder.record(records).await?;
    Ok(probed)
}

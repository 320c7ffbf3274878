//! Before any add: one get_official_account_info call per 50 accounts learns each account's
//! limit and count (recorded in the ledger) and finds a fatal problem (bad credentials, an
//! unreachable endpoint) after a single request, before anything is sent.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use super::decide::RetryPolicy;
use super::read::{ReadError, read};
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
    cancel: &CancellationToken,
) -> Result<Probed, RecordError> {
    let mut probed = Probed::default();
    let calls = accounts.len().div_ceil(crate::tencent::api::MAX_INFO_IDS) as u64;
    let answer = read(client, limiter, policy, cancel, || {
        client.account_info(accounts)
    })
    .await;
    let items = match answer {
        Ok(done) => {
            probed.requests = done.calls * calls;
            probed.retries = done.calls - 1;
            done.value
        }
        Err((error, tries)) => {
            probed.requests = tries * calls;
            probed.retries = tries.saturating_sub(1);
            match error {
                ReadError::Fatal(e) => probed.fatal = Some(e),
                ReadError::Cancelled => {}
                // Not knowing the limits is no reason to stop: the batches will find them.
                other => {
                    tracing::warn!(error = %other, "cannot read the accounts' limits; continuing without them")
                }
            }
            return Ok(probed);
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

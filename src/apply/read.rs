//! Calls that read (the probe, a page of a live list): each HTTP call paced by its command's
//! rate limiter, retried as [`decide::on_error`] says, cancellable at every wait. The one read
//! path, so that reads obey `--qps` and the retry policy exactly as batches do.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use super::decide::{self, Decision, RetryPolicy};
use crate::tencent::api::MAX_INFO_IDS;
use crate::tencent::ratelimit::RateLimiter;
use crate::tencent::{AccountInfo, Api, ApiError};

/// How long a limiter stays slowed after a rate-limit answer.
pub(crate) const SLOW_DOWN_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a read gave up.
#[derive(Debug, Clone)]
pub(crate) enum ReadError {
    /// Nothing else will work either: stop the run.
    Fatal(ApiError),
    /// The account does not exist (130004) or its id is invalid (130007).
    AccountGone(ApiError),
    /// This read failed for good (retries spent, or a code no retry can fix).
    Failed(ApiError),
    Cancelled,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Fatal(e) | ReadError::AccountGone(e) | ReadError::Failed(e) => {
                write!(f, "{e}")
            }
            ReadError::Cancelled => f.write_str("stopped by a signal"),
        }
    }
}

/// How a read went: its value (or why it gave up), and the HTTP calls it took.
pub(crate) struct Read<T> {
    pub(crate) value: Result<T, ReadError>,
    pub(crate) calls: u64,
}

/// Runs `call` (one HTTP call) until it answers, waiting for `limiter` before each attempt.
pub(crate) async fn read<T, F, Fut>(
    api: &dyn Api,
    limiter: &RateLimiter,
    policy: &RetryPolicy,
    cancel: &CancellationToken,
    mut call: F,
) -> Read<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0u32;
    loop {
        let calls = u64::from(attempt);
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Read { value: Err(ReadError::Cancelled), calls },
            () = limiter.acquire() => {}
        }
        let calls = calls + 1;
        let error = match call().await {
            Ok(value) => {
                return Read {
                    value: Ok(value),
                    calls,
                };
            }
            Err(e) => e,
        };
        let reached = api.has_answered();
        let gave_up = match decide::on_error(&error, 0, attempt, reached, policy, rand::random()) {
            Decision::Retry { delay, slow_down } => {
                if slow_down {
                    limiter.slow_down(SLOW_DOWN_FOR);
                }
                tokio::select! {
                    () = cancel.cancelled() => ReadError::Cancelled,
                    () = tokio::time::sleep(delay) => {
                        attempt += 1;
                        continue;
                    }
                }
            }
            Decision::Fatal => ReadError::Fatal(error),
            Decision::AccountGone(_) => ReadError::AccountGone(error),
            _ => ReadError::Failed(error),
        };
        return Read {
            value: Err(gave_up),
            calls,
        };
    }
}

/// What get_official_account_info said about `accounts`, asked 50 at a time: one paced,
/// retried read per call, so that a failed call is sent again alone. Accounts whose call gave
/// up are left out; the first reason it gave up for is returned with what the others said.
pub(crate) async fn account_info(
    api: &dyn Api,
    limiter: &RateLimiter,
    policy: &RetryPolicy,
    cancel: &CancellationToken,
    accounts: &[String],
) -> (Vec<(String, AccountInfo)>, Option<ReadError>, Calls) {
    let mut items = Vec::with_capacity(accounts.len());
    let mut error = None;
    let mut calls = Calls::default();
    for chunk in accounts.chunks(MAX_INFO_IDS) {
        let done = read(api, limiter, policy, cancel, || api.account_info(chunk)).await;
        calls.add(done.calls);
        match done.value {
            Ok(found) => items.extend(found),
            Err(e) => {
                let stop = matches!(e, ReadError::Fatal(_) | ReadError::Cancelled);
                error.get_or_insert(e);
                if stop {
                    break;
                }
            }
        }
    }
    (items, error, calls)
}

/// HTTP calls a read made, and how many of them were retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Calls {
    pub(crate) requests: u64,
    pub(crate) retries: u64,
}

impl Calls {
    /// Counts one read of `calls` HTTP calls.
    pub(crate) fn add(&mut self, calls: u64) {
        self.requests += calls;
        self.retries += calls.saturating_sub(1);
    }
}

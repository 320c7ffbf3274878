//! Calls that read (the probe, a page of a live list): paced by their command's rate limiter,
//! retried as [`decide::on_error`] says, cancellable at every wait. The one read path, so that
//! reads obey `--qps` and the retry policy exactly as batches do.

use std::future::Future;

use tokio_util::sync::CancellationToken;

use super::decide::{self, Decision, RetryPolicy};
use crate::tencent::ratelimit::RateLimiter;
use crate::tencent::{ApiError, Client};

/// Why a read gave up.
#[derive(Debug, Clone)]
pub enum ReadError {
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

/// How a read went: its value, and the calls it took.
pub struct Read<T> {
    pub value: T,
    pub calls: u64,
}

/// Runs `call` until it answers, waiting for `limiter` before each attempt.
pub async fn read<T, F, Fut>(
    client: &Client,
    limiter: &RateLimiter,
    policy: &RetryPolicy,
    cancel: &CancellationToken,
    mut call: F,
) -> Result<Read<T>, (ReadError, u64)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0u32;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err((ReadError::Cancelled, u64::from(attempt))),
            () = limiter.acquire() => {}
        }
        let error = match call().await {
            Ok(value) => {
                return Ok(Read {
                    value,
                    calls: u64::from(attempt) + 1,
                });
            }
            Err(e) => e,
        };
        let calls = u64::from(attempt) + 1;
        let reached = client.has_answered();
        match decide::on_error(&error, 0, attempt, reached, policy, rand::random()) {
            Decision::Retry { delay, slow_down } => {
                if slow_down {
                    limiter.slow_down(std::time::Duration::from_secs(10));
                }
                tokio::select! {
                    () = cancel.cancelled() => return Err((ReadError::Cancelled, calls)),
                    () = tokio::time::sleep(delay) => {}
                }
                attempt += 1;
            }
            Decision::Fatal => return Err((ReadError::Fatal(error), calls)),
            Decision::AccountGone { .. } => return Err((ReadError::AccountGone(error), calls)),
            _ => return Err((ReadError::Failed(error), calls)),
        }
    }
}

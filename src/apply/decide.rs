//! The one place that decides what to do with the answer to a batch (add_subscriber or
//! delete_subscriber) or to any other call (the probe, a page of a refresh).
//!
//! A pure function of (operation, batch, answer, attempt, whether the endpoint ever answered,
//! policy, jitter), tested code by code; the executor and the readers only carry decisions out.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::ledger::Op;
use crate::tencent::api::{SubscriberResult, result};
use crate::tencent::codes::{self, ACCOUNT_FULL, Gone};
use crate::tencent::{ApiError, ErrorClass};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Attempts per batch for retryable faults before its members are recorded as failed.
    pub(crate) max_attempts: u32,
    /// Attempts per batch when the server keeps saying "too many requests".
    pub(crate) max_rate_limited_attempts: u32,
    /// Attempts of a call whose answers keep breaking the protocol: enough for a passing
    /// glitch, few enough that a hostile path costs seconds, not minutes.
    pub(crate) max_malformed_attempts: u32,
    /// Attempts of a call that cannot connect before the endpoint has ever answered: enough to
    /// ride out a network path that is still coming up, few enough to stop within a second.
    pub(crate) max_unreachable_attempts: u32,
    /// Pauses between attempts of one call.
    pub(crate) backoff: Backoff,
    /// The longest pause a server's Retry-After is honoured for; a longer one is cut to this.
    pub(crate) max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            // 10 attempts span up to about 20 s of backoff: long enough to ride out a blip, short
            // enough that a batch the server keeps refusing is recorded and the run moves on.
            max_attempts: 10,
            max_rate_limited_attempts: 20,
            max_malformed_attempts: 3,
            max_unreachable_attempts: 3,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The batch is done: record these per-subscriber outcomes.
    Record {
        /// Result 1: added, or removed.
        done: Vec<String>,
        /// Result 2: already subscribed (drift: the ledger did not know), or was not subscribed.
        unchanged: Vec<String>,
        /// Result 0 (with the item's code when it has one, else 0).
        failed: Vec<(String, i64)>,
        /// Items of an add that carried 130006: not added because the account is full.
        limit: Vec<String>,
    },
    /// Send the same batch again after `delay`; `slow_down` asks the limiter to back off.
    Retry { delay: Duration, slow_down: bool },
    /// Split the batch in halves and send each.
    Split,
    /// Every member failed with `code`: record them and move on.
    FailAll { code: i64 },
    /// A single subscriber got 130006: the account is full; stop sending to it.
    AccountFull,
    /// 130004 (missing) or 130007 (invalid id): skip the account.
    AccountGone(Gone),
    /// Credentials, permission or service problem: stop the run.
    Fatal,
}

/// Decides on the answer to one batch. `attempt` counts from 0 for the first send; `reached`
/// says whether the endpoint has answered any call yet.
pub(crate) fn decide(
    op: Op,
    members: &[String],
    answer: &Result<Vec<SubscriberResult>, ApiError>,
    attempt: u32,
    reached: bool,
    policy: &RetryPolicy,
    jitter: f64,
) -> Decision {
    match answer {
        Ok(items) => record(op, members, items),
        Err(error) if op == Op::Remove && error.class() == ErrorClass::AccountFull => {
            // A removal cannot fill an account; whatever the code means here, it is no limit.
            Decision::FailAll { code: error.code() }
        }
        Err(error) => on_error(error, members.len(), attempt, reached, policy, jitter),
    }
}

/// Decides on a failed call that carried `members` subscribers (0 for calls that carry none,
/// such as get_official_account_info).
pub(crate) fn on_error(
    error: &ApiError,
    members: usize,
    attempt: u32,
    reached: bool,
    policy: &RetryPolicy,
    jitter: f64,
) -> Decision {
    let code = error.code();
    let pause = policy.backoff.jittered(attempt, jitter);
    let retry_or_fail = |limit: u32, slow_down: bool, delay: Duration| {
        if attempt + 1 < limit {
            Decision::Retry { delay, slow_down }
        } else {
            Decision::FailAll { code }
        }
    };
    let class = error.class();
    if let Some(gone) = class.account_gone() {
        return Decision::AccountGone(gone);
    }
    match class {
        ErrorClass::Retryable => retry_or_fail(policy.max_attempts, false, pause),
        ErrorClass::Malformed => retry_or_fail(policy.max_malformed_attempts, false, pause),
        ErrorClass::Unreachable if reached => retry_or_fail(policy.max_attempts, false, pause),
        // Never answered: a wrong endpoint or a closed path, not a blip. Recording every
        // subscriber as failed would only hide that.
        ErrorClass::Unreachable if attempt + 1 < policy.max_unreachable_attempts => {
            Decision::Retry {
                delay: pause,
                slow_down: false,
            }
        }
        ErrorClass::Unreachable => Decision::Fatal,
        // Wait as long as the server asked (within reason), and at least the backoff.
        ErrorClass::RateLimited => {
            let asked = error.retry_after().unwrap_or_default();
            let delay = pause.max(asked.min(policy.max_retry_after));
            retry_or_fail(policy.max_rate_limited_attempts, true, delay)
        }
        ErrorClass::AccountFull if members > 1 => Decision::Split,
        ErrorClass::AccountFull => Decision::AccountFull,
        ErrorClass::FollowLimit | ErrorClass::InvalidRequest
            if codes::member_caused(code) && members > 1 =>
        {
            Decision::Split
        }
        ErrorClass::FollowLimit | ErrorClass::InvalidRequest | ErrorClass::Unknown => {
            Decision::FailAll { code }
        }
        // The client already renewed the UserSig once; a second 70001 means the clock or key is wrong.
        ErrorClass::ExpiredSig | ErrorClass::Fatal => Decision::Fatal,
        // Handled above, with the account they are about.
        ErrorClass::AccountMissing | ErrorClass::AccountInvalid => Decision::FailAll { code },
    }
}

/// What to do after an account's own call (create_official_account,
/// modify_official_account_base_info) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnDecision {
    /// Send the same call again after `delay`; `slow_down` asks the limiter to back off.
    Retry { delay: Duration, slow_down: bool },
    /// This account's call failed for good with `code`: reported for the account, never
    /// retried in a loop (130007 a wrong id, 130008 an id in use, 20006 refused by the app's
    /// callback, 6017 a field the service refuses, 130004 an account gone meanwhile).
    Failed { code: i64 },
    /// Credentials, permission or service problem: stop the run.
    Fatal,
}

/// Decides on a failed own call: the same transient, rate-limit and fatal handling as every
/// other call, and no code about an account or its fields is ever retried.
pub(crate) fn on_own_error(
    error: &ApiError,
    attempt: u32,
    reached: bool,
    policy: &RetryPolicy,
    jitter: f64,
) -> OwnDecision {
    match on_error(error, 0, attempt, reached, policy, jitter) {
        Decision::Retry { delay, slow_down } => OwnDecision::Retry { delay, slow_down },
        Decision::Fatal => OwnDecision::Fatal,
        Decision::FailAll { code } => OwnDecision::Failed { code },
        Decision::AccountGone(_)
        | Decision::AccountFull
        | Decision::Split
        | Decision::Record { .. } => OwnDecision::Failed { code: error.code() },
    }
}

fn record(op: Op, members: &[String], items: &[SubscriberResult]) -> Decision {
    let (mut done, mut unchanged, mut failed, mut limit) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for member in members {
        // Items are matched by account, not position: the order of the answer is not documented.
        let item = items.iter().find(|i| &i.subscriber_account == member);
        match item.map(|i| (i.result, i.error_code)) {
            Some((result::DONE, _)) => done.push(member.clone()),
            Some((result::UNCHANGED, _)) => unchanged.push(member.clone()),
            Some((_, Some(ACCOUNT_FULL))) if op == Op::Add => limit.push(member.clone()),
            Some((_, code)) => failed.push((member.clone(), code.unwrap_or(0))),
            // Not in the answer at all: it was not done; a later run tries again.
            None => failed.push((member.clone(), 0)),
        }
    }
    Decision::Record {
        done,
        unchanged,
        failed,
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tencent::api::Command;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u{i}")).collect()
    }

    fn service(code: i64) -> Result<Vec<SubscriberResult>, ApiError> {
        Err(ApiError::Service {
            command: Command::AddSubscriber,
            code,
            info: String::new(),
        })
    }

    fn http(status: u16, retry_after: Option<Duration>) -> Result<Vec<SubscriberResult>, ApiError> {
        Err(ApiError::Http {
            command: Command::AddSubscriber,
            status,
            retry_after,
        })
    }

    fn item(id: &str, result: i64, code: Option<i64>) -> SubscriberResult {
        SubscriberResult {
            subscriber_account: id.into(),
            result,
            error_code: code,
        }
    }

    const P: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        max_rate_limited_attempts: 5,
        max_malformed_attempts: 3,
        max_unreachable_attempts: 2,
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
        max_retry_after: Duration::from_secs(60),
    };

    #[test]
    fn results_one_two_and_zero_are_added_drift_and_failed() {
        let answer = Ok(vec![
            item("u1", 2, None),
            item("u0", 1, None),
            item("u2", 0, None),
            item("u3", 0, Some(130010)),
        ]);
        assert_eq!(
            decide(Op::Add, &members(5), &answer, 0, true, &P, 0.0),
            Decision::Record {
                done: vec!["u0".into()],
                unchanged: vec!["u1".into()],
                failed: vec![("u2".into(), 0), ("u3".into(), 130010), ("u4".into(), 0)],
                limit: vec![],
            }
        );
    }

    #[test]
    fn an_item_level_account_full_is_a_limit_not_a_failure() {
        let answer = Ok(vec![item("u0", 1, None), item("u1", 0, Some(130006))]);
        let Decision::Record { limit, failed, .. } =
            decide(Op::Add, &members(2), &answer, 0, true, &P, 0.0)
        else {
            panic!()
        };
        assert_eq!((limit, failed), (vec!["u1".to_string()], vec![]));
    }

    #[test]
    fn removals_count_removed_and_not_subscribed_as_done_and_know_no_limit() {
        let answer = Ok(vec![
            item("u0", 1, None),
            item("u1", 2, None),
            item("u2", 0, Some(130006)),
        ]);
        assert_eq!(
            decide(Op::Remove, &members(3), &answer, 0, true, &P, 0.0),
            Decision::Record {
                done: vec!["u0".into()],
                unchanged: vec!["u1".into()],
                failed: vec![("u2".into(), 130006)],
                limit: vec![],
            }
        );
        assert_eq!(
            decide(Op::Remove, &members(3), &service(130006), 0, true, &P, 0.0),
            Decision::FailAll { code: 130006 }
        );
        // An undocumented code fails the batch once; it is never retried in a loop.
        assert_eq!(
            decide(Op::Remove, &members(3), &service(424242), 0, true, &P, 0.0),
            Decision::FailAll { code: 424242 }
        );
        assert_eq!(
            decide(Op::Remove, &members(3), &service(130004), 0, true, &P, 0.0),
            Decision::AccountGone(Gone::Missing)
        );
    }

    #[test]
    fn retryable_codes_and_faults_retry_with_backoff_then_fail() {
        for code in [10004, 20005, 60008] {
            assert_eq!(
                decide(Op::Add, &members(2), &service(code), 0, true, &P, 0.0),
                Decision::Retry {
                    delay: Duration::from_millis(50),
                    slow_down: false
                },
                "{code}"
            );
            assert_eq!(
                decide(Op::Add, &members(2), &service(code), 2, true, &P, 0.0),
                Decision::FailAll { code },
                "{code}"
            );
        }
        let http = http(502, None);
        assert!(matches!(
            decide(Op::Add, &members(2), &http, 0, true, &P, 0.5),
            Decision::Retry {
                slow_down: false,
                ..
            }
        ));
        assert_eq!(
            decide(Op::Add, &members(2), &http, 2, true, &P, 0.5),
            Decision::FailAll { code: -502 }
        );
        let dropped = Err(ApiError::Transport {
            command: Command::AddSubscriber,
            message: "closed".into(),
            timeout: false,
        });
        assert!(matches!(
            decide(Op::Add, &members(2), &dropped, 1, true, &P, 0.5),
            Decision::Retry { .. }
        ));
    }

    #[test]
    fn an_endpoint_that_never_answered_is_fatal_after_a_brief_retry() {
        let refused = Err(ApiError::Unreachable {
            command: Command::AddSubscriber,
            endpoint: "https://x/".into(),
            message: "connection refused".into(),
        });
        assert!(matches!(
            decide(Op::Add, &members(2), &refused, 0, false, &P, 0.0),
            Decision::Retry { .. }
        ));
        assert_eq!(
            decide(Op::Add, &members(2), &refused, 1, false, &P, 0.0),
            Decision::Fatal
        );
        // Once it has answered, a refused connection is a blip with the usual retries.
        assert!(matches!(
            decide(Op::Add, &members(2), &refused, 1, true, &P, 0.0),
            Decision::Retry { .. }
        ));
        assert_eq!(
            decide(Op::Add, &members(2), &refused, 2, true, &P, 0.0),
            Decision::FailAll { code: -1 }
        );
    }

    #[test]
    fn rate_limit_codes_retry_longer_and_slow_down() {
        for code in [60007, 60011, 60018, 60019] {
            assert!(
                matches!(
                    decide(Op::Add, &members(2), &service(code), 3, true, &P, 0.0),
                    Decision::Retry {
                        slow_down: true,
                        ..
                    }
                ),
                "{code}"
            );
            assert_eq!(
                decide(Op::Add, &members(2), &service(code), 4, true, &P, 0.0),
                Decision::FailAll { code },
                "{code}"
            );
        }
    }

    #[test]
    fn http_429_waits_as_asked_within_the_cap_and_slows_down() {
        assert_eq!(
            decide(
                Op::Add,
                &members(2),
                &http(429, Some(Duration::from_secs(7))),
                0,
                true,
                &P,
                0.0
            ),
            Decision::Retry {
                delay: Duration::from_secs(7),
                slow_down: true
            }
        );
        assert_eq!(
            decide(
                Op::Add,
                &members(2),
                &http(429, Some(Duration::from_secs(3600))),
                0,
                true,
                &P,
                0.0
            ),
            Decision::Retry {
                delay: Duration::from_secs(60),
                slow_down: true
            }
        );
        // Without Retry-After, the usual backoff.
        assert_eq!(
            decide(Op::Add, &members(2), &http(429, None), 0, true, &P, 0.0),
            Decision::Retry {
                delay: Duration::from_millis(50),
                slow_down: true
            }
        );
        assert_eq!(
            decide(Op::Add, &members(2), &http(429, None), 4, true, &P, 0.0),
            Decision::FailAll { code: -429 }
        );
    }

    #[test]
    fn a_protocol_breaking_answer_is_retried_briefly_then_recorded_as_unreadable() {
        let broken = Err(ApiError::Protocol {
            command: Command::AddSubscriber,
            detail: "extra items".into(),
        });
        assert!(matches!(
            decide(Op::Add, &members(2), &broken, 0, true, &P, 0.0),
            Decision::Retry {
                slow_down: false,
                ..
            }
        ));
        assert_eq!(
            decide(Op::Add, &members(2), &broken, 2, true, &P, 0.0),
            Decision::FailAll { code: -2 }
        );
    }

    #[test]
    fn member_caused_codes_split_until_one_member_is_left() {
        let by_member: Vec<i64> = codes::TABLE
            .iter()
            .filter(|c| c.member_caused)
            .map(|c| c.code)
            .collect();
        assert_eq!(by_member, [6017, 20001, 130010]);
        for code in by_member {
            assert_eq!(
                decide(Op::Add, &members(2), &service(code), 0, true, &P, 0.0),
                Decision::Split,
                "{code}"
            );
            assert_eq!(
                decide(Op::Add, &members(1), &service(code), 0, true, &P, 0.0),
                Decision::FailAll { code },
                "{code}"
            );
        }
    }

    #[test]
    fn full_account_is_filled_by_splitting_then_stopped() {
        assert_eq!(
            decide(Op::Add, &members(100), &service(130006), 0, true, &P, 0.0),
            Decision::Split
        );
        assert_eq!(
            decide(Op::Add, &members(1), &service(130006), 0, true, &P, 0.0),
            Decision::AccountFull
        );
    }

    #[test]
    fn missing_and_invalid_accounts_are_skipped() {
        assert_eq!(
            decide(Op::Add, &members(3), &service(130004), 0, true, &P, 0.0),
            Decision::AccountGone(Gone::Missing)
        );
        assert_eq!(
            decide(Op::Add, &members(3), &service(130007), 0, true, &P, 0.0),
            Decision::AccountGone(Gone::Invalid)
        );
    }

    #[test]
    fn other_permanent_codes_fail_the_batch_without_splitting() {
        for code in [60002, 60003, 60009, 130008, 20006, 424242] {
            assert_eq!(
                decide(Op::Add, &members(4), &service(code), 0, true, &P, 0.0),
                Decision::FailAll { code },
                "{code}"
            );
        }
    }

    fn own(code: i64, attempt: u32) -> OwnDecision {
        let error = ApiError::Service {
            command: Command::CreateOfficialAccount,
            code,
            info: String::new(),
        };
        on_own_error(&error, attempt, true, &P, 0.0)
    }

    #[test]
    fn an_own_call_refused_for_its_account_or_fields_fails_once_never_in_a_loop() {
        for code in [
            130004, 130006, 130007, 130008, 130010, 20006, 6017, 20001, 60003, 424242,
        ] {
            assert_eq!(own(code, 0), OwnDecision::Failed { code }, "{code}");
        }
    }

    #[test]
    fn an_own_call_rides_out_faults_and_rate_limits_then_gives_up() {
        for code in [10004, 20005, 60008] {
            assert!(
                matches!(
                    own(code, 0),
                    OwnDecision::Retry {
                        slow_down: false,
                        ..
                    }
                ),
                "{code}"
            );
            assert_eq!(own(code, 2), OwnDecision::Failed { code }, "{code}");
        }
        for code in [60007, 60011, 60018, 60019] {
            assert!(
                matches!(
                    own(code, 0),
                    OwnDecision::Retry {
                        slow_down: true,
                        ..
                    }
                ),
                "{code}"
            );
            assert_eq!(own(code, 4), OwnDecision::Failed { code }, "{code}");
        }
    }

    #[test]
    fn an_own_call_stops_the_run_on_credential_permission_and_service_codes() {
        for code in [130002, 131000, 60004, 60010, 70001, 70009, 70050] {
            assert_eq!(own(code, 0), OwnDecision::Fatal, "{code}");
        }
    }

    #[test]
    fn credential_permission_and_service_codes_stop_the_run() {
        for code in [
            130002, 131000, 60004, 60005, 60006, 60010, 60016, 60020, 60021, 70001, 70003, 70009,
            70013, 70014, 70016, 70020, 70050,
        ] {
            assert_eq!(
                decide(Op::Add, &members(2), &service(code), 0, true, &P, 0.0),
                Decision::Fatal,
                "{code}"
            );
        }
    }
}

//! The apply summary: what happened, per account and in total. Printed as text or JSON
//! (`schema/summary.schema.json`, generated from these types) and stored in the audit log.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: &str = "1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "subsync apply summary",
    description = "The output of `subsync apply --format json`."
)]
pub struct Summary {
    /// Version of this format; "1".
    pub format_version: String,
    pub result: RunResult,
    /// True when Ctrl-C or SIGTERM stopped the run early.
    pub interrupted: bool,
    pub duration_ms: u64,
    /// API calls made.
    pub requests: u64,
    /// Batches sent again after a retryable fault or a rate-limit answer.
    pub retries: u64,
    /// Rate-limit answers received.
    pub rate_limited: u64,
    /// The manifests' revision (git commit or --revision), when known.
    pub revision: Option<String>,
    /// Why the run stopped, when it failed.
    pub error: Option<String>,
    pub accounts: Vec<AccountSummary>,
    pub totals: Totals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// Every desired subscriber is confirmed.
    Converged,
    /// Finished (or interrupted), but some subscribers could not be added.
    Partial,
    /// Stopped by a fatal error (credentials, permission, service, ledger).
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Ok,
    /// The account reached MaxSubscriberNum (130006); see `not_added_limit`.
    LimitReached,
    /// The account does not exist (130004).
    Missing,
    /// The account id is invalid (130007).
    Failed,
    /// Ctrl-C or SIGTERM stopped the run before this account's adds were all sent.
    Interrupted,
    /// A fatal answer, an unreachable endpoint or a ledger failure stopped the run before this
    /// account's adds were all sent; what was not sent is not recorded as failed.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountSummary {
    pub official_account: String,
    /// The manifest's metadata.name.
    pub name: Option<String>,
    pub status: AccountStatus,
    pub planned_add: u64,
    /// Result 1: added by this run.
    pub added: u64,
    /// Result 2: already subscribed although the ledger did not know (drift).
    pub already_subscribed: u64,
    /// Subscribers that could not be added, with the code (0 = `Result: 0`; negative = network fault).
    pub failed: Vec<FailedSubscriber>,
    /// Desired subscribers not added because the account is full.
    pub not_added_limit: u64,
    /// The account's MaxSubscriberNum, when the service reported it.
    pub max_subscribers: Option<u64>,
    /// Removals that `prune` planned but this version does not perform yet.
    pub remove_skipped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FailedSubscriber {
    pub subscriber: String,
    pub code: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub struct Totals {
    pub added: u64,
    pub already_subscribed: u64,
    pub failed: u64,
    pub not_added_limit: u64,
}

impl Summary {
    pub fn totals_of(accounts: &[AccountSummary]) -> Totals {
        Totals {
            added: accounts.iter().map(|a| a.added).sum(),
            already_subscribed: accounts.iter().map(|a| a.already_subscribed).sum(),
            failed: accounts.iter().map(|a| a.failed.len() as u64).sum(),
            not_added_limit: accounts.iter().map(|a| a.not_added_limit).sum(),
        }
    }

    /// The overall result from the parts: failed beats partial beats converged.
    pub fn result_of(accounts: &[AccountSummary], fatal: bool, interrupted: bool) -> RunResult {
        let all_ok = accounts.iter().all(|a| {
            a.status == AccountStatus::Ok && a.failed.is_empty() && a.not_added_limit == 0
        });
        if fatal {
            RunResult::Failed
        } else if all_ok && !interrupted {
            RunResult::Converged
        } else {
            RunResult::Partial
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(status: AccountStatus, failed: usize, limit: u64) -> AccountSummary {
        AccountSummary {
            official_account: "@TOA#_a".into(),
            name: None,
            status,
            planned_add: 0,
            added: 3,
            already_subscribed: 1,
            failed: (0..failed)
                .map(|i| FailedSubscriber {
                    subscriber: i.to_string(),
                    code: 0,
                })
                .collect(),
            not_added_limit: limit,
            max_subscribers: None,
            remove_skipped: 0,
        }
    }

    #[test]
    fn any_shortfall_makes_the_run_partial_and_fatal_makes_it_failed() {
        assert_eq!(
            Summary::result_of(&[account(AccountStatus::Ok, 0, 0)], false, false),
            RunResult::Converged
        );
        assert_eq!(
            Summary::result_of(&[account(AccountStatus::Ok, 1, 0)], false, false),
            RunResult::Partial
        );
        assert_eq!(
            Summary::result_of(&[account(AccountStatus::LimitReached, 0, 2)], false, false),
            RunResult::Partial
        );
        assert_eq!(
            Summary::result_of(&[account(AccountStatus::Ok, 0, 0)], false, true),
            RunResult::Partial
        );
        assert_eq!(
            Summary::result_of(&[account(AccountStatus::Ok, 0, 0)], true, false),
            RunResult::Failed
        );
    }

    #[test]
    fn totals_add_up_the_accounts() {
        let t = Summary::totals_of(&[
            account(AccountStatus::Ok, 2, 0),
            account(AccountStatus::LimitReached, 0, 5),
        ]);
        assert_eq!(
            t,
            Totals {
                added: 6,
                already_subscribed: 2,
                failed: 2,
                not_added_limit: 5
            }
        );
    }
}

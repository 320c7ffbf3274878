//! The apply summary: what happened, per account and in total. Printed as text or JSON
//! (`schema/summary.schema.json`, generated from these types) and stored in the audit log.

use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Stop;
use super::outline::Outlined;
use super::own::OwnResult;
use super::probe::Probed;
use super::work::{End, Report};
use crate::plan::{Creation, PropertyChange};

pub(super) const FORMAT_VERSION: &str = "1";

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `subsync apply`.
    Apply,
    /// `subsync watch` starting.
    Start,
    /// A change to the manifests (or the credentials) under `watch`.
    Change,
    /// `watch`'s periodic resync.
    Resync,
    /// `watch` trying again after a run stopped by a fatal answer.
    Retry,
    /// A standby `watch` replica that just took the ledger's lock over.
    Takeover,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Apply => "apply",
            Trigger::Start => "start",
            Trigger::Change => "change",
            Trigger::Resync => "resync",
            Trigger::Retry => "retry",
            Trigger::Takeover => "takeover",
        })
    }
}

impl Trigger {
    /// The command recorded in the audit log.
    pub(crate) fn command(self) -> &'static str {
        match self {
            Trigger::Apply => "apply",
            _ => "watch",
        }
    }
}

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
    /// What started the run.
    pub trigger: Trigger,
    /// What reading the live lists found, when the run did (`--refresh`).
    pub refresh: Option<super::RefreshSummary>,
    /// Why the run stopped, when it failed.
    pub error: Option<String>,
    pub accounts: Vec<AccountSummary>,
    pub totals: Totals,
}

/// What a run leaves in the ledger's audit log, and `status` reads back: an apply's (or the
/// daemon's) summary, or a refresh's (`import`, `plan --refresh`). Stored as JSON with its
/// format version; a version this build does not know is an error, not a guess.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RunSummary {
    Apply(Box<Summary>),
    Refresh(RefreshRecord),
}

/// A refresh's entry in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRecord {
    /// Version of this format; "1". Absent in entries written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) format_version: Option<String>,
    pub(crate) refresh: super::RefreshSummary,
    /// Why the refresh stopped, when it did.
    pub(crate) error: Option<String>,
}

impl RefreshRecord {
    pub(crate) fn new(refresh: super::RefreshSummary, error: Option<String>) -> RefreshRecord {
        RefreshRecord {
            format_version: Some(FORMAT_VERSION.into()),
            refresh,
            error,
        }
    }
}

/// Why a stored summary cannot be read as one.
#[derive(Debug, thiserror::Error)]
enum SummaryFormat {
    #[error("it is in format version {0}, which this subsync does not know; upgrade subsync")]
    Version(String),
    #[error("it is neither an apply's summary nor a refresh's")]
    Kind,
}

impl<'de> Deserialize<'de> for RunSummary {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        let version = value.get("format_version").and_then(|v| v.as_str());
        if let Some(version) = version.filter(|v| *v != FORMAT_VERSION) {
            return Err(D::Error::custom(SummaryFormat::Version(
                crate::quote::quote(version),
            )));
        }
        // An apply's summary always has totals; a refresh's never does.
        let read = if value.get("totals").is_some() {
            Summary::deserialize(value).map(|s| RunSummary::Apply(Box::new(s)))
        } else if value.get("refresh").is_some() {
            RefreshRecord::deserialize(value).map(RunSummary::Refresh)
        } else {
            return Err(D::Error::custom(SummaryFormat::Kind));
        };
        read.map_err(D::Error::custom)
    }
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
pub(crate) enum AccountStatus {
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

impl AccountStatus {
    /// The name JSON uses.
    pub(crate) fn name(self) -> &'static str {
        match self {
            AccountStatus::Ok => "ok",
            AccountStatus::LimitReached => "limit_reached",
            AccountStatus::Missing => "missing",
            AccountStatus::Failed => "failed",
            AccountStatus::Interrupted => "interrupted",
            AccountStatus::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountSummary {
    pub(crate) official_account: String,
    /// The manifest's metadata.name.
    pub(crate) name: Option<String>,
    pub(crate) status: AccountStatus,
    pub(crate) planned_add: u64,
    /// Result 1: added by this run.
    pub(crate) added: u64,
    /// Result 2: already subscribed although the ledger did not know (drift).
    pub(crate) already_subscribed: u64,
    /// Result 2 for an add an interrupted run of subsync's own had sent (a crash, a lost
    /// lead): recovered, not drift.
    #[serde(default)]
    pub(crate) recovered: u64,
    /// Subscribers that could not be added, with the code (0 = `Result: 0`; negative = network fault).
    pub(crate) failed: Vec<FailedSubscriber>,
    /// Desired subscribers not added because the account is full.
    pub(crate) not_added_limit: u64,
    /// The account's MaxSubscriberNum, when the service reported it.
    pub(crate) max_subscribers: Option<u64>,
    /// Removals prune planned.
    pub(crate) planned_remove: u64,
    /// Removed by this run (delete_subscriber answered removed or not subscribed).
    pub(crate) removed: u64,
    /// Subscribers that could not be removed, with the code.
    pub(crate) remove_failed: Vec<FailedSubscriber>,
    /// Subscribers prune would have removed but a guard held back (see the plan's warnings).
    pub(crate) remove_skipped: u64,
    /// The set accepts a shortfall at the account's limit (`acceptShortfall: true`):
    /// `not_added_limit` does not make the run partial.
    #[serde(default)]
    pub(crate) accept_shortfall: bool,
    /// What the run did about the account's own properties (`spec.account`, `spec.create`);
    /// absent when there was nothing to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) properties: Option<AccountProperties>,
}

/// An account's own call in a run: its creation, or its declared properties that differed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct AccountProperties {
    /// The account was missing: created (create_official_account) with this owner, or why not.
    pub(crate) create: Option<Creation>,
    /// Every declared field that differed when the run looked (a creation sets them all); the
    /// refused ones were not sent.
    pub(crate) changes: Vec<PropertyChange>,
    /// What became of the call that carried them.
    pub(crate) result: OwnResult,
    /// The service's code when it failed.
    pub(crate) code: Option<i64>,
}

impl AccountProperties {
    /// Everything declared is in force: the call was made and nothing was refused.
    pub(crate) fn complete(&self) -> bool {
        self.result == OwnResult::Done && self.changes.iter().all(|c| c.refused.is_none())
    }

    /// The fields the call set.
    pub(crate) fn set(&self) -> u64 {
        match self.result {
            OwnResult::Done => self.changes.iter().filter(|c| c.refused.is_none()).count() as u64,
            _ => 0,
        }
    }

    /// Of those, the ones set back after a change outside subsync.
    pub(crate) fn drift(&self) -> u64 {
        match self.result {
            OwnResult::Done => self
                .changes
                .iter()
                .filter(|c| c.drift && c.refused.is_none())
                .count() as u64,
            _ => 0,
        }
    }

    pub(crate) fn created(&self) -> bool {
        self.result == OwnResult::Done && self.create.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct FailedSubscriber {
    pub(crate) subscriber: String,
    pub(crate) code: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub struct Totals {
    pub added: u64,
    pub already_subscribed: u64,
    #[serde(default)]
    pub recovered: u64,
    pub failed: u64,
    pub not_added_limit: u64,
    pub removed: u64,
    pub remove_failed: u64,
    /// The accounts' own properties set (a creation's included).
    #[serde(default)]
    pub properties_set: u64,
    /// Of those, properties set back after a change outside subsync (the console).
    #[serde(default)]
    pub property_drift: u64,
    /// Accounts created.
    #[serde(default)]
    pub created: u64,
}

impl Summary {
    /// The summary of the planned `accounts` before anything is sent: nothing done yet.
    pub(crate) fn start(
        accounts: &[Outlined],
        revision: Option<String>,
        trigger: Trigger,
    ) -> Summary {
        let accounts = accounts
            .iter()
            .map(|a| AccountSummary {
                official_account: a.official_account.clone(),
                name: Some(a.name.clone()),
                status: AccountStatus::Ok,
                planned_add: a.add,
                added: 0,
                already_subscribed: 0,
                recovered: 0,
                failed: Vec::new(),
                not_added_limit: 0,
                max_subscribers: None,
                planned_remove: a.remove,
                removed: 0,
                remove_failed: Vec::new(),
                remove_skipped: a.held_back,
                accept_shortfall: a.accept_shortfall,
                properties: None,
            })
            .collect();
        Summary {
            format_version: FORMAT_VERSION.into(),
            result: RunResult::Converged,
            interrupted: false,
            duration_ms: 0,
            requests: 0,
            retries: 0,
            rate_limited: 0,
            revision,
            trigger,
            refresh: None,
            error: None,
            accounts,
            totals: Totals::default(),
        }
    }

    /// Fills in what happened: the executor's tallies (in account order), what the probe
    /// learnt, and why the run stopped early, if it did.
    pub(crate) fn finish(
        &mut self,
        report: &Report,
        probed: &Probed,
        stop: Option<&Stop>,
        started: Instant,
    ) {
        for (a, t) in self.accounts.iter_mut().zip(&report.tallies) {
            a.status = match t.end {
                End::Done => AccountStatus::Ok,
                End::Full => AccountStatus::LimitReached,
                End::Missing => AccountStatus::Missing,
                End::Invalid => AccountStatus::Failed,
                End::Unfinished if report.interrupted => AccountStatus::Interrupted,
                End::Unfinished => AccountStatus::Stopped,
            };
            a.added = t.added;
            a.already_subscribed = t.already;
            a.recovered = t.recovered;
            a.failed = failed_list(&t.failed);
            a.removed = t.removed;
            a.remove_failed = failed_list(&t.remove_failed);
            a.not_added_limit = t.not_added_limit;
            a.max_subscribers = probed.info.get(&a.official_account).and_then(|i| i.max);
            a.properties = t.own_result.map(|result| AccountProperties {
                create: t.own.create.clone(),
                changes: t.own.changes.clone(),
                result,
                code: t.own_code,
            });
            // What the run set is the limit now.
            if let Some(max) = a
                .properties
                .as_ref()
                .filter(|p| p.result == OwnResult::Done)
                .and_then(|p| {
                    p.changes
                        .iter()
                        .find_map(|c| match (&c.to, c.field, &c.refused) {
                            (
                                crate::properties::Value::Number(n),
                                crate::properties::Field::MaxSubscribers,
                                None,
                            ) => Some(*n),
                            _ => None,
                        })
                })
            {
                a.max_subscribers = Some(max);
            }
        }
        self.interrupted = report.interrupted;
        self.duration_ms = started.elapsed().as_millis() as u64;
        self.requests = probed.calls.requests + report.calls.requests;
        self.retries = probed.calls.retries + report.calls.retries;
        self.rate_limited = report.rate_limited;
        self.error = stop.map(|s| crate::errors::chain(s));
        self.totals = Summary::totals_of(&self.accounts);
        self.result = Summary::result_of(&self.accounts, stop.is_some(), report.interrupted);
    }

    pub(crate) fn totals_of(accounts: &[AccountSummary]) -> Totals {
        Totals {
            added: accounts.iter().map(|a| a.added).sum(),
            already_subscribed: accounts.iter().map(|a| a.already_subscribed).sum(),
            recovered: accounts.iter().map(|a| a.recovered).sum(),
            failed: accounts.iter().map(|a| a.failed.len() as u64).sum(),
            not_added_limit: accounts.iter().map(|a| a.not_added_limit).sum(),
            removed: accounts.iter().map(|a| a.removed).sum(),
            remove_failed: accounts.iter().map(|a| a.remove_failed.len() as u64).sum(),
            properties_set: own(accounts, AccountProperties::set),
            property_drift: own(accounts, AccountProperties::drift),
            created: own(accounts, |p| u64::from(p.created())),
        }
    }

    /// The overall result from the parts: failed beats partial beats converged. Removals a
    /// guard held back leave the run partial: the service does not match the manifests. A
    /// shortfall at the limit does too, unless the set accepts it.
    pub(crate) fn result_of(
        accounts: &[AccountSummary],
        fatal: bool,
        interrupted: bool,
    ) -> RunResult {
        let all_ok = accounts.iter().all(|a| {
            let limit_ok = a.not_added_limit == 0 || a.accept_shortfall;
            let status_ok = a.status == AccountStatus::Ok
                || (a.status == AccountStatus::LimitReached && a.accept_shortfall);
            status_ok
                && limit_ok
                && a.failed.is_empty()
                && a.remove_failed.is_empty()
                && a.remove_skipped == 0
                && a.properties
                    .as_ref()
                    .is_none_or(AccountProperties::complete)
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

fn own(accounts: &[AccountSummary], count: impl Fn(&AccountProperties) -> u64) -> u64 {
    accounts
        .iter()
        .filter_map(|a| a.properties.as_ref())
        .map(count)
        .sum()
}

fn failed_list(failed: &[(String, i64)]) -> Vec<FailedSubscriber> {
    let mut list: Vec<FailedSubscriber> = failed
        .iter()
        .map(|(s, code)| FailedSubscriber {
            subscriber: s.clone(),
            code: *code,
        })
        .collect();
    list.sort_by(|x, y| x.subscriber.cmp(&y.subscriber));
    list
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
            recovered: 0,
            failed: (0..failed)
                .map(|i| FailedSubscriber {
                    subscriber: i.to_string(),
                    code: 0,
                })
                .collect(),
            not_added_limit: limit,
            max_subscribers: None,
            planned_remove: 0,
            removed: 0,
            remove_failed: vec![],
            remove_skipped: 0,
            accept_shortfall: false,
            properties: None,
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
        let accepted = AccountSummary {
            accept_shortfall: true,
            ..account(AccountStatus::LimitReached, 0, 2)
        };
        assert_eq!(
            Summary::result_of(&[accepted], false, false),
            RunResult::Converged
        );
    }

    #[test]
    fn a_run_summary_round_trips_with_its_format_version() {
        let apply = RunSummary::Apply(Box::new(Summary {
            accounts: vec![account(AccountStatus::Ok, 1, 2)],
            ..Summary::start(&[], Some("abc".into()), Trigger::Apply)
        }));
        let refresh = RunSummary::Refresh(RefreshRecord::new(
            super::super::RefreshSummary {
                accounts: 2,
                ..Default::default()
            },
            Some("stopped".into()),
        ));
        for summary in [apply, refresh] {
            let text = serde_json::to_string(&summary).unwrap();
            assert!(text.contains("\"format_version\":\"1\""), "{text}");
            assert_eq!(serde_json::from_str::<RunSummary>(&text).unwrap(), summary);
        }
        // Written before refresh entries carried their version: read as version 1.
        let old: RunSummary =
            serde_json::from_str(r#"{"refresh":{"accounts":1,"seen":0,"out_of_band_added":0,"out_of_band_removed":0,"requests":1,"failed":[]},"error":null}"#)
                .unwrap();
        assert!(matches!(old, RunSummary::Refresh(r) if r.format_version.is_none()));
    }

    #[test]
    fn a_summary_of_an_unknown_format_or_kind_is_an_error_not_a_guess() {
        let err = serde_json::from_str::<RunSummary>(r#"{"format_version":"2","totals":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("format version \"2\"") && err.contains("upgrade"),
            "{err}"
        );
        assert!(serde_json::from_str::<RunSummary>(r#"{"format_version":"1"}"#).is_err());
        assert!(
            serde_json::from_str::<RunSummary>(
                r#"{"refresh":{"accounts":1,"seen":0,"out_of_band_added":0,"out_of_band_removed":0,"requests":1,"failed":[]},"error":null,"surprise":1}"#
            )
            .is_err()
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
                recovered: 0,
                failed: 2,
                not_added_limit: 5,
                removed: 0,
                remove_failed: 0,
                ..Totals::default()
            }
        );
    }
}

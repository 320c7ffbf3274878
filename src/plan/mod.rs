//! Planning: a pure function from (manifests, ledger snapshot) to the changes apply would make.
//!
//! No I/O here. The plan is also the saved-plan file format (`plan --out`, `apply --plan`) and
//! the JSON that pipelines read, so its serialized form is versioned (`format_version`) and
//! documented by `schema/plan.schema.json`, generated from these types.

mod saved;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ledger::{AccountState, Op, Snapshot};
use crate::manifest::{ManifestSet, SubscriberSet};

pub use saved::{StalePlan, check_fresh, load_saved, verify};

pub const FORMAT_VERSION: &str = "1";

/// What apply would do, per official account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "subsync plan",
    description = "The output of `subsync plan --format json` and the file `plan --out` writes."
)]
pub struct Plan {
    /// Version of this format; "1".
    pub format_version: String,
    /// The ledger's lineage (fixed at its creation); null when there was no ledger yet.
    pub lineage: Option<String>,
    /// The ledger's serial when the plan was made; a saved plan is refused once it changed.
    pub serial: u64,
    /// `sha256:<hex>` over the manifests' content; a saved plan is refused once it changed.
    pub manifest_digest: String,
    /// The PATH arguments the manifests were loaded from.
    pub manifest_paths: Vec<String>,
    pub accounts: Vec<AccountPlan>,
    pub summary: PlanSummary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountPlan {
    /// The manifest's metadata.name; null for an account only the ledger still knows.
    pub name: Option<String>,
    pub official_account: String,
    /// Subscribers the manifests want.
    pub desired: u64,
    /// Subscribers the ledger has confirmed.
    pub confirmed: u64,
    pub prune: bool,
    /// Desired but not confirmed: apply sends these (sorted).
    pub add: Vec<String>,
    /// Confirmed but no longer desired, in a set with `prune: true`.
    pub remove: Vec<String>,
    /// Confirmed but no longer desired, without prune: left alone and reported.
    pub unmanaged: Vec<String>,
    /// The members of `add` whose last add failed, with the failure.
    pub retry: Vec<RetryEntry>,
    pub warnings: Vec<String>,
    /// What the last refresh of the live list found (empty when it was never refreshed).
    pub drift: Drift,
    /// When the live list was last refreshed (RFC 3339), if ever.
    pub refreshed_at: Option<String>,
    /// Removals prune would make but a guard holds back (they stay in `unmanaged`; the
    /// warnings say which guard).
    pub held_back: u64,
}

/// Drift between the ledger and the live list, as the last refresh found it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Drift {
    /// Subscribed remotely although the ledger did not know (now recorded as confirmed).
    pub out_of_band_added: Vec<String>,
    /// Confirmed in the ledger but gone remotely (no longer confirmed).
    pub out_of_band_removed: Vec<String>,
}

/// What the prune guards allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Most removals from one account in one run; default 10% of its confirmed subscribers,
    /// at least 100.
    pub max_prune: Option<u64>,
    /// Lift that limit.
    pub allow_mass_prune: bool,
}

impl PlanOptions {
    /// The most removals allowed from an account with `confirmed` subscribers.
    pub fn max_prune_for(&self, confirmed: u64) -> u64 {
        self.max_prune.unwrap_or((confirmed / 10).max(100))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RetryEntry {
    pub subscriber: String,
    /// The service's error code, 0 for `Result: 0`, or a negative code for a network fault.
    pub code: i64,
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub struct PlanSummary {
    pub add: u64,
    pub remove: u64,
    pub retry: u64,
    pub unmanaged: u64,
    /// Removals held back by the prune guards.
    pub held_back: u64,
    /// Drift the last refreshes found, in total.
    pub drift_added: u64,
    pub drift_removed: u64,
    pub accounts: u64,
    /// Accounts with something to add or remove.
    pub accounts_changed: u64,
}

impl Plan {
    /// True when apply would change something.
    pub fn has_changes(&self) -> bool {
        self.summary.add > 0 || self.summary.remove > 0
    }
}

impl AccountPlan {
    pub fn has_changes(&self) -> bool {
        !self.add.is_empty() || !self.remove.is_empty()
    }
}

/// Computes the plan. `manifest_paths` is recorded for a saved plan.
pub fn compute(
    manifests: &ManifestSet,
    ledger: &Snapshot,
    manifest_paths: Vec<String>,
    options: &PlanOptions,
) -> Plan {
    let empty = AccountState::default();
    let mut accounts: Vec<AccountPlan> = manifests
        .sets
        .iter()
        .map(|set| {
            let state = ledger.accounts.get(&set.official_account).unwrap_or(&empty);
            plan_account(set, state, options)
        })
        .collect();
    for (id, state) in &ledger.accounts {
        let declared = manifests.sets.iter().any(|s| &s.official_account == id);
        if !declared && !state.confirmed.is_empty() {
            accounts.push(AccountPlan {
                name: None,
                official_account: id.clone(),
                desired: 0,
                confirmed: state.confirmed.len() as u64,
                prune: false,
                add: Vec::new(),
                remove: Vec::new(),
                unmanaged: state.confirmed.clone(),
                retry: Vec::new(),
                warnings: vec![
                    "orphaned: no manifest declares this account any more; its subscribers are left alone and never pruned"
                        .into(),
                ],
                drift: drift_of(state),
                refreshed_at: state.drift.at.map(crate::clock::rfc3339_millis),
                held_back: 0,
            });
        }
    }
    accounts.sort_by(|a, b| a.official_account.cmp(&b.official_account));
    let summary = summarize(&accounts);
    Plan {
        format_version: FORMAT_VERSION.into(),
        lineage: ledger.lineage.clone(),
        serial: ledger.serial,
        manifest_digest: manifests.digest.clone(),
        manifest_paths,
        accounts,
        summary,
    }
}

/// Takes out of the adds and removals the retries whose pause has not passed at `now_ms`
/// (`pause(attempts)` after their last attempt), so that a daemon retries a failing subscriber
/// with growing pauses rather than at every resync. Returns how many were deferred; the summary
/// is recounted.
pub fn defer_retries(
    plan: &mut Plan,
    ledger: &Snapshot,
    now_ms: i64,
    pause: impl Fn(u32) -> std::time::Duration,
) -> u64 {
    let mut deferred = 0u64;
    for account in &mut plan.accounts {
        let Some(state) = ledger.accounts.get(&account.official_account) else {
            continue;
        };
        let waiting = |op: Op| -> Vec<&str> {
            state
                .failed
                .iter()
                .filter(|f| {
                    let pause = i64::try_from(pause(f.attempts).as_millis()).unwrap_or(i64::MAX);
                    f.op == op && now_ms < f.last_at.saturating_add(pause)
                })
                .map(|f| f.subscriber.as_str())
                .collect()
        };
        deferred += without(&mut account.add, &waiting(Op::Add));
        deferred += without(&mut account.remove, &waiting(Op::Remove));
        account
            .retry
            .retain(|r| account.add.binary_search(&r.subscriber).is_ok());
    }
    plan.summary = summarize(&plan.accounts);
    deferred
}

/// Removes `waiting` from `list` (both sorted) in one merge pass; returns how many.
fn without(list: &mut Vec<String>, waiting: &[&str]) -> u64 {
    let before = list.len();
    let mut w = waiting.iter().peekable();
    list.retain(|id| {
        while w.peek().is_some_and(|x| **x < id.as_str()) {
            w.next();
        }
        w.peek() != Some(&&id.as_str())
    });
    (before - list.len()) as u64
}

fn drift_of(state: &AccountState) -> Drift {
    Drift {
        out_of_band_added: state.drift.added.clone(),
        out_of_band_removed: state.drift.removed.clone(),
    }
}

fn summarize(accounts: &[AccountPlan]) -> PlanSummary {
    PlanSummary {
        add: accounts.iter().map(|a| a.add.len() as u64).sum(),
        remove: accounts.iter().map(|a| a.remove.len() as u64).sum(),
        retry: accounts.iter().map(|a| a.retry.len() as u64).sum(),
        unmanaged: accounts.iter().map(|a| a.unmanaged.len() as u64).sum(),
        held_back: accounts.iter().map(|a| a.held_back).sum(),
        drift_added: accounts
            .iter()
            .map(|a| a.drift.out_of_band_added.len() as u64)
            .sum(),
        drift_removed: accounts
            .iter()
            .map(|a| a.drift.out_of_band_removed.len() as u64)
            .sum(),
        accounts: accounts.len() as u64,
        accounts_changed: accounts.iter().filter(|a| a.has_changes()).count() as u64,
    }
}

fn plan_account(set: &SubscriberSet, state: &AccountState, options: &PlanOptions) -> AccountPlan {
    let (add, extra) = difference(&set.subscribers, &state.confirmed);
    let retry = state
        .failed
        .iter()
        .filter(|f| f.op == Op::Add && add.binary_search(&f.subscriber).is_ok())
        .map(|f| RetryEntry {
            subscriber: f.subscriber.clone(),
            code: f.code,
            attempts: f.attempts,
        })
        .collect();
    let mut warnings = Vec::new();
    let desired = set.subscribers.len() as u64;
    let facts = &state.facts;
    if let Some(max) = facts.max_subscribers.filter(|max| desired > *max) {
        warnings.push(format!(
            "{desired} desired subscribers exceed the account's MaxSubscriberNum {max} by {}",
            desired - max
        ));
    }
    if let Some(at) = facts.limit_reached_at {
        warnings.push(format!(
            "the account was full at the last apply ({}); adds may stop at its limit again",
            crate::clock::rfc3339_millis(at)
        ));
    }
    if let Some(at) = facts.missing_since {
        warnings.push(format!(
            "the account did not exist at the last apply (since {}); check officialAccount",
            crate::clock::rfc3339_millis(at)
        ));
    }
    if let Some(at) = facts.invalid_since {
        warnings.push(format!(
            "the service called the account id invalid at the last apply (since {})",
            crate::clock::rfc3339_millis(at)
        ));
    }
    let confirmed = state.confirmed.len() as u64;
    let guard = prune_guard(set, state, extra.len() as u64, options);
    let (remove, unmanaged, held_back) = match guard {
        _ if !set.prune || extra.is_empty() => (Vec::new(), extra, 0),
        Some(why) => {
            warnings.push(why);
            let held = extra.len() as u64;
            (Vec::new(), extra, held)
        }
        None => (extra, Vec::new(), 0),
    };
    AccountPlan {
        name: Some(set.name.clone()),
        official_account: set.official_account.clone(),
        desired,
        confirmed,
        prune: set.prune,
        add,
        remove,
        unmanaged,
        retry,
        warnings,
        drift: drift_of(state),
        refreshed_at: state.drift.at.map(crate::clock::rfc3339_millis),
        held_back,
    }
}

/// Why prune may not remove `removals` subscribers from this account now, if it may not.
fn prune_guard(
    set: &SubscriberSet,
    state: &AccountState,
    removals: u64,
    options: &PlanOptions,
) -> Option<String> {
    if set.subscribers.is_empty() && !set.allow_empty {
        return Some(
            "prune would remove every subscriber; set allowEmpty: true to allow emptying the account; nothing is removed"
                .into(),
        );
    }
    if state.facts.missing_since.is_some() || state.facts.invalid_since.is_some() {
        return Some(
            "the account was not found at the last check; nothing is pruned from it".into(),
        );
    }
    let max = options.max_prune_for(state.confirmed.len() as u64);
    if removals > max && !options.allow_mass_prune {
        return Some(format!(
            "prune would remove {removals} subscribers, more than --max-prune {max} (by default 10% of the confirmed, at least 100); pass --allow-mass-prune if that is intended; nothing is removed"
        ));
    }
    None
}

/// (a − b, b − a) of two sorted, duplicate-free lists, in one merge pass.
fn difference(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                only_a.push(a[i].clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                only_b.push(b[j].clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    only_a.extend_from_slice(&a[i..]);
    only_b.extend_from_slice(&b[j..]);
    (only_a, only_b)
}

#[cfg(test)]
mod tests;

//! Planning: a pure function from (manifests, ledger snapshot) to the changes apply would make,
//! account by account ([`plan_account`]).
//!
//! No I/O here. The plan is the one value every rendering (text, Markdown, diff, JSON) and
//! every exit code is derived from; it is also the saved-plan file format (`plan --out`,
//! `apply --plan`) and the JSON that pipelines read, so its serialized form is versioned
//! (`format_version`) and documented by `schema/plan.schema.json`, generated from these types.
//!
//! Invariants: `remove` holds only subscribers subsync manages (added, imported, or listed in
//! a manifest), and out-of-band ones only where the set opts in; no account loses more than
//! `--max-prune` or half of what it holds without `--allow-mass-prune`; [`PlanSummary::needs_apply`]
//! is true exactly when apply would send a change or end short of the manifests.

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
    /// Confirmed, managed by subsync and no longer desired, in a set with `prune: true`:
    /// apply removes these (sorted).
    pub remove: Vec<String>,
    /// Confirmed but not desired, and left alone: without prune, held back by a guard, or
    /// out of band without `pruneOutOfBand` (sorted).
    pub unmanaged: Vec<String>,
    /// The members of `add` whose last add failed, with the failure.
    pub retry: Vec<RetryEntry>,
    pub warnings: Vec<String>,
    /// What the last refresh of the live list found (empty when it was never refreshed).
    pub drift: Drift,
    /// When the live list was last refreshed (RFC 3339), if ever.
    pub refreshed_at: Option<String>,
    /// Removals prune would make but a guard holds back (they are in `unmanaged` and `held`;
    /// the warnings say which guard).
    pub held_back: u64,
    /// The removals a guard holds back (sorted).
    #[serde(default)]
    pub held: Vec<String>,
    /// Of `unmanaged`, those that appeared out of band and prune leaves alone because the set
    /// does not say `pruneOutOfBand: true`.
    #[serde(default)]
    pub out_of_band_kept: u64,
    /// Desired subscribers the account's known MaxSubscriberNum leaves out, as of the last
    /// check: a known shortfall.
    #[serde(default)]
    pub over_limit: u64,
    /// The set accepts a shortfall (`acceptShortfall: true`): it makes no exit code 2.
    #[serde(default)]
    pub accept_shortfall: bool,
}

/// Drift between the ledger and the live list, as the last refresh found it, less what has
/// been repaired since.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Drift {
    /// Subscribed remotely although the ledger did not know (now recorded as confirmed).
    pub out_of_band_added: Vec<String>,
    /// Confirmed in the ledger but gone remotely (no longer confirmed).
    pub out_of_band_removed: Vec<String>,
    /// Found by that refresh and repaired since (an out-of-band removal added back, an
    /// out-of-band addition pruned).
    #[serde(default)]
    pub repaired: Vec<String>,
}

/// What the prune guards allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Most removals from one account in one run; default 10% of its confirmed subscribers,
    /// at least 100.
    pub max_prune: Option<u64>,
    /// Lift that limit, and the one of half an account.
    pub allow_mass_prune: bool,
}

impl PlanOptions {
    /// The most removals allowed from an account with `confirmed` subscribers: `--max-prune`
    /// (by default a tenth, at least 100), and never more than half of the account.
    pub fn max_prune_for(&self, confirmed: u64) -> u64 {
        self.max_prune
            .unwrap_or((confirmed / 10).max(100))
            .min(confirmed / 2)
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
    /// Drift the last refreshes found and nothing has repaired yet, in total.
    pub drift_added: u64,
    pub drift_removed: u64,
    pub accounts: u64,
    /// Accounts with something to add or remove.
    pub accounts_changed: u64,
    /// Desired subscribers known limits leave out, in sets that do not accept it.
    #[serde(default)]
    pub over_limit: u64,
    /// True exactly when apply would send a change or end short of the manifests (removals a
    /// guard holds back, a shortfall not accepted): `plan --detailed-exitcode` exits 2 then,
    /// 0 otherwise.
    #[serde(default)]
    pub needs_apply: bool,
}

impl Plan {
    /// True when apply would change something or end short of the manifests.
    pub fn needs_apply(&self) -> bool {
        self.summary.needs_apply
    }
}

impl AccountPlan {
    pub fn has_changes(&self) -> bool {
        !self.add.is_empty() || !self.remove.is_empty()
    }

    /// Adds apply would send that the set does not accept being left out: all of them, or,
    /// with `acceptShortfall`, those the known limit does not already rule out.
    fn counted_adds(&self) -> u64 {
        let adds = self.add.len() as u64;
        if self.accept_shortfall {
            adds - self.over_limit.min(adds)
        } else {
            adds
        }
    }

    /// This account's share of [`PlanSummary::needs_apply`].
    pub fn needs_apply(&self) -> bool {
        self.counted_adds() > 0
            || !self.remove.is_empty()
            || self.held_back > 0
            || (self.over_limit > 0 && !self.accept_shortfall)
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
            accounts.push(orphan(id, state));
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

/// An account only the ledger still knows: left alone and reported.
fn orphan(id: &str, state: &AccountState) -> AccountPlan {
    AccountPlan {
        name: None,
        official_account: id.to_owned(),
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
        drift: drift_of(state, &[]),
        refreshed_at: state.drift.at.map(crate::clock::rfc3339_millis),
        held_back: 0,
        held: Vec::new(),
        out_of_band_kept: 0,
        over_limit: 0,
        accept_shortfall: false,
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

/// What the last refresh found, less what is repaired by now: a subscriber it found gone that
/// is confirmed again, or one it found added that is no longer confirmed.
fn drift_of(state: &AccountState, confirmed: &[String]) -> Drift {
    let is_confirmed = |id: &String| confirmed.binary_search(id).is_ok();
    let (repaired_removed, removed): (Vec<String>, Vec<String>) =
        state.drift.removed.iter().cloned().partition(is_confirmed);
    let (added, repaired_added): (Vec<String>, Vec<String>) =
        state.drift.added.iter().cloned().partition(is_confirmed);
    let mut repaired = repaired_removed;
    repaired.extend(repaired_added);
    repaired.sort();
    Drift {
        out_of_band_added: added,
        out_of_band_removed: removed,
        repaired,
    }
}

fn summarize(accounts: &[AccountPlan]) -> PlanSummary {
    let sum = |f: &dyn Fn(&AccountPlan) -> u64| accounts.iter().map(f).sum::<u64>();
    PlanSummary {
        add: sum(&|a| a.add.len() as u64),
        remove: sum(&|a| a.remove.len() as u64),
        retry: sum(&|a| a.retry.len() as u64),
        unmanaged: sum(&|a| a.unmanaged.len() as u64),
        held_back: sum(&|a| a.held_back),
        drift_added: sum(&|a| a.drift.out_of_band_added.len() as u64),
        drift_removed: sum(&|a| a.drift.out_of_band_removed.len() as u64),
        accounts: accounts.len() as u64,
        accounts_changed: accounts.iter().filter(|a| a.has_changes()).count() as u64,
        over_limit: sum(&|a| if a.accept_shortfall { 0 } else { a.over_limit }),
        needs_apply: accounts.iter().any(AccountPlan::needs_apply),
    }
}

/// The plan of one account: a pure function of its set, its ledger state and the guards.
pub fn plan_account(
    set: &SubscriberSet,
    state: &AccountState,
    options: &PlanOptions,
) -> AccountPlan {
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
    let confirmed = state.confirmed.len() as u64;
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
    // What prune may remove: what subsync manages, and what appeared out of band only where
    // the set says so. Without prune, everything extra is left alone.
    let (remove, held, mut unmanaged, out_of_band_kept) = if !set.prune {
        (Vec::new(), Vec::new(), extra, 0)
    } else {
        let (prunable, out_of_band) = if set.prune_out_of_band {
            (extra, Vec::new())
        } else {
            let (foreign, ours) = intersect(&extra, &state.out_of_band);
            (ours, foreign)
        };
        let kept = out_of_band.len() as u64;
        if kept > 0 {
            warnings.push(format!(
                "{kept} subscribers appeared out of band (seen by a refresh, never added, imported or listed by subsync); prune leaves them: set pruneOutOfBand: true to remove them too"
            ));
        }
        let guard = prune_guard(set, state, prunable.len() as u64, options);
        let (remove, held) = match guard {
            _ if prunable.is_empty() => (Vec::new(), Vec::new()),
            Some(why) => {
                warnings.push(why);
                (Vec::new(), prunable)
            }
            None => (prunable, Vec::new()),
        };
        let mut unmanaged = out_of_band;
        unmanaged.extend(held.iter().cloned());
        (remove, held, unmanaged, kept)
    };
    unmanaged.sort();
    let over_limit = over_limit(state, add.len() as u64, remove.len() as u64);
    if over_limit > 0 && set.accept_shortfall {
        warnings.push(format!(
            "{over_limit} desired subscribers do not fit the account's MaxSubscriberNum; the set accepts the shortfall (acceptShortfall: true)"
        ));
    }
    AccountPlan {
        name: Some(set.name.clone()),
        official_account: set.official_account.clone(),
        desired,
        confirmed,
        prune: set.prune,
        drift: drift_of(state, &state.confirmed),
        refreshed_at: state.drift.at.map(crate::clock::rfc3339_millis),
        held_back: held.len() as u64,
        held,
        add,
        remove,
        unmanaged,
        retry,
        warnings,
        out_of_band_kept,
        over_limit,
        accept_shortfall: set.accept_shortfall,
    }
}

/// Desired subscribers the ledger confirms as out of band: listed in a manifest now, so subsync
/// manages them from here on (and prune may remove them once they are no longer listed).
pub fn adopted(set: &SubscriberSet, state: &AccountState) -> Vec<String> {
    if state.out_of_band.is_empty() {
        return Vec::new();
    }
    intersect(&state.out_of_band, &set.subscribers).0
}

/// How many of `adds` the account's known limit leaves out: what it held at the last check
/// (or what the ledger confirms, if more), less `removes`, plus `adds`, over MaxSubscriberNum.
fn over_limit(state: &AccountState, adds: u64, removes: u64) -> u64 {
    let Some(max) = state.facts.max_subscribers else {
        return 0;
    };
    let held = (state.confirmed.len() as u64).max(state.facts.subscriber_num.unwrap_or(0));
    (held.saturating_sub(removes) + adds)
        .saturating_sub(max)
        .min(adds)
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
            "prune would remove {removals} of {} subscribers, more than {max} (--max-prune, by default 10% of the confirmed and at least 100, and never more than half of the account); pass --allow-mass-prune if that is intended; nothing is removed",
            state.confirmed.len()
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

/// (a ∩ b, a − b) of two sorted, duplicate-free lists.
fn intersect(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let (only_a, _) = difference(a, b);
    let (both, _) = difference(a, &only_a);
    (both, only_a)
}

#[cfg(test)]
mod tests;

//! Planning: a pure function from (manifests, ledger snapshot) to the changes apply would make,
//! account by account ([`plan_account`]).
//!
//! No I/O here. The plan is the one value every rendering (text, Markdown, diff, JSON) and
//! every exit code is derived from; it is also the saved-plan file format (`plan --out`,
//! `apply --plan`) and the JSON that pipelines read, so its serialized form is versioned
//! (`format_version`) and documented by `schema/plan.schema.json`, generated from these types.
//!
//! An account's own properties (`spec.account`) are planned by [`properties`] into typed
//! changes inside the account's plan; they count towards `has_changes` and `needs_apply` like
//! its subscribers.
//!
//! Invariants: `remove` holds only subscribers subsync manages (added, imported, or listed in
//! a manifest), and out-of-band ones only where the set opts in; no account loses more than
//! `--max-prune` or half of what it holds without `--allow-mass-prune`; [`PlanSummary::needs_apply`]
//! is true exactly when apply would send a change or end short of the manifests.

mod account;
pub(crate) mod properties;
mod saved;

use std::ops::ControlFlow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ledger::{AccountSource, AccountView, LedgerError};
use crate::manifest::{ManifestSet, SubscriberSet};

pub(crate) use account::{adopted, defer, out_of_band_unlisted, plan_account};
pub(crate) use properties::{Creation, PropertyChange};
pub(crate) use saved::{SavedPlan, StalePlan, load_saved};

pub(crate) const FORMAT_VERSION: &str = "1";

/// What apply would do, per official account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "subsync plan",
    description = "The output of `subsync plan --format json` and the file `plan --out` writes."
)]
pub(crate) struct Plan {
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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct AccountPlan {
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
    /// The account does not exist and apply creates it (or would, if allowed).
    #[serde(default)]
    pub create: Option<Creation>,
    /// The declared properties (`spec.account`) whose live value differs: apply sets them in
    /// one call, before any add.
    #[serde(default)]
    pub properties: Vec<PropertyChange>,
}

/// Drift between the ledger and the live list, as the last refresh found it, less what has
/// been repaired since.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Drift {
    /// Subscribed remotely although the ledger did not know (now recorded as confirmed).
    pub out_of_band_added: Vec<String>,
    /// Confirmed in the ledger but gone remotely (no longer confirmed).
    pub out_of_band_removed: Vec<String>,
    /// Found by that refresh and repaired since (an out-of-band removal added back, an
    /// out-of-band addition pruned).
    #[serde(default)]
    pub repaired: Vec<String>,
}

/// What the guards allow: prune's, and creating accounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PlanOptions {
    /// Most removals from one account in one run; default 10% of its confirmed subscribers,
    /// at least 100.
    pub max_prune: Option<u64>,
    /// Lift that limit, and the one of half an account.
    pub allow_mass_prune: bool,
    /// Create a missing account whose manifest declares `spec.create` (`--allow-create`).
    pub allow_create: bool,
}

impl PlanOptions {
    /// The most removals allowed from an account with `confirmed` subscribers: `--max-prune`
    /// (by default a tenth, at least 100), and never more than half of the account.
    pub(crate) fn max_prune_for(&self, confirmed: u64) -> u64 {
        self.max_prune
            .unwrap_or((confirmed / 10).max(100))
            .min(confirmed / 2)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct RetryEntry {
    pub subscriber: String,
    /// The service's error code, 0 for `Result: 0`, or a negative code for a network fault.
    pub code: i64,
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub(crate) struct PlanSummary {
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
    /// Desired subscribers known limits leave out: the sum of the accounts' `over_limit`.
    #[serde(default)]
    pub over_limit: u64,
    /// Of `over_limit`, those in sets that accept the shortfall (`acceptShortfall: true`):
    /// they alone make no exit code 2.
    #[serde(default)]
    pub over_limit_accepted: u64,
    /// True exactly when apply would send a change or end short of the manifests (removals a
    /// guard holds back, a shortfall not accepted): `plan --detailed-exitcode` exits 2 then,
    /// 0 otherwise.
    #[serde(default)]
    pub needs_apply: bool,
    /// Property changes apply would make (refused ones not counted).
    #[serde(default)]
    pub property_changes: u64,
    /// Accounts apply would create.
    #[serde(default)]
    pub create: u64,
    /// Property changes and creations apply will not make (a limit below the count, a
    /// missing account it may not create): the run ends short of the manifests.
    #[serde(default)]
    pub properties_refused: u64,
}

impl Plan {
    /// True when apply would change something or end short of the manifests.
    #[cfg(test)]
    pub(crate) fn needs_apply(&self) -> bool {
        self.summary.needs_apply
    }
}

impl AccountPlan {
    /// Apply would send something for this account.
    pub(crate) fn has_changes(&self) -> bool {
        !self.add.is_empty()
            || !self.remove.is_empty()
            || self.property_changes() > 0
            || self.creates()
    }

    /// The property changes apply would send.
    pub(crate) fn property_changes(&self) -> u64 {
        self.properties
            .iter()
            .filter(|p| p.refused.is_none())
            .count() as u64
    }

    /// Property changes and a creation apply will not make.
    pub(crate) fn refused(&self) -> u64 {
        self.properties.len() as u64 - self.property_changes()
            + u64::from(self.create.as_ref().is_some_and(|c| c.refused.is_some()))
    }

    /// Apply would create the account.
    pub(crate) fn creates(&self) -> bool {
        self.create.as_ref().is_some_and(|c| c.refused.is_none())
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
    pub(crate) fn needs_apply(&self) -> bool {
        self.counted_adds() > 0
            || !self.remove.is_empty()
            || self.held_back > 0
            || (self.over_limit > 0 && !self.accept_shortfall)
            // A refused change or creation leaves the account short of its declaration.
            || !self.properties.is_empty()
            || self.create.is_some()
    }
}

/// The plan's first fields: what it was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PlanHeader {
    pub format_version: String,
    pub lineage: Option<String>,
    pub serial: u64,
    pub manifest_digest: String,
    pub manifest_paths: Vec<String>,
}

impl PlanHeader {
    /// The header of a plan of `manifests` against the ledger `source` reads.
    pub(crate) fn of(
        manifests: &ManifestSet,
        source: &mut dyn AccountSource,
        manifest_paths: Vec<String>,
    ) -> Result<PlanHeader, LedgerError> {
        let (lineage, serial) = source.identity()?;
        Ok(PlanHeader {
            format_version: FORMAT_VERSION.into(),
            lineage,
            serial,
            manifest_digest: manifests.digest.clone(),
            manifest_paths,
        })
    }
}

/// One account's plan as the stream hands it on, with what it was made from.
pub(crate) struct Planned<'a> {
    /// The set that declares the account; `None` for an orphan.
    pub set: Option<&'a SubscriberSet>,
    /// The ledger's state of the account (its confirmed subscribers excepted).
    pub ledger: &'a AccountView,
    pub plan: AccountPlan,
}

/// Plans every account, one at a time and in order (declared accounts and orphans merged by
/// id), handing each to `each` as soon as it is made: no more than one account's lists are in
/// memory at once. `each` may stop the pass by returning `Break`.
pub(crate) fn stream(
    manifests: &ManifestSet,
    source: &mut dyn AccountSource,
    options: &PlanOptions,
    each: &mut dyn FnMut(Planned<'_>) -> ControlFlow<()>,
) -> Result<PlanSummary, LedgerError> {
    let held = source.held()?;
    let mut orphans = held
        .iter()
        .filter(|id| {
            manifests
                .sets
                .binary_search_by(|s| s.official_account.as_str().cmp(id))
                .is_err()
        })
        .peekable();
    let mut sets = manifests.sets.iter().peekable();
    let mut summary = PlanSummary::default();
    loop {
        let next = match (sets.peek(), orphans.peek()) {
            (Some(s), Some(o)) if s.official_account.as_str() < o.as_str() => sets.next().map(Ok),
            (Some(_), Some(_)) | (None, Some(_)) => orphans.next().map(Err),
            (Some(_), None) => sets.next().map(Ok),
            (None, None) => break,
        };
        let Some(next) = next else { break };
        let account = match next {
            Ok(set) => set.official_account.as_str(),
            Err(orphan) => orphan.as_str(),
        };
        let mut flow = ControlFlow::Continue(());
        source.account(account, &mut |ledger, confirmed| {
            let (set, plan) = match next {
                Ok(set) => (Some(set), plan_account(set, ledger, confirmed, options)?),
                Err(id) => (None, account::orphan(id, ledger, confirmed)?),
            };
            summary.add(&plan);
            flow = each(Planned { set, ledger, plan });
            Ok(())
        })?;
        if flow.is_break() {
            break;
        }
    }
    Ok(summary)
}

/// The whole plan in memory, for tests: what ships streams it ([`stream`]), never holding a
/// plan of the whole ledger.
#[cfg(test)]
pub(crate) fn compute(
    manifests: &ManifestSet,
    source: &mut dyn AccountSource,
    manifest_paths: Vec<String>,
    options: &PlanOptions,
) -> Result<Plan, LedgerError> {
    let header = PlanHeader::of(manifests, source, manifest_paths)?;
    let mut accounts = Vec::new();
    let summary = stream(manifests, source, options, &mut |p| {
        accounts.push(p.plan);
        ControlFlow::Continue(())
    })?;
    Ok(Plan::new(header, accounts, summary))
}

impl Plan {
    #[cfg(test)]
    pub(crate) fn new(
        header: PlanHeader,
        accounts: Vec<AccountPlan>,
        summary: PlanSummary,
    ) -> Plan {
        Plan {
            format_version: header.format_version,
            lineage: header.lineage,
            serial: header.serial,
            manifest_digest: header.manifest_digest,
            manifest_paths: header.manifest_paths,
            accounts,
            summary,
        }
    }

    #[cfg(test)]
    pub(crate) fn header(&self) -> PlanHeader {
        PlanHeader {
            format_version: self.format_version.clone(),
            lineage: self.lineage.clone(),
            serial: self.serial,
            manifest_digest: self.manifest_digest.clone(),
            manifest_paths: self.manifest_paths.clone(),
        }
    }
}

impl PlanSummary {
    /// Counts one more account.
    pub(crate) fn add(&mut self, a: &AccountPlan) {
        self.add += a.add.len() as u64;
        self.remove += a.remove.len() as u64;
        self.retry += a.retry.len() as u64;
        self.unmanaged += a.unmanaged.len() as u64;
        self.held_back += a.held_back;
        self.drift_added += a.drift.out_of_band_added.len() as u64;
        self.drift_removed += a.drift.out_of_band_removed.len() as u64;
        self.accounts += 1;
        self.accounts_changed += u64::from(a.has_changes());
        self.over_limit += a.over_limit;
        if a.accept_shortfall {
            self.over_limit_accepted += a.over_limit;
        }
        self.property_changes += a.property_changes();
        self.create += u64::from(a.creates());
        self.properties_refused += a.refused();
        self.needs_apply |= a.needs_apply();
    }

    /// Desired subscribers known limits leave out in sets that do not accept it: a reason
    /// for exit code 2.
    pub(crate) fn over_limit_not_accepted(&self) -> u64 {
        self.over_limit - self.over_limit_accepted
    }

    /// The summary of `accounts`.
    #[cfg(test)]
    pub(crate) fn of(accounts: &[AccountPlan]) -> PlanSummary {
        let mut summary = PlanSummary::default();
        for a in accounts {
            summary.add(a);
        }
        summary
    }
}

#[cfg(test)]
mod tests;

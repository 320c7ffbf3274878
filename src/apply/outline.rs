//! The two passes of a reconcile over the ledger, each run through the writer (on the blocking
//! pool) one account at a time, so that a run over millions of subscribers holds no list but the one in hand.
//!
//! [`outline`] plans every account once and keeps only what the run needs of each: its counts
//! (for the summary, the probe and the exit code), its warnings, the subscribers to adopt, and
//! its facts as they were. [`lists`] plans one account again when the executor gets to it, with
//! those facts, so that both passes plan the same (only this run writes the ledger meanwhile,
//! and nothing it writes before an account is sent changes that account's lists).

use std::ops::ControlFlow;
use std::sync::Arc;

use super::work::Work;
use crate::backoff::Backoff;
use crate::ledger::{AccountFacts, AccountSource, AccountView, FailedEntry, LedgerError, Record};
use crate::manifest::ManifestSet;
use crate::plan::{self, AccountPlan, PlanOptions, PlanSummary, SavedPlan, StalePlan};
use crate::properties::Properties;

/// What both passes plan with.
#[derive(Clone)]
pub(super) struct Pass {
    pub(crate) manifests: Arc<ManifestSet>,
    pub(crate) options: PlanOptions,
    /// Retries whose pause has not passed at `now_ms` wait (the daemon's `Policy`).
    pub(crate) backoff: Option<Backoff>,
    pub(crate) now_ms: i64,
}

impl Pass {
    /// Holds back the account's retries that are not due; returns how many.
    fn defer(&self, plan: &mut AccountPlan, failed: &[FailedEntry]) -> u64 {
        match self.backoff {
            Some(backoff) => plan::defer(plan, failed, self.now_ms, &|attempts| {
                backoff.after(attempts.saturating_sub(1))
            }),
            None => 0,
        }
    }
}

/// One declared account, as the run needs it.
#[derive(Debug, Clone)]
pub(crate) struct Outlined {
    pub(crate) official_account: String,
    pub(crate) name: String,
    /// Adds and removals to send (retries not yet due left out).
    pub(crate) add: u64,
    pub(crate) remove: u64,
    pub(crate) held_back: u64,
    pub(crate) accept_shortfall: bool,
    /// The facts the plan was made with.
    pub(crate) facts: AccountFacts,
    /// Subscribers the ledger confirms.
    pub(crate) confirmed: u64,
    /// The declared properties (`spec.account`), and what the ledger knew of them: the live
    /// values and the declared ones known to be in force.
    pub(crate) declared: Properties,
    pub(crate) live: Properties,
    pub(crate) kept: Properties,
    /// The owner to create the account with when the probe finds it missing
    /// (`spec.create`), and whether the deployment allows it (`--allow-create`).
    pub(crate) create: Option<String>,
    pub(crate) may_create: bool,
    /// The plan has an own call to make for the account (a property change or a creation).
    pub(crate) own: bool,
}

/// The whole plan, reduced to what the run needs.
#[derive(Debug, Default)]
pub(super) struct Outline {
    /// The plan's counts, before retries not yet due were deferred.
    pub(crate) summary: PlanSummary,
    pub(crate) deferred: u64,
    /// Declared accounts, in order (accounts only the ledger knows have nothing to send).
    pub(crate) accounts: Vec<Outlined>,
    /// Every account's warnings, each prefixed with its account.
    pub(crate) warnings: Vec<String>,
    /// Out-of-band subscribers a manifest now lists: subsync manages them from here on.
    pub(crate) adopt: Vec<Record>,
}

impl Outline {
    /// True when the run has nothing to send and nothing to record.
    pub(super) fn idle(&self) -> bool {
        self.adopt.is_empty()
            && self
                .accounts
                .iter()
                .all(|a| a.add + a.remove == 0 && !a.own)
    }
}

/// The first pass. A saved plan is checked account by account against the one made now; the
/// inner error is a saved plan that does not match.
pub(super) fn outline(
    pass: &Pass,
    source: &mut dyn AccountSource,
    saved: Option<&SavedPlan>,
) -> Result<Result<Outline, StalePlan>, LedgerError> {
    if let Some(saved) = saved {
        let (lineage, serial) = source.identity()?;
        if let Err(stale) = saved.check_fresh(lineage.as_deref(), serial, &pass.manifests.digest) {
            return Ok(Err(stale));
        }
    }
    let mut outline = Outline::default();
    let mut stale = None;
    let mut index = 0;
    outline.summary = plan::stream(&pass.manifests, source, &pass.options, &mut |p| {
        if let Some(saved) = saved
            && let Err(e) = saved.check_account(index, &p.plan)
        {
            stale = Some(e);
            return ControlFlow::Break(());
        }
        index += 1;
        let mut plan = p.plan;
        let account = plan.official_account.clone();
        outline.deferred += pass.defer(&mut plan, &p.ledger.failed);
        outline
            .warnings
            .extend(plan.warnings.iter().map(|w| format!("{account}: {w}")));
        let Some(set) = p.set else {
            return ControlFlow::Continue(());
        };
        let adopted = plan::adopted(set, p.ledger);
        if !adopted.is_empty() {
            outline.adopt.push(Record::Adopt {
                account: account.clone(),
                subscribers: adopted,
            });
        }
        outline.accounts.push(Outlined {
            official_account: account,
            name: set.name.clone(),
            add: plan.add.len() as u64,
            remove: plan.remove.len() as u64,
            held_back: plan.held_back,
            accept_shortfall: plan.accept_shortfall,
            facts: p.ledger.facts.clone(),
            confirmed: plan.confirmed,
            declared: set.account.clone(),
            live: p.ledger.properties.live.clone(),
            kept: p.ledger.properties.kept.clone(),
            create: set.create.clone(),
            may_create: pass.options.allow_create,
            own: plan.property_changes() > 0 || plan.creates(),
        });
        ControlFlow::Continue(())
    })?;
    if let Some(stale) = stale {
        return Ok(Err(stale));
    }
    if let Some(saved) = saved
        && let Err(e) = saved.check_end(index, &outline.summary)
    {
        return Ok(Err(e));
    }
    Ok(Ok(outline))
}

/// The second pass, for one account: its work lists, planned again with the first pass's
/// facts.
pub(super) fn lists(
    pass: &Pass,
    source: &mut dyn AccountSource,
    account: &Outlined,
) -> Result<Work, LedgerError> {
    let sets = &pass.manifests.sets;
    let Ok(at) = sets.binary_search_by(|s| s.official_account.cmp(&account.official_account))
    else {
        return Ok(Work::default());
    };
    let mut work = Work::default();
    source.account(&account.official_account, &mut |ledger, confirmed| {
        let frozen = AccountView {
            facts: account.facts.clone(),
            ..ledger.clone()
        };
        let mut plan = plan::plan_account(&sets[at], &frozen, confirmed, &pass.options)?;
        pass.defer(&mut plan, &ledger.failed);
        work = Work {
            add: plan.add,
            remove: plan.remove,
            intended: ledger.intents.clone(),
        };
        Ok(())
    })?;
    if (work.add.len() as u64, work.remove.len() as u64) != (account.add, account.remove) {
        tracing::warn!(
            account = %account.official_account,
            "the account's plan changed between the two passes; sending what it says now"
        );
    }
    Ok(work)
}

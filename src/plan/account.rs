//! One account's plan: a pure function of its set, its ledger state, its confirmed subscribers
//! (handed over in order, merged once against the sorted desired list as they come) and the
//! guards. The only failure is the ledger's, while it hands the subscribers over.
//!
//! Invariants: `remove` holds only subscribers subsync manages, and out-of-band ones only where
//! the set opts in; no account loses more than `--max-prune` or half of what it holds without
//! `--allow-mass-prune`.

use std::time::Duration;

use super::properties::{self, Held};
use super::{AccountPlan, Drift, PlanOptions, RetryEntry};
use crate::ledger::{AccountView, Confirmed, FailedEntry, LedgerError, Op};
use crate::manifest::{IdList, SubscriberSet};
use crate::words::{count, noun};

/// The plan of the account `set` declares.
pub(crate) fn plan_account(
    set: &SubscriberSet,
    ledger: &AccountView,
    confirmed: &mut dyn Confirmed,
    options: &PlanOptions,
) -> Result<AccountPlan, LedgerError> {
    let merged = merge(&set.subscribers, confirmed, &ledger.drift)?;
    let Merged {
        add,
        extra,
        confirmed,
        drift,
    } = merged;
    let retry = ledger
        .failed
        .iter()
        .filter(|f| f.op == Op::Add && add.binary_search(&f.subscriber).is_ok())
        .map(|f| RetryEntry {
            subscriber: f.subscriber.clone(),
            code: f.code,
            attempts: f.attempts,
        })
        .collect();
    let desired = set.subscribers.len() as u64;
    let mut warnings = Vec::new();
    // What prune may remove: what subsync manages, and what appeared out of band only where
    // the set says so. Without prune, everything extra is left alone.
    let (remove, held, mut unmanaged, out_of_band_kept) = if !set.prune {
        (Vec::new(), Vec::new(), extra, 0)
    } else {
        let (prunable, out_of_band) = if set.prune_out_of_band {
            (extra, Vec::new())
        } else {
            let (foreign, ours) = intersect(&extra, &ledger.out_of_band);
            (ours, foreign)
        };
        let kept = out_of_band.len() as u64;
        if kept > 0 {
            warnings.push(format!(
                "{} out of band (seen by a refresh, never added, imported or listed by subsync); prune leaves {}: set pruneOutOfBand: true to remove {} too",
                count(kept, "subscriber appeared", "subscribers appeared"),
                noun(kept, "it", "them"),
                noun(kept, "it", "them"),
            ));
        }
        let guard = prune_guard(set, ledger, confirmed, prunable.len() as u64, options);
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
    let held_now = Held {
        now: confirmed.max(ledger.facts.subscriber_num.unwrap_or(0)),
        removed: remove.len() as u64,
    };
    let own = properties::plan(set, ledger, held_now, options);
    let max = properties::effective_max(set, ledger, &own.changes);
    let mut warnings = [fact_warnings(ledger, desired, max), own.warnings, warnings].concat();
    let over_limit = over_limit(max, held_now, add.len() as u64);
    if over_limit > 0 && set.accept_shortfall {
        warnings.push(format!(
            "{} the account's MaxSubscriberNum; the set accepts the shortfall (acceptShortfall: true)",
            count(over_limit, "desired subscriber does not fit", "desired subscribers do not fit")
        ));
    }
    Ok(AccountPlan {
        name: Some(set.name.clone()),
        official_account: set.official_account.clone(),
        desired,
        confirmed,
        prune: set.prune,
        drift,
        refreshed_at: ledger.drift.at.map(crate::clock::rfc3339_millis),
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
        create: own.create,
        properties: own.changes,
    })
}

/// How many subscribers the ledger holds for `set`'s account out of band (seen by a refresh,
/// never added, imported or listed) that the set does not list: what prune leaves alone
/// unless the set says `pruneOutOfBand: true` (the plan's `out_of_band_kept` when it prunes).
pub(crate) fn out_of_band_unlisted(set: &SubscriberSet, ledger: &AccountView) -> u64 {
    ledger
        .out_of_band
        .iter()
        .filter(|id| !set.subscribers.contains(id))
        .count() as u64
}

/// An account only the ledger still knows: left alone and reported.
pub(crate) fn orphan(
    account: &str,
    ledger: &AccountView,
    confirmed: &mut dyn Confirmed,
) -> Result<AccountPlan, LedgerError> {
    let Merged {
        extra,
        confirmed,
        drift,
        ..
    } = merge(&IdList::default(), confirmed, &ledger.drift)?;
    Ok(AccountPlan {
        name: None,
        official_account: account.to_owned(),
        desired: 0,
        confirmed,
        prune: false,
        add: Vec::new(),
        remove: Vec::new(),
        unmanaged: extra,
        retry: Vec::new(),
        warnings: vec![
            "orphaned: no manifest declares this account any more; its subscribers are left alone and never pruned"
                .into(),
        ],
        drift,
        refreshed_at: ledger.drift.at.map(crate::clock::rfc3339_millis),
        held_back: 0,
        held: Vec::new(),
        out_of_band_kept: 0,
        over_limit: 0,
        accept_shortfall: false,
        create: None,
        properties: Vec::new(),
    })
}

/// What one pass over the confirmed stream finds.
struct Merged {
    /// Desired, not confirmed.
    add: Vec<String>,
    /// Confirmed, not desired.
    extra: Vec<String>,
    confirmed: u64,
    /// The last refresh's drift, less what has been repaired since.
    drift: Drift,
}

/// Merges the sorted desired list, the sorted confirmed stream and the last refresh's sorted
/// drift lists in one pass: nothing of the confirmed stream is kept but what is not desired.
fn merge(
    desired: &IdList,
    confirmed: &mut dyn Confirmed,
    drift: &crate::ledger::RefreshDrift,
) -> Result<Merged, LedgerError> {
    let mut wanted = desired.cursor();
    let (mut gone, mut arrived) = (0, 0);
    let (mut add, mut extra) = (Vec::new(), Vec::new());
    let (mut still_gone, mut still_arrived, mut repaired) = (Vec::new(), Vec::new(), Vec::new());
    let mut count = 0u64;
    confirmed.each(&mut |id| {
        count += 1;
        while let Some(w) = wanted.peek().filter(|w| *w < id) {
            add.push(w.to_owned());
            wanted.advance();
        }
        // Found gone by the refresh, confirmed again since: repaired.
        while let Some(g) = drift.removed.get(gone).filter(|g| g.as_str() < id) {
            still_gone.push(g.clone());
            gone += 1;
        }
        if drift.removed.get(gone).is_some_and(|g| g == id) {
            repaired.push(id.to_owned());
            gone += 1;
        }
        // Found arrived by the refresh, no longer confirmed: repaired (pruned).
        while let Some(a) = drift.added.get(arrived).filter(|a| a.as_str() < id) {
            repaired.push(a.clone());
            arrived += 1;
        }
        if drift.added.get(arrived).is_some_and(|a| a == id) {
            still_arrived.push(id.to_owned());
            arrived += 1;
        }
        if wanted.peek() == Some(id) {
            wanted.advance();
        } else {
            extra.push(id.to_owned());
        }
    })?;
    while let Some(w) = wanted.peek() {
        add.push(w.to_owned());
        wanted.advance();
    }
    still_gone.extend_from_slice(drift.removed.get(gone..).unwrap_or_default());
    repaired.extend_from_slice(drift.added.get(arrived..).unwrap_or_default());
    repaired.sort();
    Ok(Merged {
        add,
        extra,
        confirmed: count,
        drift: Drift {
            out_of_band_added: still_arrived,
            out_of_band_removed: still_gone,
            repaired,
        },
    })
}

/// The warnings the account's known facts call for; `max` is the limit the plan counts with.
fn fact_warnings(ledger: &AccountView, desired: u64, max: Option<u64>) -> Vec<String> {
    let mut warnings = Vec::new();
    let facts = &ledger.facts;
    if let Some(max) = max.filter(|max| desired > *max) {
        warnings.push(format!(
            "{} the account's MaxSubscriberNum {max} by {}",
            count(
                desired,
                "desired subscriber exceeds",
                "desired subscribers exceed"
            ),
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
    warnings
}

/// Desired subscribers the ledger confirms as out of band: listed in a manifest now, so subsync
/// manages them from here on (and prune may remove them once they are no longer listed).
pub(crate) fn adopted(set: &SubscriberSet, ledger: &AccountView) -> Vec<String> {
    ledger
        .out_of_band
        .iter()
        .filter(|id| set.subscribers.contains(id))
        .cloned()
        .collect()
}

/// Takes out of the account's adds and removals the retries whose pause has not passed at
/// `now_ms` (`pause(attempts)` after their last attempt), so that a daemon retries a failing
/// subscriber with growing pauses rather than at every resync. Returns how many were deferred.
pub(crate) fn defer(
    plan: &mut AccountPlan,
    failed: &[FailedEntry],
    now_ms: i64,
    pause: &dyn Fn(u32) -> Duration,
) -> u64 {
    let waiting = |op: Op| -> Vec<&str> {
        failed
            .iter()
            .filter(|f| {
                let pause = i64::try_from(pause(f.attempts).as_millis()).unwrap_or(i64::MAX);
                f.op == op && now_ms < f.last_at.saturating_add(pause)
            })
            .map(|f| f.subscriber.as_str())
            .collect()
    };
    let deferred =
        without(&mut plan.add, &waiting(Op::Add)) + without(&mut plan.remove, &waiting(Op::Remove));
    plan.retry
        .retain(|r| plan.add.binary_search(&r.subscriber).is_ok());
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

/// How many of `adds` the account's known limit `max` leaves out: what it held at the last
/// check (or what the ledger confirms, if more), less this run's removals, plus `adds`, over
/// the limit.
fn over_limit(max: Option<u64>, held: Held, adds: u64) -> u64 {
    let Some(max) = max else {
        return 0;
    };
    (held.now.saturating_sub(held.removed) + adds)
        .saturating_sub(max)
        .min(adds)
}

/// Why prune may not remove `removals` subscribers from this account now, if it may not.
fn prune_guard(
    set: &SubscriberSet,
    ledger: &AccountView,
    confirmed: u64,
    removals: u64,
    options: &PlanOptions,
) -> Option<String> {
    if set.subscribers.is_empty() && !set.allow_empty {
        return Some(
            "prune would remove every subscriber; set allowEmpty: true to allow emptying the account; nothing is removed"
                .into(),
        );
    }
    if ledger.facts.missing_since.is_some() || ledger.facts.invalid_since.is_some() {
        return Some(
            "the account was not found at the last check; nothing is pruned from it".into(),
        );
    }
    let max = options.max_prune_for(confirmed);
    if removals > max && !options.allow_mass_prune {
        return Some(format!(
            "prune would remove {removals} of {}, more than {max} (--max-prune, by default 10% of the confirmed and at least 100, and never more than half of the account); pass --allow-mass-prune if that is intended; nothing is removed",
            count(confirmed, "subscriber", "subscribers")
        ));
    }
    None
}

/// (a ∩ b, a − b) of two sorted, duplicate-free lists, in one merge pass.
fn intersect(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut both, mut only_a) = (Vec::new(), Vec::new());
    let mut b = b.iter().peekable();
    for x in a {
        while b.next_if(|y| *y < x).is_some() {}
        if b.next_if(|y| *y == x).is_some() {
            both.push(x.clone());
        } else {
            only_a.push(x.clone());
        }
    }
    (both, only_a)
}

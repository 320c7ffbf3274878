use std::path::PathBuf;

use super::*;
use crate::ledger::{AccountFacts, AccountState, FailedEntry, Op, Snapshot};

/// The whole plan of `manifests` against a snapshot.
fn compute(
    manifests: &ManifestSet,
    ledger: &Snapshot,
    paths: Vec<String>,
    options: &PlanOptions,
) -> Plan {
    super::compute(manifests, &mut ledger.clone(), paths, options).unwrap()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn set(name: &str, account: &str, subscribers: &[&str], prune: bool) -> SubscriberSet {
    SubscriberSet {
        name: name.into(),
        official_account: account.into(),
        subscribers: subscribers.iter().collect(),
        prune,
        allow_empty: false,
        prune_out_of_band: false,
        accept_shortfall: false,
        source: PathBuf::from("m.yaml"),
        ..SubscriberSet::default()
    }
}

fn manifests(sets: Vec<SubscriberSet>) -> ManifestSet {
    ManifestSet {
        sets,
        digest: "sha256:x".into(),
        ..ManifestSet::default()
    }
}

fn ledger(accounts: Vec<(&str, AccountState)>) -> Snapshot {
    Snapshot {
        lineage: Some("l".into()),
        serial: 7,
        accounts: accounts
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

fn confirmed(list: &[&str]) -> AccountState {
    AccountState {
        confirmed: strings(list),
        ..AccountState::default()
    }
}

#[test]
fn an_empty_ledger_plans_every_desired_subscriber_as_an_add() {
    let plan = compute(
        &manifests(vec![set("w", "@TOA#_w", &["a", "b"], false)]),
        &Snapshot::default(),
        vec![],
        &PlanOptions::default(),
    );
    assert_eq!(plan.accounts[0].add, ["a", "b"]);
    assert_eq!(
        plan.summary,
        PlanSummary {
            add: 2,
            accounts: 1,
            accounts_changed: 1,
            needs_apply: true,
            ..PlanSummary::default()
        }
    );
    assert!(plan.needs_apply());
    assert_eq!(plan.lineage, None);
}

#[test]
fn confirmed_subscribers_are_not_planned_again() {
    let plan = compute(
        &manifests(vec![set("w", "@TOA#_w", &["a", "b"], false)]),
        &ledger(vec![("@TOA#_w", confirmed(&["a", "b"]))]),
        vec![],
        &PlanOptions::default(),
    );
    assert!(!plan.needs_apply());
    assert_eq!(plan.accounts[0].confirmed, 2);
    assert_eq!((plan.serial, plan.lineage.as_deref()), (7, Some("l")));
}

#[test]
fn dropped_subscribers_are_unmanaged_without_prune_and_removed_with_it() {
    let state = || ledger(vec![("@TOA#_w", confirmed(&["a", "old"]))]);
    let keep = compute(
        &manifests(vec![set("w", "@TOA#_w", &["a"], false)]),
        &state(),
        vec![],
        &PlanOptions::default(),
    );
    assert_eq!(
        (
            keep.accounts[0].unmanaged.clone(),
            keep.accounts[0].remove.len()
        ),
        (strings(&["old"]), 0)
    );
    assert!(!keep.needs_apply());
    let prune = compute(
        &manifests(vec![set("w", "@TOA#_w", &["a"], true)]),
        &state(),
        vec![],
        &PlanOptions::default(),
    );
    assert_eq!(prune.accounts[0].remove, ["old"]);
    assert_eq!(prune.summary.remove, 1);
}

#[test]
fn prune_never_empties_an_account_without_allow_empty_and_allow_mass_prune() {
    let state = ledger(vec![("@TOA#_w", confirmed(&["a"]))]);
    let plan = compute(
        &manifests(vec![set("w", "@TOA#_w", &[], true)]),
        &state,
        vec![],
        &PlanOptions::default(),
    );
    assert!(plan.accounts[0].remove.is_empty());
    assert_eq!(plan.accounts[0].held, ["a"]);
    assert!(plan.accounts[0].warnings[0].contains("allowEmpty"));
    assert!(plan.needs_apply(), "held-back removals leave apply short");
    let mut allowed = set("w", "@TOA#_w", &[], true);
    allowed.allow_empty = true;
    let half = compute(
        &manifests(vec![allowed.clone()]),
        &state,
        vec![],
        &PlanOptions::default(),
    );
    assert!(half.accounts[0].remove.is_empty());
    assert!(
        half.accounts[0].warnings[0].contains("never more than half"),
        "{:?}",
        half.accounts[0].warnings
    );
    let mass = PlanOptions {
        allow_mass_prune: true,
        ..PlanOptions::default()
    };
    assert_eq!(
        compute(&manifests(vec![allowed]), &state, vec![], &mass).accounts[0].remove,
        ["a"]
    );
}

#[test]
fn a_sixty_subscriber_account_loses_at_most_half_in_one_run() {
    let all: Vec<String> = (0..60).map(|i| format!("u{i:02}")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let state = ledger(vec![("@TOA#_w", confirmed(&refs))]);
    let keep_ten = set("w", "@TOA#_w", &refs[..10], true);
    let plan = compute(
        &manifests(vec![keep_ten]),
        &state,
        vec![],
        &PlanOptions::default(),
    );
    assert_eq!(
        plan.accounts[0].remove.len(),
        0,
        "50 of 60 is more than half"
    );
    assert_eq!(plan.accounts[0].held_back, 50);
    let keep_thirty = set("w", "@TOA#_w", &refs[..30], true);
    let plan = compute(
        &manifests(vec![keep_thirty]),
        &state,
        vec![],
        &PlanOptions::default(),
    );
    assert_eq!(plan.accounts[0].remove.len(), 30, "half may go");
}

#[test]
fn prune_leaves_out_of_band_subscribers_unless_the_set_opts_in() {
    let mut state = confirmed(&["a", "b", "c", "ours", "walk-in"]);
    state.view.out_of_band = strings(&["walk-in"]);
    let snapshot = ledger(vec![("@TOA#_w", state)]);
    let options = PlanOptions::default();
    let pruned = compute(
        &manifests(vec![set("w", "@TOA#_w", &["a", "b", "c"], true)]),
        &snapshot,
        vec![],
        &options,
    );
    assert_eq!(pruned.accounts[0].remove, ["ours"]);
    assert_eq!(pruned.accounts[0].unmanaged, ["walk-in"]);
    assert_eq!(pruned.accounts[0].out_of_band_kept, 1);
    assert!(
        pruned.accounts[0].warnings[0].starts_with(
            "1 subscriber appeared out of band (seen by a refresh, never added, imported or listed by subsync); prune leaves it:"
        ),
        "{:?}",
        pruned.accounts[0].warnings
    );
    // What import's hint counts is what prune keeps.
    let view = &snapshot.accounts["@TOA#_w"].view;
    let listed = set("w", "@TOA#_w", &["a", "b", "c"], true);
    assert_eq!(out_of_band_unlisted(&listed, view), 1);
    let listing_it = set("w", "@TOA#_w", &["a", "walk-in"], true);
    assert_eq!(out_of_band_unlisted(&listing_it, view), 0);
    let mut opted = set("w", "@TOA#_w", &["a", "b", "c"], true);
    opted.prune_out_of_band = true;
    let all = compute(&manifests(vec![opted]), &snapshot, vec![], &options);
    assert_eq!(all.accounts[0].remove, ["ours", "walk-in"]);
}

#[test]
fn a_known_shortfall_needs_apply_unless_the_set_accepts_it() {
    let mut state = confirmed(&["a", "b"]);
    state.view.facts = AccountFacts {
        max_subscribers: Some(2),
        subscriber_num: Some(2),
        ..AccountFacts::default()
    };
    let snapshot = ledger(vec![("@TOA#_w", state)]);
    let options = PlanOptions::default();
    let mut wanted = set("w", "@TOA#_w", &["a", "b", "c"], false);
    let plan = compute(
        &manifests(vec![wanted.clone()]),
        &snapshot,
        vec![],
        &options,
    );
    assert_eq!(
        (plan.accounts[0].over_limit, plan.summary.over_limit),
        (1, 1)
    );
    assert!(plan.needs_apply());
    wanted.accept_shortfall = true;
    let accepted = compute(&manifests(vec![wanted]), &snapshot, vec![], &options);
    assert_eq!(
        (
            accepted.accounts[0].over_limit,
            accepted.summary.over_limit,
            accepted.summary.over_limit_accepted
        ),
        (1, 1, 1)
    );
    assert!(!accepted.needs_apply());
}

#[test]
fn drift_repaired_since_the_refresh_is_shown_as_repaired() {
    let mut state = confirmed(&["back"]);
    state.view.drift.removed = strings(&["back", "still-gone"]);
    let plan = compute(
        &manifests(vec![set("w", "@TOA#_w", &["back"], false)]),
        &ledger(vec![("@TOA#_w", state)]),
        vec![],
        &PlanOptions::default(),
    );
    assert_eq!(plan.accounts[0].drift.out_of_band_removed, ["still-gone"]);
    assert_eq!(plan.accounts[0].drift.repaired, ["back"]);
    assert_eq!(plan.summary.drift_removed, 1);
}

#[test]
fn previous_failures_are_marked_as_retries() {
    let mut state = confirmed(&[]);
    state.view.failed = vec![FailedEntry {
        op: Op::Add,
        subscriber: "b".into(),
        code: 130010,
        attempts: 2,
        last_at: 0,
    }];
    let plan = compute(
        &manifests(vec![set("w", "@TOA#_w", &["a", "b"], false)]),
        &ledger(vec![("@TOA#_w", state)]),
        vec![],
        &PlanOptions::default(),
    );
    assert_eq!(plan.accounts[0].add, ["a", "b"]);
    assert_eq!(
        plan.accounts[0].retry,
        vec![RetryEntry {
            subscriber: "b".into(),
            code: 130010,
            attempts: 2
        }]
    );
    assert_eq!(plan.summary.retry, 1);
}

#[test]
fn desired_beyond_a_known_limit_warns_by_how_many() {
    let mut state = confirmed(&[]);
    state.view.facts = AccountFacts {
        max_subscribers: Some(2),
        ..AccountFacts::default()
    };
    let plan = compute(
        &manifests(vec![set("w", "@TOA#_w", &["a", "b", "c"], false)]),
        &ledger(vec![("@TOA#_w", state)]),
        vec![],
        &PlanOptions::default(),
    );
    assert!(
        plan.accounts[0].warnings[0].contains("exceed the account's MaxSubscriberNum 2 by 1"),
        "{:?}",
        plan.accounts[0].warnings
    );
}

#[test]
fn accounts_only_the_ledger_knows_are_reported_unmanaged() {
    let plan = compute(
        &manifests(vec![]),
        &ledger(vec![("@TOA#_gone", confirmed(&["x"]))]),
        vec![],
        &PlanOptions::default(),
    );
    assert_eq!(plan.accounts[0].name, None);
    assert_eq!(plan.accounts[0].unmanaged, ["x"]);
    assert!(!plan.needs_apply());
}

#[test]
fn drift_is_checked_against_the_confirmed_stream_in_one_pass() {
    let mut state = confirmed(&["b", "c", "e"]);
    state.view.drift.removed = strings(&["a", "c"]);
    state.view.drift.added = strings(&["d", "e"]);
    let plan = compute(
        &manifests(vec![set("w", "@TOA#_w", &["b", "c", "e"], false)]),
        &ledger(vec![("@TOA#_w", state)]),
        vec![],
        &PlanOptions::default(),
    );
    let drift = &plan.accounts[0].drift;
    assert_eq!(drift.out_of_band_removed, ["a"]);
    assert_eq!(drift.out_of_band_added, ["e"]);
    assert_eq!(drift.repaired, ["c", "d"]);
}

#[test]
fn retries_wait_for_their_pause_to_pass() {
    let failed = |s: &str, attempts: u32, last_at: i64| FailedEntry {
        op: Op::Add,
        subscriber: s.into(),
        code: 130010,
        attempts,
        last_at,
    };
    let failures = vec![failed("b", 1, 1_000), failed("d", 3, 1_000)];
    let mut state = AccountState::default();
    state.view.failed = failures.clone();
    let m = manifests(vec![set("a", "@TOA#_a", &["a", "b", "c", "d"], false)]);
    let snapshot = ledger(vec![("@TOA#_a", state)]);
    let pause = |attempts: u32| std::time::Duration::from_secs(10 * u64::from(attempts));
    // At 15 s after the epoch: b's 10 s pause has passed, d's 30 s has not.
    let mut plan = compute(&m, &snapshot, vec![], &PlanOptions::default());
    assert_eq!(defer(&mut plan.accounts[0], &failures, 15_000, &pause), 1);
    assert_eq!(plan.accounts[0].add, strings(&["a", "b", "c"]));
    assert_eq!(plan.accounts[0].retry.len(), 1);
    let mut later = compute(&m, &snapshot, vec![], &PlanOptions::default());
    assert_eq!(defer(&mut later.accounts[0], &failures, 31_000, &pause), 0);
    assert_eq!(later.accounts[0].add.len(), 4);
}

#[test]
fn out_of_band_subscribers_a_manifest_lists_are_adopted() {
    let mut state = confirmed(&["a", "walk-in", "other"]);
    state.view.out_of_band = strings(&["other", "walk-in"]);
    let listed = set("w", "@TOA#_w", &["a", "walk-in"], true);
    assert_eq!(adopted(&listed, &state.view), ["walk-in"]);
    assert!(adopted(&listed, &confirmed(&["a"]).view).is_empty());
}

#[test]
fn a_raised_limit_plans_the_adds_that_now_fit_and_a_property_change_needs_apply() {
    let held: Vec<String> = (0..50).map(|i| format!("u{i:02}")).collect();
    let wanted: Vec<String> = (0..80).map(|i| format!("u{i:02}")).collect();
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let mut full = AccountState {
        confirmed: held,
        ..AccountState::default()
    };
    full.view.facts = AccountFacts {
        max_subscribers: Some(50),
        subscriber_num: Some(50),
        ..AccountFacts::default()
    };
    full.view.properties.live.max_subscribers = Some(50);
    let snapshot = ledger(vec![("@TOA#_w", full)]);
    let undeclared = set("w", "@TOA#_w", &wanted, false);
    let plan = compute(
        &manifests(vec![undeclared.clone()]),
        &snapshot,
        vec![],
        &PlanOptions::default(),
    );
    assert_eq!(plan.accounts[0].over_limit, 30);
    let raised = SubscriberSet {
        account: crate::properties::Properties {
            max_subscribers: Some(80),
            ..Default::default()
        },
        ..undeclared
    };
    let plan = compute(
        &manifests(vec![raised.clone()]),
        &snapshot,
        vec![],
        &PlanOptions::default(),
    );
    let a = &plan.accounts[0];
    assert_eq!((a.add.len(), a.over_limit, a.properties.len()), (30, 0, 1));
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    // With the adds confirmed, the change alone still needs an apply.
    let mut converged = confirmed(&wanted);
    converged.view.properties.live.max_subscribers = Some(50);
    let plan = compute(
        &manifests(vec![raised]),
        &ledger(vec![("@TOA#_w", converged)]),
        vec![],
        &PlanOptions::default(),
    );
    assert!(plan.accounts[0].add.is_empty());
    assert_eq!(
        (plan.summary.property_changes, plan.summary.accounts_changed),
        (1, 1)
    );
    assert!(plan.needs_apply());
}

//! An account's own call in a run, under tokio's paused clock against the emulator's rules:
//! when it goes (create first; modify after the removals, before the adds), what it carries
//! (exactly the declared fields that differ), and what a refusal does.

use std::sync::{Arc, Mutex};

use crate::apply::tests::{apply, config, engine, engine_with, ids, manifests, service, set};
use crate::apply::{AccountStatus, Ending, OwnResult};
use crate::manifest::SubscriberSet;
use crate::properties::{Field, Properties, Value};
use crate::settings::Purpose;
use crate::tencent::Api;
use crate::tencent::api::Command;
use crate::testing::FakeApi;

fn declaring(account: &str, subscribers: Vec<String>, declared: Properties) -> SubscriberSet {
    SubscriberSet {
        account: declared,
        ..set(account, subscribers)
    }
}

fn named(name: &str) -> Properties {
    Properties {
        name: Some(name.into()),
        ..Properties::default()
    }
}

fn limit(max: u64) -> Properties {
    Properties {
        max_subscribers: Some(max),
        ..Properties::default()
    }
}

/// The own calls made, each with the fields it carried, in order.
type Sent = Arc<Mutex<Vec<(Command, Properties)>>>;

fn recording(api: FakeApi) -> (FakeApi, Sent) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let api = api.scripted(move |r| {
        if let Some(fields) = &r.fields {
            log.lock().unwrap().push((r.command, fields.clone()));
        }
        None
    });
    (api, sent)
}

#[tokio::test(start_paused = true)]
async fn a_full_accounts_raised_limit_is_set_before_the_adds_that_now_fit() {
    let dir = tempfile::tempdir().unwrap();
    let held = ids("u", 50);
    let held: Vec<&str> = held.iter().map(String::as_str).collect();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 50, &held)]);
    let engine = engine(dir.path(), &api, 0).await;
    let run = apply(
        &engine,
        &manifests(vec![declaring("@TOA#_a", ids("u", 80), limit(80))]),
    )
    .await;
    assert_eq!(run.ending(), Ending::Converged, "{:?}", run.summary);
    let a = &run.summary.accounts[0];
    assert_eq!((a.added, a.not_added_limit), (30, 0));
    assert_eq!(a.max_subscribers, Some(80));
    let own = a.properties.as_ref().unwrap();
    assert_eq!((own.result, own.set()), (OwnResult::Done, 1));
    assert_eq!(api.state().accounts["@TOA#_a"].max_subscribers, 80);
    let modify = api.calls(Command::ModifyOfficialAccountBaseInfo);
    let adds = api.calls(Command::AddSubscriber);
    assert_eq!(modify.len(), 1);
    assert!(
        adds.iter().all(|at| *at >= modify[0]),
        "modify before adding"
    );
    // In force now: the next run sends nothing but the probe.
    let again = apply(
        &engine,
        &manifests(vec![declaring("@TOA#_a", ids("u", 80), limit(80))]),
    )
    .await;
    assert_eq!(again.ending(), Ending::Converged, "{:?}", again.summary);
    assert!(again.summary.accounts[0].properties.is_none());
    assert_eq!(api.calls(Command::ModifyOfficialAccountBaseInfo).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn removals_go_before_a_lowered_limit() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 100, &[])]);
    let engine = engine(dir.path(), &api, 0).await;
    apply(&engine, &manifests(vec![set("@TOA#_a", ids("u", 60))])).await;
    let kept = ids("u", 45);
    let pruned = SubscriberSet {
        prune: true,
        ..declaring("@TOA#_a", kept.clone(), limit(50))
    };
    let run = apply(&engine, &manifests(vec![pruned])).await;
    assert_eq!(run.ending(), Ending::Converged, "{:?}", run.summary);
    assert_eq!(run.summary.accounts[0].removed, 15);
    let deletes = api.calls(Command::DeleteSubscriber);
    let modify = api.calls(Command::ModifyOfficialAccountBaseInfo);
    assert_eq!(modify.len(), 1);
    assert!(deletes.iter().all(|at| *at <= modify[0]), "removals first");
    assert_eq!(api.state().accounts["@TOA#_a"].max_subscribers, 50);
    assert_eq!(api.subscribers("@TOA#_a"), kept);
}

#[tokio::test(start_paused = true)]
async fn a_limit_below_the_count_is_refused_never_sent_and_leaves_the_run_partial() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 100, &[])]);
    let engine = engine(dir.path(), &api, 0).await;
    apply(&engine, &manifests(vec![set("@TOA#_a", ids("u", 60))])).await;
    let mut declared = limit(50);
    declared.name = Some("A".into());
    let run = apply(
        &engine,
        &manifests(vec![declaring("@TOA#_a", ids("u", 60), declared)]),
    )
    .await;
    assert_eq!(run.ending(), Ending::Partial);
    let own = run.summary.accounts[0].properties.as_ref().unwrap();
    let refused = own
        .changes
        .iter()
        .find(|c| c.field == Field::MaxSubscribers)
        .and_then(|c| c.refused.clone())
        .unwrap();
    assert!(refused.contains("below the 60 subscribers"), "{refused}");
    // The name still goes; the limit does not.
    let state = api.state();
    assert_eq!(state.accounts["@TOA#_a"].max_subscribers, 100);
    assert_eq!(state.accounts["@TOA#_a"].name, "A");
}

#[tokio::test(start_paused = true)]
async fn only_the_declared_fields_that_differ_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (api, sent) = recording(FakeApi::with_accounts(&[("@TOA#_a", 100, &[])]));
    let engine = engine(dir.path(), &api, 0).await;
    // The seeded account is named after its id: "a". Its introduction is not declared.
    let mut declared = named("a");
    declared.organization = Some("Newsroom".into());
    let run = apply(
        &engine,
        &manifests(vec![declaring("@TOA#_a", vec![], declared)]),
    )
    .await;
    assert_eq!(run.ending(), Ending::Converged);
    let sent = sent.lock().unwrap().clone();
    assert_eq!(
        sent,
        vec![(
            Command::ModifyOfficialAccountBaseInfo,
            Properties {
                organization: Some("Newsroom".into()),
                ..Properties::default()
            }
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn a_console_edit_is_drift_and_is_set_back() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 100, &[])]);
    let engine = engine(dir.path(), &api, 0).await;
    let declared = manifests(vec![declaring("@TOA#_a", vec![], named("Weekly"))]);
    let first = apply(&engine, &declared).await;
    assert!(
        !first.summary.accounts[0]
            .properties
            .as_ref()
            .unwrap()
            .changes[0]
            .drift
    );
    api.modify_account("@TOA#_a", &named("Console edit"))
        .await
        .unwrap();
    let run = apply(&engine, &declared).await;
    assert_eq!(run.ending(), Ending::Converged);
    let own = run.summary.accounts[0].properties.as_ref().unwrap();
    assert!(own.changes[0].drift);
    assert_eq!(
        own.changes[0].from,
        Some(Value::Text("Console edit".into()))
    );
    assert_eq!(run.summary.totals.property_drift, 1);
    assert_eq!(api.state().accounts["@TOA#_a"].name, "Weekly");
}

fn creating(owner: &str) -> SubscriberSet {
    SubscriberSet {
        create: Some(owner.into()),
        ..declaring("@TOA#_new", ids("u", 3), named("New"))
    }
}

async fn allowing(dir: &std::path::Path, api: &FakeApi) -> crate::engine::Engine {
    let mut config = config(dir, 0, Purpose::Once);
    config.policy.prune.allow_create = true;
    engine_with(config, api).await
}

#[tokio::test(start_paused = true)]
async fn a_missing_account_is_created_then_filled_in_the_same_run_and_never_twice() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[]);
    let engine = allowing(dir.path(), &api).await;
    let run = apply(&engine, &manifests(vec![creating("admin")])).await;
    assert_eq!(run.ending(), Ending::Converged, "{:?}", run.summary);
    assert_eq!(run.summary.totals.created, 1);
    assert_eq!(run.summary.accounts[0].added, 3);
    let created = api.calls(Command::CreateOfficialAccount);
    assert_eq!(created.len(), 1);
    assert!(
        api.calls(Command::AddSubscriber)
            .iter()
            .all(|at| *at >= created[0])
    );
    let state = api.state();
    let account = &state.accounts["@TOA#_new"];
    assert_eq!(
        (account.name.as_str(), account.owner.as_str()),
        ("New", "admin")
    );
    let again = apply(&engine, &manifests(vec![creating("admin")])).await;
    assert_eq!(again.ending(), Ending::Converged);
    assert_eq!(api.calls(Command::CreateOfficialAccount).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn without_the_flag_a_missing_account_is_reported_naming_it_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[]);
    let engine = engine(dir.path(), &api, 0).await;
    let run = apply(&engine, &manifests(vec![creating("admin")])).await;
    assert_eq!(run.ending(), Ending::Partial);
    let a = &run.summary.accounts[0];
    assert_eq!(a.status, AccountStatus::Missing);
    let own = a.properties.as_ref().unwrap();
    assert_eq!(own.result, OwnResult::NotSent);
    let why = own.create.as_ref().unwrap().refused.clone().unwrap();
    assert!(
        why.contains("--allow-create (SUBSYNC_ALLOW_CREATE)"),
        "{why}"
    );
    assert!(api.calls(Command::CreateOfficialAccount).is_empty());
    assert!(api.state().accounts.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_id_in_use_fails_the_account_once_without_a_retry_loop() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[]).scripted(|r| {
        (r.command == Command::CreateOfficialAccount)
            .then(|| service(Command::CreateOfficialAccount, 130008))
    });
    let engine = allowing(dir.path(), &api).await;
    let run = apply(&engine, &manifests(vec![creating("admin")])).await;
    assert_eq!(run.ending(), Ending::Partial);
    assert_eq!(api.calls(Command::CreateOfficialAccount).len(), 1);
    assert!(api.calls(Command::AddSubscriber).is_empty());
    let a = &run.summary.accounts[0];
    assert_eq!(a.status, AccountStatus::Missing);
    let own = a.properties.as_ref().unwrap();
    assert_eq!((own.result, own.code), (OwnResult::Failed, Some(130008)));
    assert_eq!(a.failed.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_field_that_was_already_as_declared_is_kept_and_its_console_edit_is_drift() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 100, &[])]);
    let engine = engine(dir.path(), &api, 0).await;
    // The name is already as declared ("a"); the organization is set by the first run.
    let mut declared = named("a");
    declared.organization = Some("Newsroom".into());
    let declared = manifests(vec![declaring("@TOA#_a", vec![], declared)]);
    apply(&engine, &declared).await;
    api.modify_account("@TOA#_a", &named("Console"))
        .await
        .unwrap();
    let run = apply(&engine, &declared).await;
    let own = run.summary.accounts[0].properties.as_ref().unwrap();
    assert_eq!(own.changes.len(), 1);
    assert_eq!(own.changes[0].field, Field::Name);
    assert!(own.changes[0].drift, "{own:?}");
}

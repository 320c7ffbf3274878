//! The core, unit-tested in-process under tokio's paused clock: the executor (batches,
//! retries, limit splitting, bisection, drain), the probe, refresh, and the Reconciler that
//! runs them, against the emulator's rules without HTTP ([`FakeApi`]) and a SQLite ledger
//! (whose work on the blocking pool holds paused time still while it runs). No test sleeps on
//! the wall clock; virtual time is what is measured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::emulator::{CursorFault, FollowLimitMode, RemoteState, Rules};
use crate::engine::{Engine, Hooks};
use crate::ledger::Location;
use crate::manifest::{Limits, ManifestSet, SubscriberSet};
use crate::settings::{Config, Purpose, Remote};
use crate::tencent::api::Command;
use crate::testing::FakeApi;

pub(crate) fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:05}")).collect()
}

pub(crate) fn set(account: &str, subscribers: Vec<String>) -> SubscriberSet {
    SubscriberSet {
        name: account.trim_start_matches("@TOA#_").to_owned(),
        official_account: account.to_owned(),
        subscribers: subscribers.iter().collect(),
        prune: false,
        allow_empty: false,
        prune_out_of_band: false,
        accept_shortfall: false,
        source: PathBuf::from("m.yaml"),
        ..SubscriberSet::default()
    }
}

pub(crate) fn manifests(sets: Vec<SubscriberSet>) -> Arc<ManifestSet> {
    let mut sets = sets;
    sets.sort_by(|a, b| a.official_account.cmp(&b.official_account));
    Arc::new(ManifestSet {
        digest: format!("sha256:{}", sets.len()),
        sets,
        ..ManifestSet::default()
    })
}

/// A run's configuration for tests: a ledger in `dir`, `qps` calls a second per command.
pub(crate) fn config(dir: &std::path::Path, qps: u32, purpose: Purpose) -> Config {
    let mut config = crate::settings::resolve(
        crate::settings::RunRequest {
            service: Default::default(),
            state: crate::settings::StateRequest {
                at: dir.display().to_string(),
                sandbox: true,
                ..Default::default()
            },
            qps,
            concurrency: None,
            limits: Limits::default(),
            prune: Default::default(),
            revision: Some("test".into()),
            open_files: None,
            notify_sinks: 0,
        },
        purpose,
        &[],
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    config.remote = Remote::Sandbox {
        config: None,
        state_dir: dir.join("unused"),
    };
    config.ledger = Location::sqlite(dir.join("ledger"));
    config
}

/// An engine on `api`, leading a ledger in `dir`.
pub(crate) async fn engine(dir: &std::path::Path, api: &FakeApi, qps: u32) -> Engine {
    engine_with(config(dir, qps, Purpose::Once), api).await
}

pub(crate) async fn engine_with(config: Config, api: &FakeApi) -> Engine {
    let mut engine = Engine::with_api(config, Arc::new(api.clone()), Hooks::default());
    engine.lead("apply").await.unwrap();
    engine
}

pub(crate) async fn apply(engine: &Engine, manifests: &Arc<ManifestSet>) -> Reconciled {
    apply_until(engine, manifests, &CancellationToken::new()).await
}

pub(crate) async fn apply_until(
    engine: &Engine,
    manifests: &Arc<ManifestSet>,
    cancel: &CancellationToken,
) -> Reconciled {
    let job = Job {
        manifests: manifests.clone(),
        saved: None,
        revision: None,
        trigger: Trigger::Apply,
        refresh: false,
    };
    engine.reconcile(job, cancel).await.unwrap()
}

pub(crate) fn service(command: Command, code: i64) -> crate::tencent::ApiError {
    crate::tencent::ApiError::Service {
        command,
        code,
        info: String::new(),
    }
}

/// A token cancelled `after` from now (on tokio's clock).
fn cancelled_after(after: Duration) -> CancellationToken {
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        stopper.cancel();
    });
    cancel
}

/// The smallest gap between consecutive instants.
fn tightest(times: &[Instant]) -> Duration {
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or(Duration::MAX)
}

#[tokio::test(start_paused = true)]
async fn adds_go_in_batches_of_one_hundred_paced_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 1000, &[])]);
    let engine = engine(dir.path(), &api, 10).await;
    let run = apply(&engine, &manifests(vec![set("@TOA#_a", ids("u", 250))])).await;
    assert_eq!(run.ending(), Ending::Converged);
    assert_eq!(run.summary.totals.added, 250);
    let adds = api.calls(Command::AddSubscriber);
    assert_eq!(adds.len(), 3, "250 subscribers take three calls");
    assert!(
        tightest(&adds) >= Duration::from_millis(100),
        "10 calls a second at most"
    );
    assert_eq!(api.subscribers("@TOA#_a"), ids("u", 250));
    // Converged: the next run sends nothing at all.
    let before = api.all_calls();
    let again = apply(&engine, &manifests(vec![set("@TOA#_a", ids("u", 250))])).await;
    assert_eq!(again.summary.requests, 0);
    assert_eq!(api.all_calls(), before);
}

#[tokio::test(start_paused = true)]
async fn a_passing_fault_is_retried_after_a_backoff_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 1000, &[])]).scripted(|r| {
        (r.command == Command::AddSubscriber && r.index <= 2)
            .then(|| service(Command::AddSubscriber, 10004))
    });
    let engine = engine(dir.path(), &api, 0).await;
    let run = apply(&engine, &manifests(vec![set("@TOA#_a", ids("u", 5))])).await;
    assert_eq!(run.ending(), Ending::Converged);
    assert_eq!((run.summary.retries, run.summary.requests), (2, 4));
    let adds = api.calls(Command::AddSubscriber);
    // Equal jitter over 100 ms, then 200 ms: at least half of each window.
    assert!(adds[1] - adds[0] >= Duration::from_millis(50));
    assert!(adds[2] - adds[1] >= Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_fault_that_persists_is_recorded_after_ten_attempts_and_retried_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 1000, &[])])
        .scripted(|r| (r.command == Command::AddSubscriber).then(|| service(r.command, 20005)));
    let engine = engine(dir.path(), &api, 0).await;
    let run = apply(&engine, &manifests(vec![set("@TOA#_a", ids("u", 3))])).await;
    assert_eq!(run.ending(), Ending::Partial);
    assert_eq!(api.calls(Command::AddSubscriber).len(), 10);
    let failed = &run.summary.accounts[0].failed;
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|f| f.code == 20005));
    let snapshot = engine.snapshot().await.unwrap();
    assert!(
        snapshot.accounts["@TOA#_a"]
            .view
            .failed
            .iter()
            .all(|f| f.attempts == 1)
    );
}

#[tokio::test(start_paused = true)]
async fn full_account_is_filled_exactly_then_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 130, &[])]);
    let engine = engine(dir.path(), &api, 0).await;
    let run = apply(&engine, &manifests(vec![set("@TOA#_a", ids("u", 250))])).await;
    let a = &run.summary.accounts[0];
    assert_eq!(a.status, AccountStatus::LimitReached);
    assert_eq!((a.added, a.not_added_limit), (130, 120));
    assert_eq!(api.subscribers("@TOA#_a").len(), 130);
    // Splitting finds the 30 places left in a handful of calls, not one per subscriber.
    assert!(api.calls(Command::AddSubscriber).len() < 20);
    // Next run: the probe says it is full; no add is sent.
    let adds = api.calls(Command::AddSubscriber).len();
    let again = apply(&engine, &manifests(vec![set("@TOA#_a", ids("u", 250))])).await;
    assert_eq!(again.summary.accounts[0].not_added_limit, 120);
    assert_eq!(api.calls(Command::AddSubscriber).len(), adds);
}

#[tokio::test(start_paused = true)]
async fn a_follow_limited_member_is_isolated_by_bisection_and_the_rest_added() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = RemoteState::default();
    state.seed_account("@TOA#_a", 1000, &[], 0);
    state.seed_account("@TOA#_other", 1000, &["u00042".to_owned()], 0);
    let rules = Rules {
        follow_limit: 1,
        follow_limit_mode: FollowLimitMode::Request,
        cursor_fault: None,
    };
    let api = FakeApi::new(state, rules);
    let engine = engine(dir.path(), &api, 0).await;
    let run = apply(&engine, &manifests(vec![set("@TOA#_a", ids("u", 100))])).await;
    let a = &run.summary.accounts[0];
    assert_eq!(a.added, 99);
    assert_eq!(
        a.failed
            .iter()
            .map(|f| (f.subscriber.as_str(), f.code))
            .collect::<Vec<_>>(),
        [("u00042", 130010)]
    );
    // log2(100) levels of two halves each, about.
    assert!(api.calls(Command::AddSubscriber).len() <= 16);
}

#[tokio::test(start_paused = true)]
async fn a_stop_lets_batches_in_flight_finish_and_sends_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let api =
        FakeApi::with_accounts(&[("@TOA#_a", 10_000, &[])]).with_latency(Duration::from_secs(1));
    let mut config = config(dir.path(), 0, Purpose::Once);
    config.policy.concurrency = 2;
    let engine = engine_with(config, &api).await;
    // The probe takes 1 s; two batches are then in flight until 2 s.
    let cancel = cancelled_after(Duration::from_millis(1500));
    let run = apply_until(
        &engine,
        &manifests(vec![set("@TOA#_a", ids("u", 1000))]),
        &cancel,
    )
    .await;
    assert_eq!(run.ending(), Ending::Interrupted);
    assert_eq!(
        run.summary.totals.added, 200,
        "the two batches in flight were recorded"
    );
    assert_eq!(api.calls(Command::AddSubscriber).len(), 2);
    assert_eq!(api.subscribers("@TOA#_a").len(), 200);
    assert_eq!(run.summary.accounts[0].status, AccountStatus::Interrupted);
}

#[tokio::test(start_paused = true)]
async fn batches_still_in_flight_at_the_drain_deadline_are_abandoned_unrecorded() {
    let dir = tempfile::tempdir().unwrap();
    // Every call takes ten minutes: the adds still in flight at the stop outlast the drain.
    let api =
        FakeApi::with_accounts(&[("@TOA#_a", 10_000, &[])]).with_latency(Duration::from_secs(600));
    let engine = engine(dir.path(), &api, 0).await;
    let started = Instant::now();
    let cancel = cancelled_after(Duration::from_secs(700));
    let run = apply_until(
        &engine,
        &manifests(vec![set("@TOA#_a", ids("u", 300))]),
        &cancel,
    )
    .await;
    // 600 s for the probe, the stop at 700 s, then 5 s of drain.
    assert_eq!(Instant::now() - started, Duration::from_secs(705));
    assert_eq!(run.ending(), Ending::Interrupted);
    assert_eq!(
        run.summary.totals.failed, 0,
        "an abandoned batch is not a failure"
    );
    let snapshot = engine.snapshot().await.unwrap();
    assert!(
        snapshot
            .accounts
            .get("@TOA#_a")
            .is_none_or(|a| a.view.failed.is_empty())
    );
}

/// The seed of a randomised test: `SUBSYNC_TEST_SEED` when set, else a fresh one. Failures
/// print it, so that any run can be repeated.
fn seed() -> u64 {
    std::env::var("SUBSYNC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

#[tokio::test(start_paused = true)]
async fn random_faults_never_lose_or_duplicate_a_subscriber() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let dice = std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(seed));
    let api = FakeApi::with_accounts(&[("@TOA#_a", 10_000, &[]), ("@TOA#_b", 10_000, &[])])
        .scripted(move |r| {
            let mut dice = dice.lock().unwrap();
            let roll: f64 = dice.random();
            (roll < 0.3).then(|| match dice.random_range(0..3) {
                0 => service(r.command, 10004),
                1 => crate::tencent::ApiError::Http {
                    command: r.command,
                    status: 502,
                    retry_after: None,
                },
                _ => service(r.command, 60007),
            })
        });
    let engine = engine(dir.path(), &api, 0).await;
    let wanted = manifests(vec![
        set("@TOA#_a", ids("a", 700)),
        set("@TOA#_b", ids("b", 450)),
    ]);
    let mut runs = 0;
    loop {
        runs += 1;
        let run = apply(&engine, &wanted).await;
        if run.ending() == Ending::Converged {
            break;
        }
        assert!(runs < 5, "seed {seed}: not converged after {runs} runs");
    }
    assert_eq!(api.subscribers("@TOA#_a"), ids("a", 700), "seed {seed}");
    assert_eq!(api.subscribers("@TOA#_b"), ids("b", 450), "seed {seed}");
    let snapshot = engine.snapshot().await.unwrap();
    assert_eq!(
        snapshot.accounts["@TOA#_a"].confirmed,
        ids("a", 700),
        "seed {seed}"
    );
}

#[tokio::test(start_paused = true)]
async fn wrong_credentials_stop_the_run_after_the_first_call() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 1000, &[])])
        .scripted(|r| Some(service(r.command, 70009)));
    let engine = engine(dir.path(), &api, 0).await;
    let run = apply(&engine, &manifests(vec![set("@TOA#_a", ids("u", 500))])).await;
    assert!(matches!(run.ending(), Ending::Stopped(why) if why.contains("70009")));
    assert_eq!(api.all_calls(), 1);
    assert_eq!(run.summary.accounts[0].status, AccountStatus::Stopped);
    assert_eq!(
        run.summary.totals.failed, 0,
        "nothing is recorded as failed"
    );
}

#[tokio::test(start_paused = true)]
async fn the_probe_asks_fifty_accounts_a_call_at_the_pace_and_fails_a_missing_accounts_adds() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = RemoteState::default();
    let accounts: Vec<String> = (0..120).map(|i| format!("@TOA#_a{i:03}")).collect();
    for id in accounts.iter().skip(1) {
        state.seed_account(id, 1000, &[], 0);
    }
    let api = FakeApi::new(state, Rules::default());
    let engine = engine(dir.path(), &api, 20).await;
    let sets = accounts.iter().map(|a| set(a, ids("u", 1))).collect();
    let run = apply(&engine, &manifests(sets)).await;
    let info = api.calls(Command::GetOfficialAccountInfo);
    assert_eq!(info.len(), 3, "120 accounts, 50 a call");
    assert!(tightest(&info) >= Duration::from_millis(50));
    let missing = &run.summary.accounts[0];
    assert_eq!(missing.status, AccountStatus::Missing);
    assert_eq!(missing.failed[0].code, 130004);
    let adds = api.calls(Command::AddSubscriber);
    assert_eq!(adds.len(), 119, "nothing is sent to the missing account");
}

#[tokio::test(start_paused = true)]
async fn a_probe_chunk_that_faults_is_asked_again_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = RemoteState::default();
    let accounts: Vec<String> = (0..120).map(|i| format!("@TOA#_a{i:03}")).collect();
    for id in &accounts {
        state.seed_account(id, 1000, &[], 0);
    }
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    let api = FakeApi::new(state, Rules::default()).scripted(move |r| {
        if r.command != Command::GetOfficialAccountInfo {
            return None;
        }
        let mut seen = seen.lock().unwrap();
        seen.push(r.account.clone());
        // The second chunk's first attempt meets a passing fault.
        (r.account == "@TOA#_a050" && seen.iter().filter(|a| *a == &r.account).count() == 1)
            .then(|| service(Command::GetOfficialAccountInfo, 10004))
    });
    let engine = engine(dir.path(), &api, 20).await;
    let sets = accounts.iter().map(|a| set(a, ids("u", 1))).collect();
    let run = apply(&engine, &manifests(sets)).await;
    assert_eq!(run.ending(), Ending::Converged);
    let mut asked = asked.lock().unwrap().clone();
    asked.sort();
    assert_eq!(
        asked,
        ["@TOA#_a000", "@TOA#_a050", "@TOA#_a050", "@TOA#_a100"],
        "only the chunk that faulted is asked again"
    );
    assert!(tightest(&api.calls(Command::GetOfficialAccountInfo)) >= Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn a_refresh_of_many_accounts_never_reads_faster_than_the_pace() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = RemoteState::default();
    let accounts: Vec<String> = (0..200).map(|i| format!("@TOA#_a{i:03}")).collect();
    for (i, id) in accounts.iter().enumerate() {
        state.seed_account(id, 1000, &ids("u", if i % 30 == 0 { 450 } else { 3 }), 0);
    }
    let api = FakeApi::new(state, Rules::default()).with_latency(Duration::from_millis(30));
    let engine = engine(dir.path(), &api, 20).await;
    let sets = accounts.iter().map(|a| set(a, Vec::new())).collect();
    let (summary, stop) = engine
        .refresh(manifests(sets), Refresh::Import, &CancellationToken::new())
        .await
        .unwrap();
    assert!(stop.is_none() && summary.failed.is_empty(), "{summary:?}");
    assert_eq!(summary.accounts, 200);
    for command in [Command::GetOfficialAccountInfo, Command::GetSubscriberInfo] {
        let calls = api.calls(command);
        assert!(calls.len() > 1);
        assert!(
            tightest(&calls) >= Duration::from_millis(50),
            "{command}: two calls {:?} apart",
            tightest(&calls)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_refresh_records_drift_both_ways_and_the_count_it_saw() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 1000, &["kept", "walk-in"])]);
    let engine = engine(dir.path(), &api, 0).await;
    // The ledger confirms `kept` and `gone`; the live list has `kept` and `walk-in`.
    engine
        .writer()
        .unwrap()
        .record(
            1,
            vec![crate::ledger::Record::Batch {
                account: "@TOA#_a".into(),
                op: crate::ledger::Op::Add,
                done: vec!["gone".into(), "kept".into()],
                unchanged: vec![],
                failed: vec![],
            }],
        )
        .await
        .unwrap();
    let (summary, _) = engine
        .refresh(
            manifests(vec![set("@TOA#_a", vec![])]),
            Refresh::Import,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        (summary.out_of_band_added, summary.out_of_band_removed),
        (1, 1)
    );
    let a = &engine.snapshot().await.unwrap().accounts["@TOA#_a"];
    assert_eq!(a.confirmed, ["kept", "walk-in"]);
    assert_eq!(
        a.view.facts.subscriber_num,
        Some(2),
        "the count seen, not the count claimed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_broken_cursor_leaves_the_account_as_it_was() {
    for fault in [
        CursorFault::Repeat,
        CursorFault::Backwards,
        CursorFault::Endless,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut state = RemoteState::default();
        state.seed_account("@TOA#_a", 1000, &ids("u", 650), 0);
        let rules = Rules {
            cursor_fault: Some(fault),
            ..Rules::default()
        };
        let api = FakeApi::new(state, rules);
        let engine = engine(dir.path(), &api, 0).await;
        let (summary, stop) = engine
            .refresh(
                manifests(vec![set("@TOA#_a", vec![])]),
                Refresh::Import,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert!(stop.is_none());
        assert_eq!(summary.failed.len(), 1, "{fault:?}");
        assert!(
            summary.failed[0].error.contains("nothing was changed"),
            "{fault:?}"
        );
        let snapshot = engine.snapshot().await.unwrap();
        assert!(
            snapshot
                .accounts
                .get("@TOA#_a")
                .is_none_or(|a| a.confirmed.is_empty()),
            "{fault:?}"
        );
        // Bounded by what the account can hold: a few pages past 1000, never more.
        assert!(
            api.calls(Command::GetSubscriberInfo).len() <= 12,
            "{fault:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_breaks_the_protocol_adopts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 1000, &["x"])]).scripted(|r| {
        (r.command == Command::GetSubscriberInfo).then(|| crate::tencent::ApiError::Protocol {
            command: r.command,
            detail: "a listed subscriber: UserID \"\\u{1b}[2J\" contains \"\\u{1b}\"".into(),
        })
    });
    let engine = engine(dir.path(), &api, 0).await;
    let (summary, _) = engine
        .refresh(
            manifests(vec![set("@TOA#_a", vec![])]),
            Refresh::Import,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(
        summary.failed[0].error.contains("broke the protocol"),
        "{summary:?}"
    );
    assert!(!summary.failed[0].error.contains('\u{1b}'));
    assert!(
        engine
            .snapshot()
            .await
            .unwrap()
            .accounts
            .get("@TOA#_a")
            .is_none_or(|a| a.confirmed.is_empty())
    );
}

#[tokio::test(start_paused = true)]
async fn a_saved_plan_that_disagrees_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 1000, &[])]);
    let engine = engine(dir.path(), &api, 0).await;
    let wanted = manifests(vec![set("@TOA#_a", ids("u", 3))]);
    let mut snapshot = engine.snapshot().await.unwrap();
    let mut saved = crate::plan::compute(
        &wanted,
        &mut snapshot,
        vec!["m".into()],
        &Default::default(),
    )
    .unwrap();
    saved.accounts[0].add.push("intruder".into());
    let job = Job {
        manifests: wanted.clone(),
        saved: Some(Arc::new(crate::plan::SavedPlan::of(&saved))),
        revision: None,
        trigger: Trigger::Apply,
        refresh: false,
    };
    let err = engine
        .reconcile(job, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Stale(_)), "{err}");
    assert_eq!(api.all_calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_daemon_run_leaves_no_audit_entry_and_a_failing_subscriber_waits_its_pause() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::with_accounts(&[("@TOA#_a", 1000, &[])]).scripted(|r| {
        (r.command == Command::AddSubscriber && r.members.contains(&"bad".to_owned()))
            .then(|| service(r.command, 6017))
    });
    let engine = engine_with(config(dir.path(), 0, Purpose::Daemon), &api).await;
    let wanted = manifests(vec![set("@TOA#_a", vec!["bad".into(), "good".into()])]);
    let first = apply(&engine, &wanted).await;
    assert_eq!(first.summary.totals.failed, 1);
    // At once again: `bad`'s one-minute pause has not passed; nothing to send, nothing recorded.
    let calls = api.all_calls();
    let ledger = engine.config().ledger.clone();
    let runs = || async { crate::engine::status(&ledger, 10).await.unwrap().runs.len() };
    let audited = runs().await;
    let idle = apply(&engine, &wanted).await;
    assert_eq!(idle.deferred, 1);
    assert_eq!(runs().await, audited, "an idle run writes no audit entry");
    assert_eq!(api.all_calls(), calls);
}

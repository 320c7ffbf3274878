//! `apply` end to end against the emulator: convergence, drift, limits, isolation, retries,
//! fatal answers, locking, saved plans, and crashes.

use crate::common::{Remote, Workspace, ids, remote_subscribers, stderr, stdout, wait_for};
use subsync::apply::RunSummary;
use subsync::emulator::{Emulator, FollowLimitMode};
use subsync::ledger::RunOutcome;
use subsync::tencent::api::Command;

fn summary(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not a JSON summary ({e}): {}\n{}", stdout(out), stderr(out)))
}

fn account<'a>(summary: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    summary["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["official_account"] == id)
        .unwrap()
}

fn apply(ws: &Workspace, emulator: &Emulator) -> std::process::Output {
    ws.run(
        Some(&emulator.url()),
        &["apply", "manifests", "--format", "json"],
    )
}

fn confirmed(ws: &Workspace, account: &str) -> Vec<String> {
    crate::common::ledger::confirmed(ws.state(), account)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn apply_converges_then_a_second_run_sends_nothing() {
    let emulator = Remote::default()
        .account("@TOA#_a", 1000, &[])
        .account("@TOA#_b", 1000, &[])
        .account("@TOA#_c", 1000, &[])
        .start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 250));
    ws.manifest("b", "@TOA#_b", &ids("b", 101));
    ws.manifest("c", "@TOA#_c", &ids("c", 1));

    let out = apply(&ws, &emulator);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["result"], "converged");
    assert_eq!(s["totals"]["added"], 352);
    assert_eq!(account(&s, "@TOA#_b")["status"], "ok");
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 250));
    assert_eq!(confirmed(&ws, "@TOA#_b"), ids("b", 101));
    // 250 + 101 + 1 subscribers in batches of at most 100: 3 + 2 + 1 calls.
    assert_eq!(emulator.stats().calls(Command::AddSubscriber), 6);

    let calls_before = emulator.stats().requests;
    let again = apply(&ws, &emulator);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(summary(&again)["totals"]["added"], 0);
    assert_eq!(
        emulator.stats().requests,
        calls_before,
        "a converged run must not call the API"
    );
}

#[test]
fn the_summary_matches_its_schema_and_is_kept_in_the_audit_log() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let out = ws.run(
        Some(&emulator.url()),
        &[
            "apply",
            "manifests",
            "--format",
            "json",
            "--revision",
            "abc123",
        ],
    );
    let s = summary(&out);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/summary.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let errors: Vec<String> = jsonschema::validator_for(&schema)
        .unwrap()
        .iter_errors(&s)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let runs = crate::common::ledger::runs(ws.state(), 5);
    assert_eq!(runs[0].revision.as_deref(), Some("abc123"));
    assert_eq!(runs[0].result, Some(RunOutcome::Converged));
    let Some(RunSummary::Apply(kept)) = &runs[0].summary else {
        panic!("{:?}", runs[0].summary);
    };
    assert_eq!(serde_json::to_value(kept.totals).unwrap(), s["totals"]);
}

#[test]
fn already_subscribed_members_are_confirmed_and_counted_as_drift() {
    let emulator = Remote::default()
        .account("@TOA#_a", 1000, &["a00001", "a00003", "stranger"])
        .start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 5));
    let s = summary(&apply(&ws, &emulator));
    assert_eq!(
        (
            s["totals"]["added"].as_u64(),
            s["totals"]["already_subscribed"].as_u64()
        ),
        (Some(3), Some(2))
    );
    assert_eq!(confirmed(&ws, "@TOA#_a"), ids("a", 5));
}

#[test]
fn full_account_is_filled_then_skipped() {
    // 7 strangers already follow; the limit of 30 leaves room for 23 of the 40 wanted.
    let strangers = ["s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    let emulator = Remote::default()
        .account("@TOA#_full", 30, &strangers)
        .account("@TOA#_ok", 1000, &[])
        .start();
    let ws = Workspace::new();
    ws.manifest("full", "@TOA#_full", &ids("f", 40));
    ws.manifest("ok", "@TOA#_ok", &ids("o", 10));

    let out = apply(&ws, &emulator);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let s = summary(&out);
    let full = account(&s, "@TOA#_full");
    assert_eq!(full["status"], "limit_reached");
    assert_eq!(
        (full["added"].as_u64(), full["not_added_limit"].as_u64()),
        (Some(23), Some(17))
    );
    assert_eq!(account(&s, "@TOA#_ok")["status"], "ok");
    assert_eq!(s["result"], "partial");
    let remote = remote_subscribers(&emulator, "@TOA#_full");
    assert_eq!(remote.len(), 30);
    assert_eq!(
        sorted(confirmed(&ws, "@TOA#_full")),
        sorted(remote.into_iter().filter(|s| s.starts_with('f')).collect())
    );

    let adds_before = emulator.stats().calls(Command::AddSubscriber);
    let again = apply(&ws, &emulator);
    assert_eq!(again.status.code(), Some(2));
    let full = account(&summary(&again), "@TOA#_full").clone();
    assert_eq!(
        (full["added"].as_u64(), full["not_added_limit"].as_u64()),
        (Some(0), Some(17))
    );
    assert_eq!(
        emulator.stats().calls(Command::AddSubscriber),
        adds_before,
        "a known-full account gets no adds"
    );
}

#[test]
fn follow_limited_subscribers_are_isolated_and_the_rest_added() {
    for mode in [FollowLimitMode::Request, FollowLimitMode::Item] {
        let emulator = Remote::default()
            .follow_limit(1, mode)
            .account("@TOA#_other", 1000, &["a00017", "a00150"])
            .account("@TOA#_a", 1000, &[])
            .start();
        let ws = Workspace::new();
        ws.manifest("a", "@TOA#_a", &ids("a", 250));
        let out = apply(&ws, &emulator);
        assert_eq!(out.status.code(), Some(2), "{mode:?}: {}", stderr(&out));
        let a = account(&summary(&out), "@TOA#_a").clone();
        assert_eq!(a["added"], 248, "{mode:?}");
        let expected_code = if mode == FollowLimitMode::Request {
            130010
        } else {
            0
        };
        assert_eq!(
            a["failed"],
            serde_json::json!([{"subscriber": "a00017", "code": expected_code}, {"subscriber": "a00150", "code": expected_code}]),
            "{mode:?}"
        );
        assert_eq!(remote_subscribers(&emulator, "@TOA#_a").len(), 248);
        let snapshot = crate::common::ledger::snapshot(ws.state());
        assert_eq!(snapshot.accounts["@TOA#_a"].view.failed.len(), 2);
    }
}

#[test]
fn injected_faults_are_retried_until_everything_converges() {
    let emulator = Remote::default()
        .fault_rate(0.2)
        .account("@TOA#_a", 10_000, &[])
        .account("@TOA#_b", 10_000, &[])
        .start();
    let ws = Workspace::new();
    // 60 batches: some are bound to be hit (all spared: 0.8^61, about 1e-6), and one batch
    // failing all 10 attempts is about 6e-6.
    ws.manifest("a", "@TOA#_a", &ids("a", 4000));
    ws.manifest("b", "@TOA#_b", &ids("b", 2000));
    let out = apply(&ws, &emulator);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let s = summary(&out);
    assert!(s["retries"].as_u64().unwrap() > 0);
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 4000));
    assert_eq!(remote_subscribers(&emulator, "@TOA#_b"), ids("b", 2000));
    assert_eq!(confirmed(&ws, "@TOA#_a"), ids("a", 4000));
}

#[test]
fn a_missing_account_is_skipped_and_the_others_applied() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 5));
    ws.manifest("gone", "@TOA#_gone", &ids("g", 150));
    let out = apply(&ws, &emulator);
    assert_eq!(out.status.code(), Some(2));
    let s = summary(&out);
    assert_eq!(account(&s, "@TOA#_gone")["status"], "missing");
    assert_eq!(
        account(&s, "@TOA#_gone")["failed"]
            .as_array()
            .unwrap()
            .len(),
        150
    );
    assert_eq!(account(&s, "@TOA#_a")["added"], 5);
    assert_eq!(
        emulator.stats().count(Command::AddSubscriber, "130004"),
        0,
        "get_official_account_info already said it is missing"
    );
}

#[test]
fn wrong_credentials_stop_at_the_first_answer_and_change_nothing_but_the_audit_log() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 500));
    std::fs::write(ws.key_file(), "not-the-key").unwrap();
    let out = apply(&ws, &emulator);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("70009") && err.contains("check the secret key"),
        "{err}"
    );
    assert_eq!(
        emulator.stats().requests,
        1,
        "the first fatal answer must stop the run"
    );
    assert_eq!(summary(&out)["result"], "failed");
    let snapshot = crate::common::ledger::snapshot(ws.state());
    assert!(
        snapshot
            .accounts
            .values()
            .all(|a| a.confirmed.is_empty() && a.view.failed.is_empty())
    );
    let runs = crate::common::ledger::runs(ws.state(), 5);
    assert_eq!(runs[0].result, Some(RunOutcome::Failed));
}

#[test]
fn invalid_manifests_send_nothing_and_write_nothing() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &["ok".into(), "".into()]);
    let out = apply(&ws, &emulator);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("a.yaml:7:"), "{}", stderr(&out));
    assert_eq!(emulator.stats().requests, 0);
    assert!(!ws.state().exists());
}

#[test]
fn a_second_writer_is_refused_naming_the_holder() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 5));
    let _held = crate::common::ledger::hold(ws.state(), "apply", vec![]);
    let out = apply(&ws, &emulator);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("is locked by PID {}", std::process::id())),
        "{}",
        stderr(&out)
    );
    assert_eq!(emulator.stats().requests, 0);
}

#[test]
fn a_saved_plan_applies_only_while_nothing_changed() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 5));
    assert!(
        ws.run(None, &["plan", "manifests", "--out", "first.json"])
            .status
            .success()
    );
    assert!(
        ws.run(None, &["plan", "manifests", "--out", "second.json"])
            .status
            .success()
    );

    let out = ws.run(
        Some(&emulator.url()),
        &["apply", "--plan", "first.json", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 5));

    let stale = ws.run(Some(&emulator.url()), &["apply", "--plan", "second.json"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        stderr(&stale).contains("the ledger changed since the plan was made"),
        "{}",
        stderr(&stale)
    );

    assert!(
        ws.run(None, &["plan", "manifests", "--out", "third.json"])
            .status
            .success()
    );
    ws.manifest("a", "@TOA#_a", &ids("a", 6));
    let edited = ws.run(Some(&emulator.url()), &["apply", "--plan", "third.json"]);
    assert_eq!(edited.status.code(), Some(1));
    assert!(
        stderr(&edited).contains("the manifests changed since the plan was made"),
        "{}",
        stderr(&edited)
    );
    assert_eq!(
        remote_subscribers(&emulator, "@TOA#_a"),
        ids("a", 5),
        "a refused plan sends nothing"
    );
}

/// A slow emulator and a large set, so that a run can be stopped midway.
fn slow_setup() -> (Emulator, Workspace) {
    let emulator = Remote::default()
        .latency_ms(20)
        .account("@TOA#_a", 100_000, &[])
        .account("@TOA#_b", 100_000, &[])
        .start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3000));
    ws.manifest("b", "@TOA#_b", &ids("b", 3000));
    (emulator, ws)
}

#[test]
fn a_run_killed_midway_converges_on_the_next_run() {
    let (emulator, ws) = slow_setup();
    let mut child = ws
        .command(
            Some(&emulator.url()),
            &["apply", "manifests", "--qps", "100", "--concurrency", "4"],
        )
        .spawn()
        .unwrap();
    wait_for("a dozen batches", || {
        emulator.stats().count(Command::AddSubscriber, "0") >= 12
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let partial = confirmed(&ws, "@TOA#_a").len() + confirmed(&ws, "@TOA#_b").len();
    assert!(
        partial > 0 && partial < 6000,
        "killed midway, yet {partial} confirmed"
    );
    let out = ws.run(
        Some(&emulator.url()),
        &["apply", "manifests", "--format", "json", "--qps", "1000"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 3000));
    assert_eq!(remote_subscribers(&emulator, "@TOA#_b"), ids("b", 3000));
    assert_eq!(confirmed(&ws, "@TOA#_a"), ids("a", 3000));
    assert_eq!(confirmed(&ws, "@TOA#_b"), ids("b", 3000));
    let runs = crate::common::ledger::runs(ws.state(), 2);
    assert_eq!(
        runs[1].result, None,
        "the killed run never finished its audit entry"
    );
}

#[test]
fn sigterm_stops_cleanly_with_a_partial_summary_and_exit_130() {
    let (emulator, ws) = slow_setup();
    let child = ws
        .command(
            Some(&emulator.url()),
            &[
                "apply",
                "manifests",
                "--qps",
                "100",
                "--concurrency",
                "4",
                "--format",
                "json",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("a few batches", || {
        emulator.stats().count(Command::AddSubscriber, "0") >= 5
    });
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(
        (s["interrupted"].as_bool(), s["result"].as_str()),
        (Some(true), Some("partial"))
    );
    let statuses: Vec<&str> = s["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"interrupted") && !statuses.contains(&"failed"),
        "an interrupted account is labelled so: {statuses:?}"
    );
    let added = s["totals"]["added"].as_u64().unwrap() as usize;
    // Everything the summary counts was recorded, and recorded is on the remote side too.
    let recorded = confirmed(&ws, "@TOA#_a").len() + confirmed(&ws, "@TOA#_b").len();
    assert_eq!(added, recorded);
    assert!(recorded < 6000);
    let runs = crate::common::ledger::runs(ws.state(), 1);
    assert_eq!(runs[0].result, Some(RunOutcome::Interrupted));
}

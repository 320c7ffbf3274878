//! Everything subsync reads that is not a manifest, tried as an attacker would: a stand-in
//! service that answers too much, too long, too strangely or not at all; a PostgreSQL that
//! never speaks; a flood on the probe port; a planted lock file. Each case is bounded in time
//! and memory (the bounds are stated where they are asserted), stores nothing that came from
//! the bad answer, and prints no control character.

use std::time::Duration;

use crate::common::standin::{Mute, Reply, StandIn};
use crate::common::{Workspace, ids, wait_for};
use serde_json::{Value, json};
use subsync::testing::run_measured;

/// Most memory a run against a hostile answer may take (the process, not the answer).
const MEMORY_BOUND_MIB: f64 = 64.0;

fn ok(fields: Value) -> Reply {
    let mut body = json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""});
    if let (Some(out), Value::Object(extra)) = (body.as_object_mut(), fields) {
        out.extend(extra);
    }
    Reply::Json(body)
}

/// get_official_account_info as the service answers it: every account asked about exists.
fn info(body: &Value, max: u64) -> Reply {
    let items: Vec<Value> = body["OfficialAccountIdList"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    json!({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "",
                           "Official_Account": a["Official_Account"], "SubscriberNum": 0,
                           "MaxSubscriberNum": max})
                })
                .collect()
        })
        .unwrap_or_default();
    ok(json!({ "OfficialAccountInfoList": items }))
}

/// add_subscriber or delete_subscriber, every member done.
fn done(body: &Value) -> Reply {
    let members: Vec<Value> = match body.get("SubscriberList") {
        Some(list) => list
            .as_array()
            .map(|l| l.iter().map(|m| m["Subscriber_Account"].clone()).collect())
            .unwrap_or_default(),
        None => body["SubscriberToDel_Account"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    let items: Vec<Value> = members
        .into_iter()
        .map(|m| json!({"Subscriber_Account": m, "Result": 1}))
        .collect();
    ok(json!({ "SubscriberList": items }))
}

fn has_control(text: &str) -> Option<char> {
    text.chars().find(|c| c.is_control() && *c != '\n')
}

/// `subsync ARGS` against `url`, measured.
fn run(ws: &Workspace, url: &str, args: &[&str]) -> subsync::testing::Measured {
    let mut cmd = ws.command(Some(url), args);
    run_measured(&mut cmd).expect("run subsync")
}

#[test]
fn a_two_gib_answer_to_the_probe_is_cut_at_its_cap() {
    let standin = StandIn::start(|command, body| match command {
        "get_official_account_info" => Reply::Endless { bytes: 2 << 30 },
        _ => done(body),
    });
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let out = run(&ws, standin.url(), &["apply", "manifests"]);
    let err = out.stderr();
    // Not knowing the limits is no reason to stop: the adds go on.
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("answer larger than 1024 KiB"), "{err}");
    assert_eq!(
        standin.calls("get_official_account_info"),
        3,
        "tried three times"
    );
    assert!(out.peak_mib() < MEMORY_BOUND_MIB, "{} MiB", out.peak_mib());
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
}

#[test]
fn oversized_or_overfull_batch_answers_are_never_used() {
    for overfull in [false, true] {
        let standin = StandIn::start(move |command, body| match command {
            "get_official_account_info" => info(body, 1000),
            _ if overfull => {
                // More items than members were sent, one of them nobody sent.
                let items: Vec<Value> = (0..150)
                    .map(|i| json!({"Subscriber_Account": format!("x{i}"), "Result": 1}))
                    .collect();
                ok(json!({ "SubscriberList": items }))
            }
            _ => Reply::Endless { bytes: 64 << 20 },
        });
        let ws = Workspace::new();
        ws.manifest("a", "@TOA#_a", &ids("a", 500));
        let out = run(
            &ws,
            standin.url(),
            &["apply", "manifests", "--format", "json"],
        );
        assert_eq!(out.status.code(), Some(2), "{}", out.stderr());
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            summary["totals"]["added"], 0,
            "nothing from the answer was used"
        );
        assert_eq!(summary["totals"]["failed"], 500);
        assert!(
            summary["accounts"][0]["failed"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["code"] == -2),
            "recorded as unreadable answers"
        );
        // Five batches, three attempts each.
        assert_eq!(standin.calls("add_subscriber"), 15);
        assert!(out.peak_mib() < MEMORY_BOUND_MIB, "{} MiB", out.peak_mib());
        assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
        let snapshot = crate::common::ledger::snapshot(ws.state());
        assert!(snapshot.accounts["@TOA#_a"].confirmed.is_empty());
    }
}

#[test]
fn server_text_is_escaped_and_cut_in_output_logs_and_the_ledger() {
    let hostile = format!(
        "\u{1b}[2J\u{1b}]8;;https://evil.example\u{7}click\u{1b}]8;;\u{7}\r\nERROR forged line\u{202e}{}",
        "z".repeat(40_000)
    );
    let text = hostile.clone();
    let standin = StandIn::start(move |_, _| {
        Reply::Json(json!({"ActionStatus": "FAIL", "ErrorCode": 70009, "ErrorInfo": text}))
    });
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let out = run(
        &ws,
        standin.url(),
        &["apply", "manifests", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (out.stdout(), out.stderr());
    assert_eq!(has_control(&stderr), None, "{stderr}");
    assert_eq!(has_control(&stdout), None);
    assert!(
        stderr.contains("70009") && stderr.contains("\\u{1b}[2J"),
        "{stderr}"
    );
    assert!(stderr.len() < 2_000, "cut: {} bytes", stderr.len());
    assert!(!stderr.lines().any(|l| l.starts_with("ERROR forged")));
    let runs = crate::common::ledger::runs(ws.state(), 1);
    let stored = serde_json::to_string(runs[0].summary.as_ref().unwrap()).unwrap();
    assert!(
        stored.len() < 2_000,
        "the ledger keeps {} bytes",
        stored.len()
    );
    assert!(!stored.contains('\u{1b}'));
}

#[test]
fn live_user_ids_that_could_not_be_valid_are_never_stored_printed_or_sent_back() {
    let bad = [
        String::new(),
        "x".repeat(100_000),
        "esc\u{1b}[31m".into(),
        "new\nline".into(),
        "nul\0".into(),
        "\u{202e}rtl".into(),
    ];
    let standin = StandIn::start(move |command, body| match command {
        "get_official_account_info" => info(body, 1000),
        "get_subscriber_info" => {
            let list: Vec<Value> = std::iter::once("fine".to_owned())
                .chain(bad.iter().cloned())
                .map(|id| json!({"Subscriber_Account": id}))
                .collect();
            ok(json!({"Next": "", "SubscriberNum": 7, "SubscriberList": list}))
        }
        _ => done(body),
    });
    let ws = Workspace::new();
    let pruned = "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: a\nspec:\n  officialAccount: \"@TOA#_a\"\n  subscribers: [\"fine\"]\n  prune: true\n";
    std::fs::write(ws.manifests().join("a.yaml"), pruned).unwrap();
    let out = run(&ws, standin.url(), &["apply", "manifests", "--refresh"]);
    let (stdout, stderr) = (out.stdout(), out.stderr());
    assert_eq!(has_control(&stdout), None, "{stdout}");
    assert_eq!(has_control(&stderr), None, "{stderr}");
    assert!(
        stdout.contains("could not be read") || stdout.contains("broke the protocol"),
        "{stdout}"
    );
    assert_eq!(
        standin.calls("delete_subscriber"),
        0,
        "nothing is sent back"
    );
    let snapshot = crate::common::ledger::snapshot(ws.state());
    let a = &snapshot.accounts["@TOA#_a"];
    assert!(
        a.confirmed
            .iter()
            .all(|id| subsync::manifest::check_user_id(id).is_ok())
    );
    assert!(
        a.view.drift.added.is_empty(),
        "nothing from the bad page was adopted"
    );
}

#[test]
fn a_list_that_never_ends_stops_at_what_the_account_can_hold() {
    let page = std::sync::atomic::AtomicU64::new(0);
    let standin = StandIn::start(move |command, body| match command {
        "get_official_account_info" => info(body, 1000),
        "get_subscriber_info" => {
            let n = page.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let list: Vec<Value> = (0..200)
                .map(|i| json!({"Subscriber_Account": format!("p{n}-{i}")}))
                .collect();
            ok(
                json!({"Next": format!("cursor-{n}"), "SubscriberNum": u64::MAX / 2, "SubscriberList": list}),
            )
        }
        _ => done(body),
    });
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 1));
    let out = run(
        &ws,
        standin.url(),
        &["import", "manifests", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = report["refresh"]["failed"][0]["error"].as_str().unwrap();
    assert!(error.contains("goes past 1000 subscribers"), "{error}");
    assert!(standin.calls("get_subscriber_info") <= 6);
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);

    // A page of two million entries for a Limit of 200 is cut at the page's size cap.
    let huge = StandIn::start(|command, body| match command {
        "get_official_account_info" => info(body, 10_000_000),
        "get_subscriber_info" => Reply::Items { items: 2_000_000 },
        _ => done(body),
    });
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 1));
    let out = run(
        &ws,
        huge.url(),
        &["import", "manifests", "--format", "json"],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = report["refresh"]["failed"][0]["error"].as_str().unwrap();
    assert!(error.contains("answer larger than 1024 KiB"), "{error}");
    assert!(out.peak_mib() < MEMORY_BOUND_MIB, "{} MiB", out.peak_mib());
}

#[test]
fn a_silent_api_is_unreachable_within_a_bounded_time_and_named_like_a_refused_one() {
    let standin = StandIn::start(|_, _| Reply::Silence);
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 300));
    let out = run(
        &ws,
        standin.url(),
        &[
            "apply",
            "manifests",
            "--api-timeout",
            "1s",
            "--format",
            "json",
        ],
    );
    let err = out.stderr();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot reach the API at {}/", standin.url())),
        "{err}"
    );
    // Three attempts of at most 1.5 s, and their pauses.
    assert!(out.elapsed < Duration::from_secs(8), "{:?}", out.elapsed);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["totals"]["failed"], 0,
        "nothing is recorded as failed"
    );
}

#[test]
fn http_429_is_rate_limiting_and_its_retry_after_is_honoured() {
    let first = std::sync::atomic::AtomicBool::new(true);
    let standin = StandIn::start(move |command, body| match command {
        "get_official_account_info" => info(body, 1000),
        _ if first.swap(false, std::sync::atomic::Ordering::Relaxed) => Reply::Raw {
            status: 429,
            headers: vec![("Retry-After".into(), "2".into())],
            body: Vec::new(),
        },
        _ => done(body),
    });
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 50));
    let out = run(
        &ws,
        standin.url(),
        &["apply", "manifests", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr());
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rate_limited"], 1);
    assert_eq!(summary["totals"]["added"], 50);
    assert!(
        out.elapsed >= Duration::from_secs(2),
        "waited as asked: {:?}",
        out.elapsed
    );
}

#[test]
fn a_postgresql_that_accepts_and_never_speaks_bounds_every_command() {
    let mute = Mute::start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let url = format!(
        "postgres://u:pw@127.0.0.1:{}/db?sslmode=disable&connect_timeout=2",
        mute.port
    );
    // apply must give up on the ledger before it calls anyone.
    let standin = StandIn::start(|command, body| match command {
        "get_official_account_info" => info(body, 1000),
        _ => done(body),
    });
    for args in [
        vec!["status"],
        vec!["plan", "manifests"],
        vec!["apply", "manifests"],
    ] {
        let mut cmd = ws.command(Some(standin.url()), &args);
        cmd.env("SUBSYNC_STATE", &url);
        let out = run_measured(&mut cmd).unwrap();
        let err = out.stderr();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("cannot reach the ledger"), "{err}");
        assert!(err.contains("connect_timeout"), "{err}");
        assert!(!err.contains("pw@"), "{err}");
        assert!(
            out.elapsed < Duration::from_secs(5),
            "{args:?}: {:?}",
            out.elapsed
        );
    }
    assert_eq!(standin.calls("get_official_account_info"), 0);
    assert_eq!(standin.calls("add_subscriber"), 0);
}

#[test]
fn a_symlinked_lock_file_is_refused_and_its_target_left_untouched() {
    let standin = StandIn::start(|command, body| match command {
        "get_official_account_info" => info(body, 1000),
        _ => done(body),
    });
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    std::fs::create_dir_all(ws.state()).unwrap();
    let target = ws.path().join("precious.txt");
    std::fs::write(&target, "do not touch\n").unwrap();
    std::os::unix::fs::symlink(&target, ws.state().join("ledger.lock")).unwrap();
    let out = run(&ws, standin.url(), &["apply", "manifests"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr().contains("symbolic link"), "{}", out.stderr());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "do not touch\n");
    assert_eq!(standin.calls("add_subscriber"), 0);
}

#[test]
fn key_files_are_bounded_regular_files_and_one_others_can_read_is_warned_about() {
    let standin = StandIn::start(|command, body| match command {
        "get_official_account_info" => info(body, 1000),
        _ => done(body),
    });
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    for bad in ["/dev/zero", "/etc/passwd"] {
        let mut cmd = ws.command(Some(standin.url()), &["apply", "manifests"]);
        cmd.env("SUBSYNC_SECRET_KEY_FILE", bad);
        let out = run_measured(&mut cmd).unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(out.elapsed < Duration::from_secs(5));
        assert!(
            !out.stderr().contains("root:"),
            "never the content: {}",
            out.stderr()
        );
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ws.key_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&ws, standin.url(), &["apply", "manifests"]);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr());
    assert_eq!(
        out.stderr()
            .matches("every user on this machine can read or change the secret key file")
            .count(),
        1,
        "{}",
        out.stderr()
    );
}

#[test]
fn probes_are_answered_under_a_flood_of_idle_and_slow_connections() {
    use std::io::Write;
    let standin = StandIn::start(|command, body| match command {
        "get_official_account_info" => info(body, 1000),
        _ => done(body),
    });
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let daemon = crate::common::daemon::start_at(&ws, standin.url(), &ws.manifests(), &[]);
    wait_for("ready", || daemon.get("/readyz").0 == 200);
    let mut held = Vec::new();
    for i in 0..1200 {
        let mut conn = std::net::TcpStream::connect(daemon.addr()).unwrap();
        if i % 6 == 0 {
            // Slowloris: headers begun, never finished.
            conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        held.push(conn);
    }
    let started = std::time::Instant::now();
    assert_eq!(daemon.get("/healthz").0, 200);
    assert_eq!(daemon.get("/readyz").0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The daemon holds at most its connection cap, whatever the flood.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .unwrap()
        .count();
    assert!(fds < 400, "{fds} file descriptors open");
    drop(held);
}

#[test]
fn a_silent_service_leaves_the_daemon_ready_with_the_reason() {
    let standin = StandIn::start(|_, _| Reply::Silence);
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let daemon = crate::common::daemon::start_at(
        &ws,
        standin.url(),
        &ws.manifests(),
        &["--api-timeout", "500ms"],
    );
    wait_for("the reason in /readyz", || {
        daemon.get("/readyz").1.contains("remote problem")
    });
    let (status, body) = daemon.get("/readyz");
    assert_eq!(
        status, 200,
        "someone else's outage does not block a rollout: {body}"
    );
    assert!(body.contains("cannot reach the API"), "{body}");
    assert_eq!(daemon.get("/healthz").0, 200);
}

#[test]
fn refused_credentials_make_the_daemon_unready_and_it_says_how_long_it_pauses() {
    let standin = StandIn::start(|_, _| {
        Reply::Json(json!({"ActionStatus": "FAIL", "ErrorCode": 70009, "ErrorInfo": "sig"}))
    });
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let daemon = crate::common::daemon::start_at(
        &ws,
        standin.url(),
        &ws.manifests(),
        &["--resync", "1s", "--refresh-every", "1s"],
    );
    wait_for("the reason in /readyz", || {
        daemon.get("/readyz").1.contains("70009")
    });
    assert_eq!(daemon.get("/readyz").0, 503);
    // That it then waits out the pause (resyncs and refreshes notwithstanding) is
    // watch::tests::after_a_fatal_answer_the_daemon_calls_only_as_often_as_its_pauses_allow,
    // an hour under tokio's paused clock; here, the process says so.
    wait_for("the pause in the log", || {
        daemon.log().contains("trying again in 30s")
    });
    assert_eq!(
        standin.calls("get_official_account_info"),
        1,
        "{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("ERROR"),
        "a fatal stop is logged at ERROR"
    );
}

#[test]
fn a_daemon_waits_for_a_silent_postgresql_unready_and_alive() {
    let mute = Mute::start();
    let emulator = crate::common::Remote::default()
        .account("@TOA#_a", 1000, &[])
        .start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let url = format!(
        "postgres://u:pw@127.0.0.1:{}/db?sslmode=disable&connect_timeout=1",
        mute.port
    );
    let mut daemon =
        crate::common::daemon::start(&ws, &emulator, &ws.manifests(), &["--state", &url]);
    wait_for("the reason in /readyz", || {
        daemon.get("/readyz").1.contains("cannot reach the ledger")
    });
    assert_eq!(daemon.get("/readyz").0, 503);
    assert_eq!(
        daemon.get("/healthz").0,
        200,
        "a remote database is not a stuck daemon"
    );
    assert!(
        daemon.child().try_wait().unwrap().is_none(),
        "it waits, it does not exit"
    );
    assert!(!daemon.log().contains("pw@"));
}

/// Lowers the open-file limit of process `pid` to the descriptors it already holds, so that its
/// next open fails with EMFILE; returns the limit to put back.
fn exhaust_descriptors(pid: u32) -> libc::rlimit {
    let held: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let lowest_free = (0..).find(|n| !held.contains(n)).unwrap();
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    set_descriptor_limit(pid, None, Some(&mut old));
    let low = libc::rlimit {
        rlim_cur: lowest_free,
        rlim_max: old.rlim_max,
    };
    set_descriptor_limit(pid, Some(&low), None);
    old
}

fn set_descriptor_limit(pid: u32, new: Option<&libc::rlimit>, old: Option<&mut libc::rlimit>) {
    let new = new.map_or(std::ptr::null(), |n| n as *const libc::rlimit);
    let old = old.map_or(std::ptr::null_mut(), |o| o as *mut libc::rlimit);
    // SAFETY: both pointers are null or point at live rlimit values for the whole call.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, new, old) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn a_daemon_out_of_file_descriptors_never_calls_its_manifests_invalid() {
    let emulator = crate::common::Remote::default()
        .account("@TOA#_a", 1000, &[])
        .start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let daemon = crate::common::daemon::start(&ws, &emulator, &ws.manifests(), &[]);
    wait_for("the first reconcile", || {
        crate::common::remote_subscribers(&emulator, "@TOA#_a").len() == 3
    });

    let limit = exhaust_descriptors(daemon.pid());
    ws.manifest("a", "@TOA#_a", &ids("a", 5));
    wait_for("the read to fail on this machine", || {
        daemon
            .log()
            .contains("cannot read the manifests on this machine now")
    });
    set_descriptor_limit(daemon.pid(), Some(&limit), None);

    let log = daemon.log();
    assert!(!log.contains("the manifests are invalid"), "{log}");
    assert_eq!(has_control(&log), None);
    let (status, body) = daemon.get("/readyz");
    assert_eq!(status, 200, "the manifests were never the problem: {body}");
    // Nothing accepted is lost: the change is read again by itself once descriptors are back.
    wait_for("the change to arrive", || {
        crate::common::remote_subscribers(&emulator, "@TOA#_a").len() == 5
    });
    assert_eq!(daemon.metric("subsync_manifests_valid"), Some(1.0));
}

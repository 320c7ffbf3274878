//! The input boundary, attacked the way the hardening issue describes: every case gets one
//! located message, exit 1, no request, no ledger change, and bounded time. Hostile inputs are
//! built by each test, never committed.

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Remote, Workspace, ids, stderr, stdout};
use subsync::emulator::Emulator;

const HEAD: &str = "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata:\n  name: a\nspec:\n  officialAccount: \"@TOA#_a\"\n";

fn write_manifest(ws: &Workspace, body: &str) {
    std::fs::write(ws.manifests().join("a.yaml"), format!("{HEAD}{body}")).unwrap();
}

/// Runs subsync, failing the test instead of hanging if it does not finish in 60 s.
fn run_bounded(ws: &Workspace, url: Option<&str>, args: &[&str]) -> Output {
    let mut child = ws
        .command(url, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("subsync {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Apply against an emulator must fail with one problem matching `fragment`, sending and
/// writing nothing.
fn refused_by_apply(ws: &Workspace, fragment: &str) -> String {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let out = run_bounded(ws, Some(&emulator.url()), &["apply", "manifests"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(fragment), "expected {fragment:?} in:\n{err}");
    assert_eq!(
        emulator.stats().requests,
        0,
        "a refused input sends nothing"
    );
    assert!(!ws.state().exists(), "a refused input writes nothing");
    err
}

#[test]
fn subscriber_files_outside_the_tree_are_refused_without_reading_them() {
    let ws = Workspace::new();
    std::fs::write(
        ws.path().join("outside.txt"),
        "SUBSYNC_SECRET_KEY=hunter2\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        ws.path().join("outside.txt"),
        ws.manifests().join("link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", ws.manifests().join("env.txt")).unwrap();
    write_manifest(
        &ws,
        "  subscriberFiles:\n    - ../outside.txt\n    - ../../../../etc/hostname\n    - /proc/self/environ\n    - link.txt\n    - env.txt\n",
    );
    let err = refused_by_apply(
        &ws,
        "a.yaml:8:7: subscriber file \"../outside.txt\" resolves outside",
    );
    for expected in [
        "a.yaml:9:7: subscriber file \"../../../../etc/hostname\" resolves outside",
        "a.yaml:10:7: subscriber file \"/proc/self/environ\" is an absolute path",
        "a.yaml:11:7: subscriber file \"link.txt\" resolves outside",
        "a.yaml:12:7: subscriber file \"env.txt\" resolves outside",
    ] {
        assert!(err.contains(expected), "{expected}:\n{err}");
    }
    assert!(!err.contains("hunter2") && !err.contains("PATH="), "{err}");
}

#[test]
fn a_device_fifo_or_gzip_bomb_as_a_subscriber_file_is_refused_quickly() {
    let ws = Workspace::new();
    std::os::unix::fs::symlink("/dev/zero", ws.manifests().join("zero.txt")).unwrap();
    let fifo = std::ffi::CString::new(ws.manifests().join("pipe.txt").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    // 64 MiB of repeated lines inflate from about 100 KB: twice the default 32 MiB cap.
    let mut bomb = flate2::write::GzEncoder::new(
        std::fs::File::create(ws.manifests().join("bomb.txt.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    let block = "same-user\n".repeat(1 << 16);
    for _ in 0..(64 << 20) / block.len() {
        bomb.write_all(block.as_bytes()).unwrap();
    }
    bomb.finish().unwrap();
    write_manifest(
        &ws,
        "  subscriberFiles: [zero.txt, pipe.txt, bomb.txt.gz]\n",
    );
    // The link leaves the tree, which is checked first; a device inside it would be refused
    // as "a device, not a regular file" (see the confine module's tests).
    let err = refused_by_apply(&ws, "subscriber file \"zero.txt\" resolves outside");
    assert!(
        err.contains("subscriber file \"pipe.txt\" is a FIFO"),
        "{err}"
    );
    assert!(
        err.contains("bomb.txt.gz: inflates to more than 33554432 bytes; split the list or raise --max-list-bytes"),
        "{err}"
    );
}

#[test]
fn a_fifo_named_like_a_manifest_does_not_hang_the_loader() {
    let ws = Workspace::new();
    ws.manifest("ok", "@TOA#_ok", &["1".into()]);
    let fifo = std::ffi::CString::new(ws.manifests().join("x.yaml").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let out = run_bounded(&ws, None, &["validate", "manifests"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("x.yaml: is not a regular file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn deep_nesting_is_refused_at_the_limit() {
    let ws = Workspace::new();
    for (name, nesting) in [
        ("flow", "[".repeat(300_000)),
        ("block", format!("\n    {}", "- ".repeat(100_000))),
    ] {
        std::fs::write(
            ws.manifests().join("a.yaml"),
            format!("{HEAD}  subscribers: {nesting}\n"),
        )
        .unwrap();
        let out = run_bounded(&ws, None, &["validate", "manifests"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(
            err.contains("a.yaml:7:") || err.contains("a.yaml:8:"),
            "{name}: {err}"
        );
        assert!(
            err.contains("nested deeper than 32 levels") || err.contains("recursion limit"),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_huge_user_id_is_quoted_short_in_the_message() {
    let ws = Workspace::new();
    let huge = format!("\u{1b}[31m{}", "x".repeat(10 << 20));
    write_manifest(
        &ws,
        &format!("  subscribers: [\"{}\"]\n", huge.replace('\u{1b}', "\\e")),
    );
    let out = run_bounded(&ws, None, &["validate", "manifests"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.len() < 1024, "{} bytes of message", err.len());
    assert!(
        err.contains("a.yaml:7:17: UserID \"\\u{1b}[31mxxx"),
        "{err}"
    );
    assert!(
        err.contains("more bytes)") && !err.contains('\u{1b}'),
        "{err}"
    );
}

#[test]
fn a_manifest_over_the_size_cap_is_refused_and_the_cap_can_be_raised() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 2000));
    let out = run_bounded(
        &ws,
        None,
        &["validate", "manifests", "--max-manifest-bytes", "4K"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("over the 4096-byte limit for a manifest"),
        "{}",
        stderr(&out)
    );
    let raised = ws
        .command(None, &["validate", "manifests"])
        .env("SUBSYNC_MAX_MANIFEST_BYTES", "64KiB")
        .output()
        .unwrap();
    assert!(raised.status.success(), "{}", stderr(&raised));
    let capped = run_bounded(
        &ws,
        None,
        &["validate", "manifests", "--max-subscribers", "1999"],
    );
    assert!(
        stderr(&capped).contains("more than 1999 distinct subscribers"),
        "{}",
        stderr(&capped)
    );
}

#[test]
fn a_byte_order_mark_and_safe_numeric_ids_are_accepted() {
    let ws = Workspace::new();
    std::fs::write(
        ws.manifests().join("a.yaml"),
        format!("\u{feff}{HEAD}  subscribers: [107867, \"0123\"]\n"),
    )
    .unwrap();
    let out = run_bounded(&ws, None, &["validate", "manifests"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn plain_scalars_other_tools_read_differently_are_refused() {
    let ws = Workspace::new();
    write_manifest(
        &ws,
        "  subscribers: [0123, 0x1F, 1e3, true, yes, ~, null, 12:30, 1_000, 2024-01-01]\n",
    );
    let err = refused_by_apply(&ws, "quote it: \"0123\"");
    for value in [
        "0x1F",
        "1e3",
        "true",
        "yes",
        "~",
        "null",
        "12:30",
        "1_000",
        "2024-01-01",
    ] {
        assert!(
            err.contains(&format!("quote it: \"{value}\"")),
            "{value}:\n{err}"
        );
    }
    assert_eq!(err.matches("a.yaml:7:").count(), 10, "{err}");
}

/// A plan saved for review, then the same plan with `edit` applied to its JSON.
fn saved_and_edited(ws: &Workspace, edit: impl Fn(&mut serde_json::Value)) {
    let out = ws.run(None, &["plan", "manifests", "--out", "plan.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let path = ws.path().join("plan.json");
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut plan);
    std::fs::write(&path, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
}

fn saved_plan_refused(ws: &Workspace, emulator: &Emulator, fragment: &str) {
    let out = ws.run(Some(&emulator.url()), &["apply", "--plan", "plan.json"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(fragment), "expected {fragment:?} in:\n{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
    assert_eq!(emulator.stats().requests, 0, "an edited plan sends nothing");
}

#[test]
fn an_edited_saved_plan_is_refused_and_nothing_is_sent() {
    let emulator = Remote::default()
        .account("@TOA#_a", 1000, &[])
        .account("@TOA#_b", 1000, &[])
        .start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    saved_and_edited(&ws, |p| {
        p["accounts"][0]["add"]
            .as_array_mut()
            .unwrap()
            .push("intruder".into())
    });
    saved_plan_refused(&ws, &emulator, "account \"@TOA#_a\": `add` differs");
    saved_and_edited(&ws, |p| {
        p["accounts"][0]["official_account"] = "@TOA#_b".into()
    });
    saved_plan_refused(
        &ws,
        &emulator,
        "has account \"@TOA#_b\" where \"@TOA#_a\" belongs",
    );
    saved_and_edited(&ws, |p| {
        p["accounts"][0]["add"][0] = "\u{1b}]0;pwned\u{7}\u{1b}[2J".into()
    });
    saved_plan_refused(
        &ws,
        &emulator,
        "accounts[0].add[0]: UserID \"\\u{1b}]0;pwned",
    );
    saved_and_edited(&ws, |_| {});
    let out = ws.run(Some(&emulator.url()), &["apply", "--plan", "plan.json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the unedited plan applies: {}",
        stderr(&out)
    );
}

#[test]
fn an_unreachable_endpoint_stops_the_run_at_once_and_records_nothing_as_failed() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 500));
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run_bounded(&ws, Some(&url), &["apply", "manifests", "--format", "json"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot reach the API at {url}/")),
        "{err}"
    );
    assert!(err.contains("check --region or --endpoint"), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["result"], "failed");
    assert_eq!(summary["accounts"][0]["status"], "stopped");
    assert_eq!(summary["totals"]["failed"], 0);
    let snapshot = crate::common::ledger::snapshot(ws.state());
    assert!(snapshot.accounts.values().all(|a| a.view.failed.is_empty()));
}

#[test]
fn redirected_stderr_gets_no_colour_and_each_cause_is_said_once() {
    let emulator = Remote::default().account("@TOA#_vip", 2, &[]).start();
    let ws = Workspace::new();
    ws.manifest("vip", "@TOA#_vip", &ids("v", 5));
    let out = ws
        .command(Some(&emulator.url()), &["apply", "manifests"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("WARN"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains('\u{1b}'),
        "colour in a redirected stderr"
    );

    let region = ws.run(None, &["apply", "manifests", "--region", "mars"]);
    assert_eq!(
        stderr(&region).matches("unknown region").count(),
        1,
        "{}",
        stderr(&region)
    );
    let key = ws
        .command(None, &["usersig"])
        .env("SUBSYNC_SECRET_KEY_FILE", ws.path().join("nope.key"))
        .output()
        .unwrap();
    assert_eq!(
        stderr(&key).matches("No such file").count(),
        1,
        "{}",
        stderr(&key)
    );
}

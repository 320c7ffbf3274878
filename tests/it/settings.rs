//! Settings a typo or an unset variable can get wrong, refused before anything is sent or
//! created: durations outside their documented range, a revision that cannot be stored, an
//! open-file limit too low to run.

use crate::common::{Workspace, ids, limit_open_files, stderr, stdout};

/// A workspace with one manifest and nothing else.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    ws
}

/// `out` failed with one message naming every `expected`, printed nothing on stdout, and
/// created no ledger.
fn refused(ws: &Workspace, out: &std::process::Output, expected: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for e in expected {
        assert!(err.contains(e), "{e:?} not in:\n{err}");
    }
    assert!(stdout(out).is_empty(), "{}", stdout(out));
    assert!(!ws.state().exists(), "nothing is created");
}

#[test]
fn a_takeover_period_of_zero_is_refused_from_the_flag_or_the_variable() {
    let ws = workspace();
    let expected = "--takeover-every 0 is below its floor of 100ms (a replica standing by would try the ledger's lock without pause); set --takeover-every (SUBSYNC_TAKEOVER_EVERY) between 100ms and 1h";
    let out = ws.run(
        Some("http://127.0.0.1:9"),
        &["watch", "manifests", "--standby", "--takeover-every", "0"],
    );
    refused(&ws, &out, &[expected]);
    let out = ws
        .command(
            Some("http://127.0.0.1:9"),
            &["watch", "manifests", "--standby"],
        )
        .env("SUBSYNC_TAKEOVER_EVERY", "0")
        .output()
        .unwrap();
    refused(&ws, &out, &[expected]);
}

#[test]
fn every_duration_out_of_range_is_named_in_one_message() {
    let ws = workspace();
    let out = ws.run(
        Some("http://127.0.0.1:9"),
        &[
            "watch",
            "manifests",
            "--debounce",
            "0",
            "--resync",
            "10ms",
            "--refresh-every",
            "100000h",
            "--api-timeout",
            "1ms",
        ],
    );
    refused(
        &ws,
        &out,
        &[
            "4 problems with the settings",
            "--debounce 0 is below its floor of 100ms",
            "--resync 10ms is below its floor of 1s (the daemon would reconcile without pause); set --resync (SUBSYNC_RESYNC) between 1s and 168h, or 0 to turn it off",
            "--refresh-every 100000h is above its ceiling of 720h",
            "--api-timeout 1ms is below its floor of 500ms",
        ],
    );
    let out = ws.run(
        Some("http://127.0.0.1:9"),
        &["apply", "manifests", "--api-timeout", "0"],
    );
    refused(&ws, &out, &["--api-timeout 0 is below its floor of 500ms"]);
}

#[test]
fn a_revision_that_cannot_be_stored_is_refused_without_being_echoed_whole() {
    let ws = workspace();
    let long = "r".repeat(10_000);
    let out = ws.run(
        Some("http://127.0.0.1:9"),
        &["apply", "manifests", "--revision", &long],
    );
    refused(
        &ws,
        &out,
        &["is 10000 bytes; at most 256 are kept (a commit id is 40 or 64) (SUBSYNC_REVISION)"],
    );
    assert!(stderr(&out).len() < 500, "{}", stderr(&out));
    for revision in ["", "abc\ndef"] {
        let out = ws
            .command(Some("http://127.0.0.1:9"), &["apply", "manifests"])
            .env("SUBSYNC_REVISION", revision)
            .output()
            .unwrap();
        refused(&ws, &out, &["--revision \""]);
    }
}

#[test]
fn an_open_file_limit_too_low_to_run_is_refused_naming_what_is_needed() {
    let ws = workspace();
    let mut cmd = ws.command(
        Some("http://127.0.0.1:9"),
        &["watch", "manifests", "--listen", "127.0.0.1:0"],
    );
    limit_open_files(&mut cmd, 30);
    let out = cmd.output().unwrap();
    refused(
        &ws,
        &out,
        &["the open-file limit (ulimit -n) is 30, too low to run: subsync needs at least 42"],
    );
}

//! `--state` typos never start a ledger in silence (issue 22): an empty or white-space-padded
//! value, a URL missing its `://` and a directory under one that does not exist are refused
//! with exit 1 before anything is sent or created; apply, import and watch say when they do
//! start a new ledger.

use crate::common::daemon::{sigterm, start};
use crate::common::wait_for;
use crate::common::{Remote, Workspace, ids, stderr};

/// Every file and directory under `ws` but the ones every workspace has.
fn created(ws: &Workspace) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(ws.path()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !["manifests", "secret.key"].contains(&name.as_str()) {
            found.push(name);
        }
    }
    found
}

#[test]
fn a_state_that_is_a_typo_is_refused_before_anything_is_sent_or_created() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 3));
    let cases: &[(&str, &str)] = &[
        ("", "--state is empty"),
        (" ", "--state is empty"),
        (".subsync ", "begins or ends with white space"),
        (".subsync\n", "begins or ends with white space"),
        (
            "postgresql//db/subsync",
            "did you mean postgresql://db/subsync?",
        ),
        ("postgres:db/subsync", "did you mean postgres://db/subsync?"),
        (
            "postgres//u:hunter2@db/x",
            "did you mean postgres://u@db/x?",
        ),
        (
            "missing/state",
            "directory missing does not exist; create it or fix --state",
        ),
    ];
    for (state, says) in cases {
        for command in [
            &["apply", "manifests"][..],
            &["import", "manifests"],
            &["plan", "manifests"],
            &["status"],
        ] {
            let out = ws
                .command(Some(&emulator.url()), command)
                .env("SUBSYNC_STATE", state)
                .output()
                .unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{state:?} {command:?}: {err}");
            assert!(err.contains(says), "{state:?} {command:?}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
    }
    assert_eq!(emulator.stats().requests, 0, "nothing is sent");
    assert!(
        created(&ws).is_empty(),
        "nothing is created: {:?}",
        created(&ws)
    );
}

#[test]
fn the_sandbox_refuses_the_same_typos() {
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 3));
    for (state, says) in [
        (".subsync ", "white space"),
        ("postgresql//db", "did you mean postgresql://db?"),
        ("missing/state", "directory missing does not exist"),
    ] {
        let out = ws
            .command(None, &["apply", "--sandbox", "manifests"])
            .env("SUBSYNC_STATE", state)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{state:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{state:?}: {}", stderr(&out));
    }
    assert!(
        created(&ws).is_empty(),
        "nothing is created: {:?}",
        created(&ws)
    );
}

#[test]
fn apply_and_import_say_when_they_start_a_new_ledger_and_only_then() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 3));
    let ledger = ws.state().join("ledger.db");
    let said = format!("starting a new ledger at {}", ledger.display());
    for command in ["import", "apply"] {
        let state = ws.path().join(format!("state-{command}"));
        let said = format!(
            "starting a new ledger at {}",
            state.join("ledger.db").display()
        );
        let out = ws
            .command(Some(&emulator.url()), &[command, "manifests"])
            .env("SUBSYNC_STATE", &state)
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        assert!(stderr(&out).contains(&said), "{command}: {}", stderr(&out));
    }
    let first = ws.run(Some(&emulator.url()), &["apply", "manifests"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stderr(&first).contains(&said), "{}", stderr(&first));
    let again = ws.run(Some(&emulator.url()), &["apply", "manifests"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        !stderr(&again).contains("starting a new ledger"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn watch_says_when_it_starts_a_new_ledger() {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("u", 3));
    let mut daemon = start(&ws, &emulator, &ws.manifests(), &[]);
    let said = format!(
        "starting a new ledger at {}",
        ws.state().join("ledger.db").display()
    );
    wait_for("the new ledger to be announced", || {
        daemon.log().contains(&said)
    });
    sigterm(daemon.child());
    let status = daemon.child().wait().unwrap();
    assert!(status.success(), "{}", daemon.log());
}

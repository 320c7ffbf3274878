//! `subsync watch` as a real process against the emulator: the ways files change in production
//! (in-place edits, atomic renames, git-sync's symlink swap, a ConfigMap's `..data` swap), an
//! invalid commit followed by a valid one, probes, metrics, a second daemon, credentials that
//! start wrong, JSON logs, SIGTERM and SIGHUP, and trees that cost too much to read: a kernel
//! filesystem, a set full of problems.

use std::path::Path;

use crate::common::daemon::{Daemon, signal, sigterm, start};
use crate::common::wait_for;
use crate::common::{Remote, Workspace, block_on, ids, manifest_text, remote_subscribers};
use subsync::emulator::Emulator;
use subsync::tencent::Api;

fn emulator() -> Emulator {
    Remote::default()
        .account("@TOA#_a", 1000, &[])
        .account("@TOA#_b", 1000, &[])
        .start()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn in_place_edits_and_atomic_renames_are_applied() {
    let emulator = emulator();
    let ws = Workspace::new();
    let file = ws.manifests().join("a.yaml");
    write(&file, &manifest_text("a", "@TOA#_a", &ids("a", 3)));
    let daemon = start(&ws, &emulator, &ws.manifests(), &[]);
    wait_for("the start reconcile", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 3
    });

    write(&file, &manifest_text("a", "@TOA#_a", &ids("a", 5)));
    wait_for("the in-place edit", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 5
    });

    // An editor's save: write a temporary file beside it, then rename it over the manifest.
    let tmp = ws.manifests().join(".a.yaml.swp");
    write(&tmp, &manifest_text("a", "@TOA#_a", &ids("a", 7)));
    std::fs::rename(&tmp, &file).unwrap();
    wait_for("the atomic rename", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 7
    });

    // A new manifest appears, as after a `git pull`.
    write(
        &ws.manifests().join("b.yaml"),
        &manifest_text("b", "@TOA#_b", &ids("b", 2)),
    );
    wait_for("the new file", || {
        remote_subscribers(&emulator, "@TOA#_b").len() == 2
    });
    assert_eq!(daemon.get("/readyz").0, 200);
}

#[test]
fn a_git_sync_symlink_swap_is_followed() {
    let emulator = emulator();
    let ws = Workspace::new();
    let root = ws.path().join("git");
    write(
        &root.join(".worktrees/rev1/manifests/a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 2)),
    );
    std::os::unix::fs::symlink(".worktrees/rev1", root.join("current")).unwrap();
    let _daemon = start(&ws, &emulator, &root.join("current/manifests"), &[]);
    wait_for("rev1", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 2
    });

    // git-sync: a new worktree, a new link beside the old one, renamed over it, old one removed.
    write(
        &root.join(".worktrees/rev2/manifests/a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 4)),
    );
    std::os::unix::fs::symlink(".worktrees/rev2", root.join("tmp-link")).unwrap();
    std::fs::rename(root.join("tmp-link"), root.join("current")).unwrap();
    std::fs::remove_dir_all(root.join(".worktrees/rev1")).unwrap();
    wait_for("rev2", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 4
    });

    // And the new target is watched: an edit there is seen too.
    write(
        &root.join(".worktrees/rev2/manifests/a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 6)),
    );
    wait_for("an edit in rev2", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 6
    });
}

/// Writes `files` as a ConfigMap volume does: a timestamped directory, `..data` renamed over
/// to point at it, the old directory removed.
fn configmap_update(root: &Path, version: u32, files: &[(&str, String)]) {
    let dir = format!("..2026_11_30_{version:02}");
    for (name, text) in files {
        write(&root.join(&dir).join(name), text);
    }
    std::os::unix::fs::symlink(&dir, root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    for (name, _) in files {
        let link = root.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    if version > 1 {
        std::fs::remove_dir_all(root.join(format!("..2026_11_30_{:02}", version - 1))).unwrap();
    }
}

#[test]
fn a_configmap_data_swap_is_followed() {
    let emulator = emulator();
    let ws = Workspace::new();
    let root = ws.path().join("config");
    configmap_update(
        &root,
        1,
        &[("a.yaml", manifest_text("a", "@TOA#_a", &ids("a", 1)))],
    );
    let _daemon = start(&ws, &emulator, &root, &[]);
    wait_for("version 1", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 1
    });
    configmap_update(
        &root,
        2,
        &[("a.yaml", manifest_text("a", "@TOA#_a", &ids("a", 3)))],
    );
    wait_for("version 2", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 3
    });
    configmap_update(
        &root,
        3,
        &[("a.yaml", manifest_text("a", "@TOA#_a", &ids("a", 8)))],
    );
    wait_for("version 3", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 8
    });
}

#[test]
fn an_invalid_commit_changes_nothing_and_the_next_valid_one_is_applied() {
    let emulator = emulator();
    let ws = Workspace::new();
    let file = ws.manifests().join("a.yaml");
    write(&file, &manifest_text("a", "@TOA#_a", &ids("a", 2)));
    let daemon = start(&ws, &emulator, &ws.manifests(), &[]);
    wait_for("the start reconcile", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 2
    });
    wait_for("ready", || daemon.get("/readyz").0 == 200);
    let requests = emulator.stats().requests;

    write(
        &file,
        &manifest_text("a", "@TOA#_a", &ids("a", 9)).replace("kind: SubscriberSet", "kind: [oops"),
    );
    wait_for("unready", || daemon.get("/readyz").0 == 503);
    let (_, reason) = daemon.get("/readyz");
    assert!(
        reason.contains("the manifests are invalid")
            && reason.contains("a.yaml:3:9: YAML syntax error"),
        "{reason}"
    );
    assert_eq!(daemon.metric("subsync_manifests_valid"), Some(0.0));
    assert_eq!(
        emulator.stats().requests,
        requests,
        "an invalid set sends nothing"
    );
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a").len(), 2);
    assert!(daemon.log().contains("a.yaml:3:9"), "{}", daemon.log());
    assert_eq!(
        daemon.get("/healthz").0,
        200,
        "invalid input is not a dead daemon"
    );

    write(&file, &manifest_text("a", "@TOA#_a", &ids("a", 4)));
    wait_for("the valid commit", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 4
    });
    wait_for("ready again", || daemon.get("/readyz").0 == 200);
    assert_eq!(daemon.metric("subsync_manifests_valid"), Some(1.0));
}

#[test]
fn the_metrics_parse_and_count_what_happened() {
    // One wanted subscriber already follows: drift.
    let emulator = Remote::default()
        .account("@TOA#_a", 1000, &["a00001"])
        .start();
    let ws = Workspace::new();
    write(
        &ws.manifests().join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 3)),
    );
    // No refresh: the counts below are the reconcile's own calls.
    let daemon = start(&ws, &emulator, &ws.manifests(), &["--refresh-every", "0"]);
    wait_for("a reconcile", || {
        daemon.metric("subsync_subscribers_confirmed{account=\"@TOA#_a\"}") == Some(3.0)
    });
    let metrics = daemon.metrics();
    let value = |key: &str| metrics.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    assert_eq!(
        value("subsync_subscribers_desired{account=\"@TOA#_a\"}"),
        Some(3.0)
    );
    assert_eq!(
        value("subsync_subscribers_failed{account=\"@TOA#_a\"}"),
        Some(0.0)
    );
    assert_eq!(
        value("subsync_account_limit_reached{account=\"@TOA#_a\"}"),
        Some(0.0)
    );
    assert_eq!(
        value("subsync_reconcile_total{result=\"converged\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("subsync_api_requests_total{command=\"add_subscriber\",code=\"0\"}"),
        Some(1.0)
    );
    assert_eq!(
        value("subsync_api_requests_total{command=\"get_official_account_info\",code=\"0\"}"),
        Some(1.0)
    );
    assert_eq!(value("subsync_manifests_valid"), Some(1.0));
    assert!(value("subsync_last_success_timestamp_seconds").unwrap() > 1.7e9);
    assert_eq!(value("subsync_reconcile_duration_seconds_count"), Some(1.0));
    let build = format!(
        "subsync_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&build), Some(1.0));
    assert_eq!(
        value("subsync_drift_total{account=\"@TOA#_a\",direction=\"added\"}"),
        Some(1.0)
    );
    let (_, text) = daemon.get("/metrics");
    assert!(text.contains("# TYPE subsync_drift counter"), "{text}");
}

#[test]
fn a_second_daemon_on_the_same_state_is_refused_at_once_with_nothing_on_stdout() {
    let emulator = emulator();
    let ws = Workspace::new();
    write(
        &ws.manifests().join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 1)),
    );
    let mut first = start(&ws, &emulator, &ws.manifests(), &[]);
    wait_for("the first daemon", || first.get("/readyz").0 == 200);
    let second = ws
        .command(
            Some(&emulator.url()),
            &["watch", "manifests", "--listen", "127.0.0.1:0"],
        )
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    // Nothing a script could take for a serving daemon.
    assert_eq!(String::from_utf8_lossy(&second.stdout), "");
    let err = String::from_utf8_lossy(&second.stderr);
    let pid = first.child().id();
    assert!(
        err.contains(&format!("locked by PID {pid}")) && err.contains("subsync watch"),
        "{err}"
    );
}

/// A daemon in the middle of a long reconcile: 5,000 subscribers at 50 calls a second, a few
/// batches sent.
fn mid_run() -> (Emulator, Workspace, Daemon) {
    let emulator = Remote::default()
        .latency_ms(20)
        .account("@TOA#_a", 100_000, &[])
        .start();
    let ws = Workspace::new();
    write(
        &ws.manifests().join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 5000)),
    );
    let daemon = start(&ws, &emulator, &ws.manifests(), &["--qps", "50"]);
    wait_for("a few batches", || {
        emulator
            .stats()
            .count(subsync::tencent::api::Command::AddSubscriber, "0")
            >= 3
    });
    (emulator, ws, daemon)
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let (emulator, ws, mut daemon) = mid_run();
    sigterm(daemon.child());
    let status = daemon.child().wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    let runs = crate::common::ledger::runs(ws.state(), 1);
    assert_eq!(runs[0].command, "watch");
    assert_eq!(
        runs[0].result,
        Some(subsync::ledger::RunOutcome::Interrupted)
    );
    // Everything recorded is on the remote side: nothing in flight was lost or doubled.
    let snapshot = crate::common::ledger::snapshot(ws.state());
    let confirmed = &snapshot.accounts["@TOA#_a"].confirmed;
    let remote = remote_subscribers(&emulator, "@TOA#_a");
    assert!(!confirmed.is_empty() && confirmed.len() < 5000);
    assert!(confirmed.iter().all(|s| remote.binary_search(s).is_ok()));
    assert!(daemon.log().contains("stopped"), "{}", daemon.log());
}

#[test]
fn wrong_credentials_make_it_unready_until_the_key_file_changes() {
    let emulator = emulator();
    let ws = Workspace::new();
    write(
        &ws.manifests().join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 2)),
    );
    std::fs::write(ws.key_file(), "not-the-key").unwrap();
    let daemon = start(&ws, &emulator, &ws.manifests(), &[]);
    wait_for("unready", || daemon.get("/readyz").0 == 503);
    wait_for("the fatal answer", || {
        daemon.get("/readyz").1.contains("70009")
    });
    assert_eq!(daemon.get("/healthz").0, 200, "the daemon stays up");
    assert!(remote_subscribers(&emulator, "@TOA#_a").is_empty());

    std::fs::write(ws.key_file(), format!("{}\n", crate::common::KEY)).unwrap();
    wait_for("the new key", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 2
    });
    wait_for("ready", || daemon.get("/readyz").0 == 200);
}

#[test]
fn a_path_that_does_not_exist_yet_is_awaited() {
    let emulator = emulator();
    let ws = Workspace::new();
    let later = ws.path().join("later/manifests");
    let daemon = start(&ws, &emulator, &later, &[]);
    wait_for("unready", || {
        daemon.get("/readyz").1.contains("manifests are invalid")
    });
    write(
        &later.join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 2)),
    );
    wait_for("the path to appear", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 2
    });
    assert_eq!(daemon.get("/healthz").0, 200);
}

#[test]
fn json_logs_are_one_object_a_line_with_one_event_per_reconcile() {
    let emulator = emulator();
    let ws = Workspace::new();
    write(
        &ws.manifests().join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 2)),
    );
    let mut daemon = start(&ws, &emulator, &ws.manifests(), &["--log-format", "json"]);
    wait_for("the start reconcile", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 2
    });
    write(&ws.manifests().join("a.yaml"), "not: [valid\n");
    wait_for("unready", || daemon.get("/readyz").0 == 503);
    sigterm(daemon.child());
    assert_eq!(daemon.child().wait().unwrap().code(), Some(0));
    let log = daemon.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let reconciled: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["message"] == "reconciled")
        .collect();
    assert_eq!(reconciled.len(), 1, "{log}");
    assert_eq!(reconciled[0]["trigger"], "start");
    assert_eq!(reconciled[0]["added"], 2);
    assert!(
        events.iter().any(|e| e["level"] == "ERROR"
            && e["file"].as_str().is_some_and(|f| f.ends_with("a.yaml"))
            && e["line"] == 2),
        "{log}"
    );
}

#[test]
fn a_second_signal_stops_at_once_without_waiting_for_calls_in_flight() {
    // Every call takes 20 s: the first signal would wait (up to the 10 s drain) for it.
    let emulator = Remote::default()
        .latency_ms(20_000)
        .account("@TOA#_a", 1000, &[])
        .start();
    let ws = Workspace::new();
    write(
        &ws.manifests().join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 5)),
    );
    let mut daemon = start(&ws, &emulator, &ws.manifests(), &[]);
    wait_for("a call in flight", || emulator.stats().in_flight > 0);
    sigterm(daemon.child());
    wait_for("the first signal", || {
        daemon.log().contains("interrupted: finishing")
    });
    sigterm(daemon.child());
    let status = daemon.child().wait().unwrap();
    // 130, not the 0 of a graceful stop: it did not wait for the drain.
    assert_eq!(status.code(), Some(130), "{}", daemon.log());
    assert!(
        daemon.log().contains("stopping at once"),
        "{}",
        daemon.log()
    );
    assert!(!daemon.log().contains("INFO stopped"), "{}", daemon.log());
}

#[test]
fn a_vanishing_directory_and_a_symlink_loop_are_waited_out() {
    let emulator = emulator();
    let ws = Workspace::new();
    let dir = ws.manifests();
    write(
        &dir.join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 1)),
    );
    let daemon = start(&ws, &emulator, &dir, &[]);
    wait_for("the start reconcile", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 1
    });

    // The whole directory goes away for a moment, then comes back changed.
    std::fs::remove_dir_all(&dir).unwrap();
    wait_for("unready", || daemon.get("/readyz").0 == 503);
    write(
        &dir.join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 3)),
    );
    wait_for("the directory back", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 3
    });

    // It becomes a symlink loop: refused, unready, alive; then a real directory again.
    let moved = ws.path().join("moved");
    std::fs::rename(&dir, &moved).unwrap();
    std::os::unix::fs::symlink("manifests", &dir).unwrap();
    wait_for("unready on the loop", || {
        daemon.get("/readyz").1.contains("manifests are invalid")
    });
    assert_eq!(daemon.get("/healthz").0, 200);
    std::fs::remove_file(&dir).unwrap();
    write(
        &moved.join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 5)),
    );
    std::fs::rename(&moved, &dir).unwrap();
    wait_for("a directory again", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 5
    });
    wait_for("ready", || daemon.get("/readyz").0 == 200);
}

fn pruned_text(subscribers: &[String]) -> String {
    manifest_text("a", "@TOA#_a", subscribers) + "  prune: true\n"
}

#[test]
fn the_daemon_never_mass_prunes_without_the_flag() {
    let emulator = emulator();
    let ws = Workspace::new();
    let file = ws.manifests().join("a.yaml");
    write(&file, &pruned_text(&ids("a", 300)));
    let daemon = start(&ws, &emulator, &ws.manifests(), &["--refresh-every", "0"]);
    wait_for("the start reconcile", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 300
    });
    write(&file, &pruned_text(&ids("a", 150)));
    wait_for("the change to be planned", || {
        daemon.log().contains("held_back=150")
    });
    assert_eq!(
        remote_subscribers(&emulator, "@TOA#_a").len(),
        300,
        "nothing removed"
    );
    assert!(
        daemon.log().contains("--allow-mass-prune"),
        "{}",
        daemon.log()
    );

    // Within the limit, the same daemon prunes.
    write(&file, &pruned_text(&ids("a", 290)));
    wait_for("a small prune", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 290
    });
    wait_for("the removals counted", || {
        daemon.metric("subsync_subscribers_removed_total{account=\"@TOA#_a\"}") == Some(10.0)
    });
}

#[test]
fn the_daemon_refreshes_and_repairs_out_of_band_removals() {
    let emulator = emulator();
    let ws = Workspace::new();
    write(
        &ws.manifests().join("a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 3)),
    );
    let daemon = start(&ws, &emulator, &ws.manifests(), &["--refresh-every", "1s"]);
    wait_for("the start reconcile", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 3
    });
    // Someone removes a subscriber behind subsync's back.
    block_on(crate::common::client(&emulator).delete_subscriber("@TOA#_a", &ids("a", 1))).unwrap();
    wait_for("the refresh to repair it", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 3
    });
    wait_for("the drift counted", || {
        daemon.metric("subsync_drift_total{account=\"@TOA#_a\",direction=\"removed\"}") == Some(1.0)
    });
}

#[test]
fn sighup_drains_like_sigterm_and_the_run_is_recorded_finished() {
    let (_emulator, ws, mut daemon) = mid_run();
    signal(daemon.child(), "HUP");
    let status = daemon.child().wait().unwrap();
    let log = daemon.log();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("interrupted: finishing the requests in flight") && log.contains("SIGHUP"),
        "{log}"
    );
    let out = ws.run(None, &["status", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &report["runs"][0];
    assert_eq!(run["command"], "watch");
    assert_eq!(run["result"], "interrupted", "{report:#}");
    assert!(run["finished_at"].is_string(), "{report:#}");
}

#[test]
fn a_path_linked_to_proc_is_refused_once_and_a_swap_to_real_manifests_is_applied() {
    let emulator = emulator();
    let ws = Workspace::new();
    write(
        &ws.path().join("real/a.yaml"),
        &manifest_text("a", "@TOA#_a", &ids("a", 2)),
    );
    let link = ws.path().join("current");
    std::os::unix::fs::symlink("/proc", &link).unwrap();
    let daemon = start(&ws, &emulator, &link, &[]);
    wait_for("the refusal", || {
        daemon
            .metric("subsync_reconcile_total{result=\"invalid\"}")
            .is_some_and(|n| n >= 1.0)
    });
    let (status, reason) = daemon.get("/readyz");
    assert_eq!(status, 503);
    assert!(
        reason.contains("resolves to /proc and is in /proc, a kernel filesystem"),
        "{reason}"
    );
    // git-sync style: a new link renamed over the old one.
    std::os::unix::fs::symlink(ws.path().join("real"), ws.path().join("next")).unwrap();
    std::fs::rename(ws.path().join("next"), &link).unwrap();
    wait_for("the real manifests", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 2
    });
    let log = daemon.log();
    assert_eq!(log.matches("a kernel filesystem").count(), 1, "{log}");
    assert_eq!(
        daemon.metric("subsync_reconcile_total{result=\"invalid\"}"),
        Some(1.0),
        "{log}"
    );
}

#[test]
fn a_set_full_of_problems_is_logged_once_twenty_problems_and_the_count() {
    let emulator = emulator();
    let ws = Workspace::new();
    let bad = |i: usize| {
        format!(
            "apiVersion: subsync/v1\nkind: SubscriberSet\nmetadata: {{name: m{i}}}\nspec:\n  officialAccount: '@TOA#_a{i}'\n  subscribers: ['']\n"
        )
    };
    for i in 0..25 {
        write(&ws.manifests().join(format!("m{i:02}.yaml")), &bad(i));
    }
    let daemon = start(&ws, &emulator, &ws.manifests(), &[]);
    let invalid = || {
        daemon
            .metric("subsync_reconcile_total{result=\"invalid\"}")
            .unwrap_or(0.0)
    };
    wait_for("the first reading", || invalid() >= 1.0);
    // The same problems again (a file rewritten as it was) are not news.
    write(&ws.manifests().join("m00.yaml"), &bad(0));
    wait_for("the second reading", || invalid() >= 2.0);
    let log = daemon.log();
    let problems = log.lines().filter(|l| l.contains(".yaml:6:")).count();
    assert_eq!(problems, 20, "{log}");
    assert_eq!(
        log.matches("... and 5 more problems (`subsync validate` lists them all)")
            .count(),
        1,
        "{log}"
    );
}

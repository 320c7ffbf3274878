//! subsync with its ledger on PostgreSQL, as real processes against the emulator: every command
//! that uses the ledger, the lock's refusal, two `watch --standby` replicas taking over from
//! each other (after SIGKILL, after SIGTERM, after `pg_terminate_backend`), a standby waiting
//! on the lock (its wait cut off, withdrawn at shutdown), a server restart under the leader,
//! and bad settings. Each test is skipped, saying so, without `SUBSYNC_TEST_POSTGRES_URL`
//! (`.ci/run` starts a server and sets it), and fails instead when `CI` is set.

use std::process::Output;

use crate::common::daemon::{Daemon, sigterm, start};
use crate::common::ledger::snapshot;
use crate::common::wait_for;
use crate::common::{Remote, Workspace, ids, remote_subscribers, stderr, stdout};
use subsync::emulator::Emulator;
use subsync::ledger::Location;
use subsync::tencent::api::Command;
use subsync::testing::TestDatabase;

fn database(test: &str) -> Option<TestDatabase> {
    TestDatabase::server(test).map(|server| TestDatabase::create(&server).unwrap())
}

/// `subsync ARGS` against the emulator with the ledger at `state`.
fn run(ws: &Workspace, emulator: &Emulator, state: &str, args: &[&str]) -> Output {
    ws.command(Some(&emulator.url()), args)
        .env("SUBSYNC_STATE", state)
        .output()
        .unwrap()
}

fn confirmed(db: &TestDatabase, account: &str) -> Vec<String> {
    crate::common::ledger::confirmed(db.location(), account)
}

/// A `watch --standby` replica on the ledger at `url`, calling at the long job's pace.
fn replica(ws: &Workspace, emulator: &Emulator, url: &str) -> Daemon {
    start(
        ws,
        emulator,
        &ws.manifests(),
        &[
            "--state",
            url,
            "--standby",
            "--takeover-every",
            "200ms",
            "--qps",
            PACE,
        ],
    )
}

/// The daemons' calls per second: under the emulator's 50, so that the long job takes its
/// five seconds and no more (above it, answers of 60007 slow the daemon down for 10 s).
const PACE: &str = "40";

/// 20,000 subscribers to add at 40 calls a second: a few seconds of work to interrupt.
fn long_job() -> (Emulator, Workspace) {
    let emulator = Remote::default()
        .qps(50)
        .account("@TOA#_a", 100_000, &[])
        .start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 20_000));
    (emulator, ws)
}

/// Waits until the first adds of the long job went out.
fn adding(emulator: &Emulator) {
    wait_for("the first adds", || {
        emulator.stats().calls(Command::AddSubscriber) >= 20
    });
}

fn leads(daemon: &Daemon) -> bool {
    daemon.metric("subsync_leader") == Some(1.0)
}

#[test]
fn every_command_works_on_a_postgres_ledger() {
    let Some(db) = database("every_command_works_on_a_postgres_ledger") else {
        return;
    };
    let emulator = Remote::default()
        .account("@TOA#_a", 1000, &["out-of-band"])
        .start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 250));
    let url = db.url();
    let out = run(
        &ws,
        &emulator,
        url,
        &["plan", "manifests", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["summary"]["add"], 250, "{plan}");
    let out = run(&ws, &emulator, url, &["apply", "manifests"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(confirmed(&db, "@TOA#_a"), ids("a", 250));
    let out = run(
        &ws,
        &emulator,
        url,
        &["plan", "manifests", "--detailed-exitcode"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = run(&ws, &emulator, url, &["import", "manifests"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(confirmed(&db, "@TOA#_a").contains(&"out-of-band".to_owned()));
    let out = run(&ws, &emulator, url, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("@TOA#_a") && text.contains("251"), "{text}");
    assert!(!text.contains("subsync-test"), "no password in: {text}");
    // Back to a directory, e.g. to leave PostgreSQL again.
    let dir = ws.path().join("copied");
    let out = run(
        &ws,
        &emulator,
        url,
        &[
            "ledger",
            "copy",
            "--from",
            url,
            "--to",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(snapshot(Location::sqlite(dir)), snapshot(db.location()));
}

#[test]
fn apply_is_refused_at_once_while_a_daemon_leads_naming_it() {
    let Some(db) = database("apply_is_refused_at_once_while_a_daemon_leads_naming_it") else {
        return;
    };
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let mut leader = replica(&ws, &emulator, db.url());
    wait_for("the daemon to lead and converge", || {
        leads(&leader) && remote_subscribers(&emulator, "@TOA#_a").len() == 3
    });
    let requests = emulator.stats().requests;
    let out = run(&ws, &emulator, db.url(), &["apply", "manifests"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is locked by subsync watch on"), "{err}");
    assert!(
        err.contains(&format!("(PID {})", leader.child().id())),
        "{err}"
    );
    assert!(!err.contains("subsync-test"), "no password in: {err}");
    assert_eq!(
        emulator.stats().requests,
        requests,
        "the refused apply sent nothing"
    );
}

#[test]
fn a_standby_takes_over_when_the_leader_is_killed_and_loses_nothing() {
    let Some(db) = database("a_standby_takes_over_when_the_leader_is_killed_and_loses_nothing")
    else {
        return;
    };
    let (emulator, ws) = long_job();
    let mut first = replica(&ws, &emulator, db.url());
    wait_for("the first replica to lead", || leads(&first));
    let second = replica(&ws, &emulator, db.url());
    wait_for("the second replica to be ready", || {
        second.get("/readyz").0 == 200
    });
    assert_eq!(
        second.metric("subsync_leader"),
        Some(0.0),
        "{}",
        second.log()
    );
    adding(&emulator);
    first.child().kill().unwrap();
    first.child().wait().unwrap();
    wait_for("the standby to take over", || leads(&second));
    wait_for("the remote side to match the manifests", || {
        remote_subscribers(&emulator, "@TOA#_a").len() == 20_000
    });
    wait_for("the ledger to record every add", || {
        confirmed(&db, "@TOA#_a").len() == 20_000
    });
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 20_000));
    assert_eq!(confirmed(&db, "@TOA#_a"), ids("a", 20_000));
    assert_eq!(db.query_i64("SELECT epoch FROM holder").unwrap(), 2);
    assert!(
        second.log().contains("trigger=takeover"),
        "{}",
        second.log()
    );
}

/// This database's lock requests still waiting (a standby waiting on the writer lock).
const WAITING: &str = "FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// A `watch --standby` replica that would try the lock only once an hour: it can only take
/// over, or try again after a failure, by waiting on the lock itself.
fn patient_replica(ws: &Workspace, emulator: &Emulator, url: &str) -> Daemon {
    start(
        ws,
        emulator,
        &ws.manifests(),
        &[
            "--state",
            url,
            "--standby",
            "--takeover-every",
            "1h",
            "--qps",
            PACE,
        ],
    )
}

/// How many requests for a lock wait in this database.
fn waiting(db: &TestDatabase) -> i64 {
    db.query_i64(&format!("SELECT count(*) {WAITING}")).unwrap()
}

/// A replica leading over a small job, and a patient one waiting on the lock.
fn leader_and_waiting_standby(db: &TestDatabase) -> (Emulator, Workspace, Daemon, Daemon) {
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let leader = replica(&ws, &emulator, db.url());
    wait_for("the first replica to lead", || leads(&leader));
    let standby = patient_replica(&ws, &emulator, db.url());
    wait_for("the standby to wait on the lock", || waiting(db) == 1);
    (emulator, ws, leader, standby)
}

#[test]
fn a_standby_waiting_on_the_lock_leads_as_soon_as_the_leader_stops_and_loses_nothing() {
    let Some(db) = database(
        "a_standby_waiting_on_the_lock_leads_as_soon_as_the_leader_stops_and_loses_nothing",
    ) else {
        return;
    };
    let (emulator, ws) = long_job();
    let mut first = replica(&ws, &emulator, db.url());
    wait_for("the first replica to lead", || leads(&first));
    let second = patient_replica(&ws, &emulator, db.url());
    wait_for("the second replica to wait on the lock", || {
        waiting(&db) == 1
    });
    adding(&emulator);
    sigterm(first.child());
    wait_for("the waiting replica to take over", || leads(&second));
    wait_for("the ledger to record every add", || {
        confirmed(&db, "@TOA#_a").len() == 20_000
    });
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 20_000));
    assert_eq!(db.query_i64("SELECT epoch FROM holder").unwrap(), 2);
    assert_eq!(second.get("/readyz").0, 200, "{}", second.log());
}

#[test]
fn a_standby_whose_wait_for_the_lock_is_cut_off_reports_unready() {
    let Some(db) = database("a_standby_whose_wait_for_the_lock_is_cut_off_reports_unready") else {
        return;
    };
    let (_emulator, _ws, leader, standby) = leader_and_waiting_standby(&db);
    assert_eq!(standby.get("/readyz").0, 200, "{}", standby.log());
    // The connection the standby waits on ends, as when the server or the network drops it.
    db.execute(&format!("SELECT pg_terminate_backend(pid) {WAITING}"))
        .unwrap();
    wait_for("the standby to report unready", || {
        standby.get("/readyz").0 == 503
    });
    let (_, why) = standby.get("/readyz");
    assert!(why.contains("terminat"), "{why}");
    assert!(
        standby
            .log()
            .contains("standing by: cannot take the ledger's lock"),
        "{}",
        standby.log()
    );
    assert_eq!(standby.metric("subsync_leader"), Some(0.0));
    // The leader is not disturbed.
    assert!(leads(&leader), "{}", leader.log());
    assert_eq!(leader.get("/readyz").0, 200, "{}", leader.log());
}

#[test]
fn a_standby_stopping_withdraws_its_wait_for_the_lock() {
    let Some(db) = database("a_standby_stopping_withdraws_its_wait_for_the_lock") else {
        return;
    };
    let (_emulator, _ws, leader, mut standby) = leader_and_waiting_standby(&db);
    sigterm(standby.child());
    let status = standby.child().wait().unwrap();
    assert!(status.success(), "{status:?}: {}", standby.log());
    wait_for("the wait to be gone from the server", || waiting(&db) == 0);
    assert!(leads(&leader), "{}", leader.log());
    assert_eq!(db.query_i64("SELECT epoch FROM holder").unwrap(), 1);
}

#[test]
fn a_leader_whose_session_is_terminated_stops_and_the_work_still_completes() {
    let Some(db) =
        database("a_leader_whose_session_is_terminated_stops_and_the_work_still_completes")
    else {
        return;
    };
    let (emulator, ws) = long_job();
    let first = replica(&ws, &emulator, db.url());
    wait_for("the first replica to lead", || leads(&first));
    let second = replica(&ws, &emulator, db.url());
    adding(&emulator);
    db.execute("SELECT pg_terminate_backend(backend_pid) FROM holder")
        .unwrap();
    wait_for("the leader to step down", || {
        first.log().contains("no longer leading")
    });
    assert!(
        first.log().contains("lost the ledger's writer lock"),
        "{}",
        first.log()
    );
    wait_for("a replica to take the lock again", || {
        db.query_i64("SELECT epoch FROM holder").unwrap() == 2 && (leads(&first) || leads(&second))
    });
    wait_for("the ledger to record every add", || {
        confirmed(&db, "@TOA#_a").len() == 20_000
    });
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 20_000));
    // The readiness of either never depended on leading.
    assert_eq!(first.get("/readyz").0, 200, "{}", first.log());
    assert_eq!(second.get("/readyz").0, 200, "{}", second.log());
}

#[test]
fn a_server_restart_under_the_leader_is_ridden_out() {
    let Some([restart, server]) = subsync::testing::configured(
        "a_server_restart_under_the_leader_is_ridden_out",
        &[
            "SUBSYNC_TEST_POSTGRES_RESTART",
            "SUBSYNC_TEST_POSTGRES_RESTART_URL",
        ],
    )
    .and_then(|v| <[String; 2]>::try_from(v).ok()) else {
        return;
    };
    let db = TestDatabase::create(&server).unwrap();
    let (emulator, ws) = long_job();
    // Not --standby: a daemon that led rides out the restart all the same.
    let daemon = start(
        &ws,
        &emulator,
        &ws.manifests(),
        &[
            "--state",
            db.url(),
            "--takeover-every",
            "200ms",
            "--qps",
            PACE,
        ],
    );
    wait_for("the daemon to lead", || leads(&daemon));
    adding(&emulator);
    let status = std::process::Command::new("sh")
        .args(["-c", &restart])
        .status()
        .unwrap();
    assert!(status.success(), "{restart}");
    wait_for("the daemon to step down", || {
        daemon.log().contains("no longer leading")
    });
    wait_for("the daemon to lead again", || {
        db.query_i64("SELECT epoch FROM holder").unwrap() == 2 && leads(&daemon)
    });
    wait_for("the ledger to record every add", || {
        confirmed(&db, "@TOA#_a").len() == 20_000
    });
    assert_eq!(remote_subscribers(&emulator, "@TOA#_a"), ids("a", 20_000));
    assert_eq!(daemon.get("/readyz").0, 200, "{}", daemon.log());
}

#[test]
fn bad_ledger_settings_exit_1_with_one_message_and_send_nothing() {
    let Some(db) = database("bad_ledger_settings_exit_1_with_one_message_and_send_nothing") else {
        return;
    };
    let emulator = Remote::default().account("@TOA#_a", 1000, &[]).start();
    let ws = Workspace::new();
    ws.manifest("a", "@TOA#_a", &ids("a", 3));
    let mut wrong_password = url::Url::parse(db.url()).unwrap();
    wrong_password.set_password(Some("hunter2")).unwrap();
    let unreachable = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("postgres://u:hunter2@127.0.0.1:{port}/db")
    };
    let mut no_schema = url::Url::parse(db.url()).unwrap();
    no_schema
        .query_pairs_mut()
        .append_pair("options", "-c search_path=nowhere");
    let cases = [
        (
            "postgres://u:hunter2@127.0.0.1:notaport/db",
            "not a valid URL",
        ),
        (wrong_password.as_str(), "password authentication failed"),
        (unreachable.as_str(), "check that the server runs"),
        ("postgres://u@127.0.0.1/db?sslmode=maybe", "sslmode must be"),
        (no_schema.as_str(), "CREATE SCHEMA"),
    ];
    for (state, expected) in cases {
        for command in [
            &["apply", "manifests"][..],
            &["plan", "manifests"],
            &["status"],
        ] {
            let out = run(&ws, &emulator, state, command);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{command:?} {state}: {err}");
            assert!(err.contains(expected), "{command:?}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
            assert_eq!(err.trim().lines().count(), 1, "one message: {err}");
        }
    }
    // A ledger written by a newer subsync.
    let out = run(&ws, &emulator, db.url(), &["apply", "manifests"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let requests = emulator.stats().requests;
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        .unwrap();
    let out = run(&ws, &emulator, db.url(), &["apply", "manifests"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("newer than this subsync"),
        "{}",
        stderr(&out)
    );
    assert_eq!(emulator.stats().requests, requests, "nothing was sent");
}

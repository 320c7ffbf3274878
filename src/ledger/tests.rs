use super::*;

fn batch(account: &str, added: &[&str], already: &[&str], failed: &[(&str, i64)]) -> Record {
    Record::Batch {
        account: account.into(),
        op: Op::Add,
        done: added.iter().map(|s| s.to_string()).collect(),
        unchanged: already.iter().map(|s| s.to_string()).collect(),
        failed: failed.iter().map(|(s, c)| (s.to_string(), *c)).collect(),
    }
}

#[test]
fn recorded_outcomes_appear_in_the_next_snapshot_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), "apply").unwrap();
    let run = ledger.begin_run("apply", Some("abc123")).unwrap();
    ledger
        .record(
            run,
            &[batch("@TOA#_a", &["b", "a"], &["c"], &[("d", 130010)])],
        )
        .unwrap();
    let snap = ledger.snapshot().unwrap();
    let account = &snap.accounts["@TOA#_a"];
    assert_eq!(account.confirmed, ["a", "b", "c"]);
    assert_eq!(account.failed[0].subscriber, "d");
    assert_eq!(
        (account.failed[0].code, account.failed[0].attempts),
        (130010, 1)
    );
}

#[test]
fn a_later_success_clears_the_failure_and_repeats_count_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), "apply").unwrap();
    ledger
        .record(1, &[batch("@TOA#_a", &[], &[], &[("d", -1), ("e", 6017)])])
        .unwrap();
    ledger
        .record(2, &[batch("@TOA#_a", &[], &[], &[("e", 6017)])])
        .unwrap();
    ledger
        .record(2, &[batch("@TOA#_a", &["d"], &[], &[])])
        .unwrap();
    let account = &ledger.snapshot().unwrap().accounts["@TOA#_a"];
    assert_eq!(account.confirmed, ["d"]);
    assert_eq!(account.failed.len(), 1);
    assert_eq!(account.failed[0].attempts, 2);
}

#[test]
fn every_write_increments_the_serial_and_lineage_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), "apply").unwrap();
    let first = ledger.snapshot().unwrap();
    let run = ledger.begin_run("apply", None).unwrap();
    ledger
        .finish_run(run, "converged", &serde_json::json!({"x": 1}))
        .unwrap();
    let second = ledger.snapshot().unwrap();
    assert_eq!(second.serial, first.serial + 2);
    assert_eq!(second.lineage, first.lineage);
    assert_eq!(first.lineage.as_ref().map(String::len), Some(32));
}

#[test]
fn account_facts_are_set_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), "apply").unwrap();
    let a = "@TOA#_a".to_string();
    ledger
        .record(
            1,
            &[
                Record::Account {
                    account: a.clone(),
                    fact: AccountFact::Info {
                        max_subscribers: Some(10),
                        subscriber_num: Some(3),
                    },
                },
                Record::Account {
                    account: a.clone(),
                    fact: AccountFact::LimitReached,
                },
            ],
        )
        .unwrap();
    let facts = ledger.snapshot().unwrap().accounts[&a].facts.clone();
    assert_eq!(
        (facts.max_subscribers, facts.subscriber_num),
        (Some(10), Some(3))
    );
    assert!(facts.limit_reached_at.is_some());
    ledger
        .record(
            2,
            &[Record::Account {
                account: a.clone(),
                fact: AccountFact::Healthy,
            }],
        )
        .unwrap();
    assert_eq!(
        ledger.snapshot().unwrap().accounts[&a]
            .facts
            .limit_reached_at,
        None
    );
}

#[test]
fn readers_see_committed_state_while_the_writer_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), "apply").unwrap();
    ledger
        .record(1, &[batch("@TOA#_a", &["x"], &[], &[])])
        .unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(
        reader.snapshot().unwrap().accounts["@TOA#_a"].confirmed,
        ["x"]
    );
}

#[test]
fn a_missing_ledger_reads_as_empty_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.snapshot().unwrap(), Snapshot::default());
    assert!(!db_path(dir.path()).exists());
}

#[test]
fn a_foreign_database_is_reported_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE mine (x)")
        .unwrap();
    let err = Reader::open(dir.path()).err().unwrap().to_string();
    assert!(
        err.contains("is not a subsync ledger") && err.contains("ledger.db"),
        "{err}"
    );
    let err = Ledger::open(dir.path(), "apply").unwrap_err().to_string();
    assert!(err.contains("is not a subsync ledger"), "{err}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1);
}

#[test]
fn a_corrupt_file_is_reported_with_its_path_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let garbage = b"this is not sqlite, just some bytes that fill more than a header ".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    let err = Reader::open(dir.path()).err().unwrap().to_string();
    assert!(
        err.contains("corrupt") && err.contains(&path.display().to_string()),
        "{err}"
    );
    assert!(Ledger::open(dir.path(), "apply").is_err());
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn runs_are_listed_newest_first_with_their_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), "apply").unwrap();
    let a = ledger.begin_run("apply", Some("r1")).unwrap();
    ledger
        .finish_run(a, "converged", &serde_json::json!({"n": 1}))
        .unwrap();
    let b = ledger.begin_run("apply", Some("r2")).unwrap();
    let runs = ledger.runs(10).unwrap();
    assert_eq!(runs[0].id, b);
    assert_eq!(runs[0].result, None);
    assert_eq!(runs[1].summary, Some(serde_json::json!({"n": 1})));
    assert_eq!(runs[1].revision.as_deref(), Some("r1"));
}

#[tokio::test]
async fn the_writer_commits_before_it_acknowledges() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), "apply").await.unwrap();
    let run = writer.begin_run("apply", None).await.unwrap();
    writer
        .recorder(run)
        .record(vec![batch("@TOA#_a", &["x"], &[], &[])])
        .await
        .unwrap();
    // A separate read-only connection sees it: it is committed, not just queued.
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(
        reader.snapshot().unwrap().accounts["@TOA#_a"].confirmed,
        ["x"]
    );
    assert_eq!(
        writer.snapshot().await.unwrap().accounts["@TOA#_a"].confirmed,
        ["x"]
    );
    let err = Writer::open(dir.path(), "watch")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("locked by PID"), "{err}");
    drop(writer);
}

#[tokio::test]
async fn the_lock_is_released_with_the_last_handle() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::open(dir.path(), "apply").await.unwrap();
    let clone = writer.clone();
    drop(writer);
    assert!(
        Writer::open(dir.path(), "apply").await.is_err(),
        "a clone still holds it"
    );
    drop(clone);
    // The thread drops the ledger once its channel closes; give it the moment that takes.
    let mut reopened = None;
    for _ in 0..200 {
        if let Ok(w) = Writer::open(dir.path(), "apply").await {
            reopened = Some(w);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(reopened.is_some());
}

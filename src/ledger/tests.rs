//! The ledger's behaviour, run against every backend this machine can test: SQLite always,
//! PostgreSQL when `SUBSYNC_TEST_POSTGRES_URL` names a server (`.ci/run` starts one).

use super::*;
use crate::testing::TestDatabase;

fn batch(account: &str, added: &[&str], already: &[&str], failed: &[(&str, i64)]) -> Record {
    Record::Batch {
        account: account.into(),
        op: Op::Add,
        done: added.iter().map(|s| s.to_string()).collect(),
        unchanged: already.iter().map(|s| s.to_string()).collect(),
        failed: failed.iter().map(|(s, c)| (s.to_string(), *c)).collect(),
    }
}

fn removal(account: &str, removed: &[&str], failed: &[(&str, i64)]) -> Record {
    Record::Batch {
        account: account.into(),
        op: Op::Remove,
        done: removed.iter().map(|s| s.to_string()).collect(),
        unchanged: Vec::new(),
        failed: failed.iter().map(|(s, c)| (s.to_string(), *c)).collect(),
    }
}

/// A place for one ledger, and what keeps it alive.
pub(super) struct Backend {
    pub location: Location,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        Backend {
            location: Location::Sqlite(dir.path().to_owned()),
            _dir: Some(dir),
            _db: None,
        }
    }

    fn postgres(server: &str) -> Backend {
        let db = TestDatabase::create(server).unwrap();
        Backend {
            location: db.location(),
            _dir: None,
            _db: Some(db),
        }
    }

    fn name(&self) -> &'static str {
        match self.location {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgres",
        }
    }
}

/// Every backend to run `test` against.
pub(super) fn backends(test: &str) -> Vec<Backend> {
    let mut all = vec![Backend::sqlite()];
    if let Some(server) = TestDatabase::server(test) {
        all.push(Backend::postgres(&server));
    }
    all
}

/// Reads on a thread of its own: the PostgreSQL driver must not run on a runtime's thread.
fn read_snapshot(location: &Location) -> Snapshot {
    let location = location.clone();
    std::thread::spawn(move || Reader::open(location).unwrap().snapshot().unwrap())
        .join()
        .unwrap()
}

#[test]
fn recorded_outcomes_appear_in_the_next_snapshot_in_byte_order() {
    for b in backends("recorded_outcomes_appear_in_the_next_snapshot_in_byte_order") {
        let mut ledger = Ledger::open(&b.location, "apply").unwrap();
        let run = ledger.begin_run("apply", Some("abc123")).unwrap();
        ledger
            .record(
                run,
                &[batch("@TOA#_a", &["b", "é", "a"], &["B"], &[("d", 130010)])],
            )
            .unwrap();
        let snap = ledger.snapshot().unwrap();
        let account = &snap.accounts["@TOA#_a"];
        assert_eq!(account.confirmed, ["B", "a", "b", "é"], "{}", b.name());
        assert_eq!(account.view.failed[0].subscriber, "d");
        assert_eq!(
            (account.view.failed[0].code, account.view.failed[0].attempts),
            (130010, 1)
        );
    }
}

#[test]
fn a_later_success_clears_the_failure_and_repeats_count_attempts() {
    for b in backends("a_later_success_clears_the_failure_and_repeats_count_attempts") {
        let mut ledger = Ledger::open(&b.location, "apply").unwrap();
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
        assert_eq!(account.confirmed, ["d"], "{}", b.name());
        assert_eq!(account.view.failed.len(), 1);
        assert_eq!(account.view.failed[0].attempts, 2);
    }
}

#[test]
fn removals_drop_confirmed_subscribers_and_a_failed_removal_restarts_the_count() {
    for b in backends("removals_drop_confirmed_subscribers_and_a_failed_removal_restarts_the_count")
    {
        let mut ledger = Ledger::open(&b.location, "apply").unwrap();
        ledger
            .record(
                1,
                &[batch("@TOA#_a", &["x", "y", "z"], &[], &[("w", 6017)])],
            )
            .unwrap();
        ledger
            .record(2, &[removal("@TOA#_a", &["x"], &[("w", 6017), ("y", -1)])])
            .unwrap();
        let account = &ledger.snapshot().unwrap().accounts["@TOA#_a"];
        assert_eq!(account.confirmed, ["y", "z"], "{}", b.name());
        let failed: Vec<_> = account
            .view
            .failed
            .iter()
            .map(|f| (f.subscriber.as_str(), f.op, f.attempts))
            .collect();
        assert_eq!(failed, [("w", Op::Remove, 1), ("y", Op::Remove, 1)]);
    }
}

#[test]
fn every_write_increments_the_serial_and_lineage_stays() {
    for b in backends("every_write_increments_the_serial_and_lineage_stays") {
        let mut ledger = Ledger::open(&b.location, "apply").unwrap();
        let first = ledger.snapshot().unwrap();
        let run = ledger.begin_run("apply", None).unwrap();
        ledger
            .finish_run(run, "converged", &serde_json::json!({"x": 1}))
            .unwrap();
        let second = ledger.snapshot().unwrap();
        assert_eq!(second.serial, first.serial + 2, "{}", b.name());
        assert_eq!(second.lineage, first.lineage);
        assert_eq!(first.lineage.as_ref().map(String::len), Some(32));
    }
}

#[test]
fn account_facts_are_set_and_cleared() {
    for b in backends("account_facts_are_set_and_cleared") {
        let mut ledger = Ledger::open(&b.location, "apply").unwrap();
        let a = "@TOA#_a".to_string();
        let fact = |fact| Record::Account {
            account: a.clone(),
            fact,
        };
        let info = AccountFact::Info {
            max_subscribers: Some(10),
            subscriber_num: Some(3),
        };
        ledger
            .record(1, &[fact(info), fact(AccountFact::LimitReached)])
            .unwrap();
        let facts = ledger.snapshot().unwrap().accounts[&a].view.facts.clone();
        assert_eq!(
            (facts.max_subscribers, facts.subscriber_num),
            (Some(10), Some(3)),
            "{}",
            b.name()
        );
        assert!(facts.limit_reached_at.is_some());
        ledger.record(2, &[fact(AccountFact::Missing)]).unwrap();
        assert!(
            ledger.snapshot().unwrap().accounts[&a]
                .view
                .facts
                .missing_since
                .is_some()
        );
        ledger.record(3, &[fact(AccountFact::Healthy)]).unwrap();
        let facts = ledger.snapshot().unwrap().accounts[&a].view.facts.clone();
        assert_eq!((facts.limit_reached_at, facts.missing_since), (None, None));
    }
}

#[test]
fn a_refresh_adopts_the_unknown_drops_the_gone_and_keeps_both_as_drift() {
    for b in backends("a_refresh_adopts_the_unknown_drops_the_gone_and_keeps_both_as_drift") {
        let mut ledger = Ledger::open(&b.location, "import").unwrap();
        ledger
            .record(
                1,
                &[batch("@TOA#_a", &["kept", "gone"], &[], &[("late", -1)])],
            )
            .unwrap();
        ledger.refresh_start("@TOA#_a").unwrap();
        ledger
            .observe("@TOA#_a", &["kept".into(), "new".into()])
            .unwrap();
        ledger.observe("@TOA#_a", &["late".into()]).unwrap();
        let counts = ledger
            .refresh_finish(2, "@TOA#_a", Some(1000), false)
            .unwrap();
        assert_eq!(
            counts,
            Refreshed {
                seen: 3,
                added: 2,
                removed: 1
            },
            "{}",
            b.name()
        );
        let account = &ledger.snapshot().unwrap().accounts["@TOA#_a"];
        assert_eq!(account.confirmed, ["kept", "late", "new"]);
        assert_eq!(account.view.drift.added, ["late", "new"]);
        assert_eq!(account.view.drift.removed, ["gone"]);
        assert!(
            account.view.failed.is_empty(),
            "the live list settled the failure"
        );
        assert_eq!(account.view.facts.max_subscribers, Some(1000));
        // Found out of band: recorded, not managed.
        assert_eq!(account.view.out_of_band, ["late", "new"]);
    }
}

#[test]
fn an_import_adopts_what_it_finds_as_managed_not_as_drift() {
    for b in backends("an_import_adopts_what_it_finds_as_managed_not_as_drift") {
        let mut ledger = Ledger::open(&b.location, "import").unwrap();
        ledger
            .record(1, &[batch("@TOA#_a", &["kept", "gone"], &[], &[])])
            .unwrap();
        ledger.refresh_start("@TOA#_a").unwrap();
        ledger
            .observe("@TOA#_a", &["kept".into(), "new".into()])
            .unwrap();
        let counts = ledger.refresh_finish(2, "@TOA#_a", None, true).unwrap();
        assert_eq!((counts.added, counts.removed), (1, 1), "{}", b.name());
        let account = &ledger.snapshot().unwrap().accounts["@TOA#_a"];
        assert_eq!(account.confirmed, ["kept", "new"]);
        assert!(account.view.drift.added.is_empty(), "{}", b.name());
        assert_eq!(account.view.drift.removed, ["gone"]);
        assert!(account.view.out_of_band.is_empty(), "{}", b.name());
    }
}

#[test]
fn readers_see_committed_state_while_the_writer_holds_the_lock() {
    for b in backends("readers_see_committed_state_while_the_writer_holds_the_lock") {
        let mut ledger = Ledger::open(&b.location, "apply").unwrap();
        ledger
            .record(1, &[batch("@TOA#_a", &["x"], &[], &[])])
            .unwrap();
        let mut reader = Reader::open(&b.location).unwrap();
        assert_eq!(
            reader.snapshot().unwrap().accounts["@TOA#_a"].confirmed,
            ["x"],
            "{}",
            b.name()
        );
        let (meta, accounts) = reader.summaries().unwrap();
        assert_eq!(meta.serial, ledger.snapshot().unwrap().serial);
        assert_eq!((accounts[0].confirmed, accounts[0].failed), (1, 0));
    }
}

#[test]
fn a_missing_ledger_reads_as_empty_and_is_not_created() {
    for b in backends("a_missing_ledger_reads_as_empty_and_is_not_created") {
        let mut reader = Reader::open(&b.location).unwrap();
        assert!(!reader.exists(), "{}", b.name());
        assert_eq!(reader.snapshot().unwrap(), Snapshot::default());
        assert!(!Reader::open(&b.location).unwrap().exists());
    }
}

#[test]
fn runs_are_listed_newest_first_with_their_summary() {
    for b in backends("runs_are_listed_newest_first_with_their_summary") {
        let mut ledger = Ledger::open(&b.location, "apply").unwrap();
        let a = ledger.begin_run("apply", Some("r1")).unwrap();
        ledger
            .finish_run(a, "converged", &serde_json::json!({"n": 1}))
            .unwrap();
        let b_run = ledger.begin_run("apply", Some("r2")).unwrap();
        let runs = ledger.runs(10).unwrap();
        assert_eq!(runs[0].id, b_run, "{}", b.name());
        assert_eq!(runs[0].result, None);
        assert_eq!(runs[1].summary, Some(serde_json::json!({"n": 1})));
        assert_eq!(runs[1].revision.as_deref(), Some("r1"));
        assert_eq!(runs[1].pid, i64::from(std::process::id()));
    }
}

#[test]
fn a_second_writer_is_refused_at_once_naming_the_holder() {
    for b in backends("a_second_writer_is_refused_at_once_naming_the_holder") {
        let _held = Ledger::open(&b.location, "watch").unwrap();
        let started = std::time::Instant::now();
        let err = Ledger::open(&b.location, "apply").unwrap_err().to_string();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "refused at once"
        );
        assert!(err.contains("is locked by"), "{}: {err}", b.name());
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert!(err.contains("watch"), "{err}");
    }
}

/// What a probe learns of an account's own properties: its name and perhaps its limit.
fn properties(account: &str, name: &str, max: Option<u64>) -> Record {
    Record::Properties(Box::new(PropertyRecord {
        account: account.into(),
        live: crate::properties::Properties {
            name: Some(name.into()),
            max_subscribers: max,
            ..Default::default()
        },
        owner: Some("admin".into()),
        declared: None,
        kept: None,
    }))
}

#[test]
fn account_properties_merge_what_is_learnt_and_replace_what_is_declared() {
    for b in backends("account_properties_merge_what_is_learnt_and_replace_what_is_declared") {
        let mut ledger = Ledger::open(&b.location, "apply").unwrap();
        let a = "@TOA#_a";
        ledger.record(1, &[properties(a, "Old", Some(50))]).unwrap();
        // A later answer without MaxSubscriberNum keeps the one last known.
        ledger.record(2, &[properties(a, "New", None)]).unwrap();
        let declared = crate::properties::Properties {
            name: Some("New".into()),
            ..Default::default()
        };
        let kept = Record::Properties(Box::new(PropertyRecord {
            account: a.into(),
            live: Default::default(),
            owner: None,
            declared: Some(declared.clone()),
            kept: Some(declared.clone()),
        }));
        ledger.record(3, &[kept]).unwrap();
        let known = ledger.snapshot().unwrap().accounts[a]
            .view
            .properties
            .clone();
        assert_eq!(known.live.name.as_deref(), Some("New"), "{}", b.name());
        assert_eq!(known.live.max_subscribers, Some(50), "{}", b.name());
        assert_eq!(known.owner.as_deref(), Some("admin"));
        assert_eq!((known.declared, known.kept), (declared.clone(), declared));
        assert!(known.learnt_at.is_some());
        // The limit learnt is the account's limit, for status and the plan.
        let (_, summaries) = ledger.summaries().unwrap();
        assert_eq!(summaries[0].facts.max_subscribers, Some(50), "{}", b.name());
        assert!(summaries[0].properties.is_some());
    }
}

#[test]
fn a_copy_keeps_lineage_serial_and_every_row_in_either_direction() {
    let server =
        TestDatabase::server("a_copy_keeps_lineage_serial_and_every_row_in_either_direction");
    let fresh = |postgres: bool| match (postgres, &server) {
        (true, Some(server)) => Some(Backend::postgres(server)),
        (true, None) => None,
        (false, _) => Some(Backend::sqlite()),
    };
    for (from_pg, to_pg) in [(false, false), (false, true), (true, false), (true, true)] {
        let (Some(source), Some(to)) = (fresh(from_pg), fresh(to_pg)) else {
            continue;
        };
        {
            let mut ledger = Ledger::open(&source.location, "apply").unwrap();
            let run = ledger.begin_run("apply", Some("rev")).unwrap();
            ledger
                .record(
                    run,
                    &[batch("@TOA#_a", &["x", "y"], &["z"], &[("f", 130010)])],
                )
                .unwrap();
            ledger.refresh_start("@TOA#_b").unwrap();
            ledger.observe("@TOA#_b", &["seen".into()]).unwrap();
            ledger.refresh_finish(run, "@TOA#_b", None, true).unwrap();
            ledger
                .record(run, &[properties("@TOA#_a", "Alpha", Some(9))])
                .unwrap();
            ledger
                .finish_run(run, "converged", &serde_json::json!({"ok": true}))
                .unwrap();
        }
        let copied = copy(&source.location, &to.location).unwrap();
        let pair = format!("{} to {}", source.name(), to.name());
        assert_eq!(
            (
                copied.accounts,
                copied.confirmed,
                copied.failed,
                copied.runs
            ),
            (2, 4, 1, 1),
            "{pair}"
        );
        let (mut a, mut b) = (
            Reader::open(&source.location).unwrap(),
            Reader::open(&to.location).unwrap(),
        );
        assert_eq!(a.snapshot().unwrap(), b.snapshot().unwrap(), "{pair}");
        assert_eq!(a.runs(10).unwrap(), b.runs(10).unwrap(), "{pair}");
        // The copy goes on numbering runs after the copied ones.
        let mut target = Ledger::open(&to.location, "apply").unwrap();
        assert_eq!(target.begin_run("apply", None).unwrap(), 2, "{pair}");
        drop(target);
        let err = copy(&source.location, &to.location).unwrap_err();
        assert!(
            matches!(err, LedgerError::NotEmpty { .. }),
            "a second copy is refused ({pair}): {err}"
        );
    }
}

#[test]
fn a_newer_schema_is_refused_by_readers_and_writers_and_left_alone() {
    for b in backends("a_newer_schema_is_refused_by_readers_and_writers_and_left_alone") {
        drop(Ledger::open(&b.location, "apply").unwrap());
        match &b.location {
            Location::Sqlite(dir) => rusqlite::Connection::open(dir.join(FILE_NAME))
                .unwrap()
                .pragma_update(None, "user_version", 99)
                .unwrap(),
            Location::Postgres(_) => b
                ._db
                .as_ref()
                .unwrap()
                .execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
                .unwrap(),
        }
        for err in [
            Reader::open(&b.location).err().unwrap(),
            Ledger::open(&b.location, "apply").unwrap_err(),
        ] {
            assert!(
                matches!(err, LedgerError::TooNew { version: 99, .. }),
                "{}: {err}",
                b.name()
            );
            assert!(err.to_string().contains("upgrade subsync"), "{err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_writer_commits_before_it_acknowledges() {
    for b in backends("the_writer_commits_before_it_acknowledges") {
        let writer = Writer::open(&b.location, "apply").await.unwrap();
        let run = writer.begin_run("apply", None).await.unwrap();
        writer
            .recorder(run)
            .record(vec![batch("@TOA#_a", &["x"], &[], &[])])
            .await
            .unwrap();
        // A separate connection sees it: it is committed, not just queued.
        assert_eq!(
            read_snapshot(&b.location).accounts["@TOA#_a"].confirmed,
            ["x"],
            "{}",
            b.name()
        );
        assert_eq!(
            writer.snapshot().await.unwrap().accounts["@TOA#_a"].confirmed,
            ["x"]
        );
        let err = Writer::open(&b.location, "watch")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is locked by"), "{err}");
        assert!(!writer.lost().is_cancelled());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lock_is_released_with_the_last_handle() {
    for b in backends("the_lock_is_released_with_the_last_handle") {
        let writer = Writer::open(&b.location, "apply").await.unwrap();
        let clone = writer.clone();
        drop(writer);
        assert!(
            Writer::open(&b.location, "apply").await.is_err(),
            "a clone still holds it"
        );
        drop(clone);
        // The thread drops the ledger once its channel closes; give it the moment that takes.
        let mut reopened = None;
        for _ in 0..400 {
            if let Ok(w) = Writer::open(&b.location, "apply").await {
                reopened = Some(w);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(reopened.is_some(), "{}", b.name());
    }
}

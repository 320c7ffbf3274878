//! The ledger's behaviour, run against every backend this machine can test: SQLite always,
//! PostgreSQL when `SUBSYNC_TEST_POSTGRES_URL` names a server (`.ci/run` starts one). Every
//! test runs on a current-thread runtime, as a daemon's tasks may: opening, reading and
//! writing are correct from any async code.

use super::*;
use crate::errors::chain;
use crate::testing::TestDatabase;

pub(super) fn batch(
    account: &str,
    added: &[&str],
    already: &[&str],
    failed: &[(&str, i64)],
) -> Record {
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

pub(super) fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A place for one ledger, and what keeps it alive.
pub(super) struct Backend {
    pub(crate) location: Location,
    _dir: Option<tempfile::TempDir>,
    pub(super) db: Option<TestDatabase>,
}

impl Backend {
    pub(super) fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        Backend {
            location: Location::sqlite(dir.path()),
            _dir: Some(dir),
            db: None,
        }
    }

    pub(super) fn postgres(server: &str) -> Backend {
        let db = TestDatabase::create(server).unwrap();
        Backend {
            location: db.location(),
            _dir: None,
            db: Some(db),
        }
    }

    pub(super) fn name(&self) -> &'static str {
        if self.db.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    pub(super) async fn writer(&self) -> Writer {
        Writer::open(&self.location, "apply").await.unwrap()
    }

    pub(super) async fn snapshot(&self) -> Snapshot {
        let mut reader = Reader::open(&self.location).await.unwrap();
        let snapshot = reader.snapshot().await.unwrap();
        reader.close().await;
        snapshot
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

#[tokio::test]
async fn readers_and_writers_open_from_async_code_on_every_backend() {
    for b in backends("readers_and_writers_open_from_async_code_on_every_backend") {
        let reader = Reader::open(&b.location).await.unwrap();
        assert!(!reader.exists(), "{}", b.name());
        reader.close().await;
        let writer = b.writer().await;
        writer
            .record(1, vec![batch("@TOA#_a", &["x"], &[], &[])])
            .await
            .unwrap();
        let mut reader = Reader::open(&b.location).await.unwrap();
        // The planner's reads run off the runtime's thread, whatever the backend.
        let runtime_thread = std::thread::current().id();
        let (thread, confirmed) = reader
            .view(|source| {
                let mut confirmed = Vec::new();
                source.account("@TOA#_a", &mut |_, list| {
                    list.each(&mut |s| confirmed.push(s.to_owned()))
                })?;
                Ok((std::thread::current().id(), confirmed))
            })
            .await
            .unwrap();
        assert_ne!(thread, runtime_thread, "{}", b.name());
        assert_eq!(confirmed, ["x"], "{}", b.name());
        reader.close().await;
        writer.close().await;
    }
}

#[tokio::test]
async fn recorded_outcomes_appear_in_the_next_snapshot_in_byte_order() {
    for b in backends("recorded_outcomes_appear_in_the_next_snapshot_in_byte_order") {
        let writer = b.writer().await;
        let run = writer.begin_run("apply", Some("abc123")).await.unwrap();
        let records = vec![batch("@TOA#_a", &["b", "é", "a"], &["B"], &[("d", 130010)])];
        writer.record(run, records).await.unwrap();
        let snap = writer.snapshot().await.unwrap();
        let account = &snap.accounts["@TOA#_a"];
        assert_eq!(account.confirmed, ["B", "a", "b", "é"], "{}", b.name());
        assert_eq!(account.view.failed[0].subscriber, "d");
        let failed = &account.view.failed[0];
        assert_eq!((failed.code, failed.attempts), (130010, 1));
        writer.close().await;
    }
}

#[tokio::test]
async fn a_later_success_clears_the_failure_and_repeats_count_attempts() {
    for b in backends("a_later_success_clears_the_failure_and_repeats_count_attempts") {
        let writer = b.writer().await;
        let failing = batch("@TOA#_a", &[], &[], &[("d", -1), ("e", 6017)]);
        writer.record(1, vec![failing]).await.unwrap();
        let again = batch("@TOA#_a", &[], &[], &[("e", 6017)]);
        writer.record(2, vec![again]).await.unwrap();
        writer
            .record(2, vec![batch("@TOA#_a", &["d"], &[], &[])])
            .await
            .unwrap();
        let account = &writer.snapshot().await.unwrap().accounts["@TOA#_a"];
        assert_eq!(account.confirmed, ["d"], "{}", b.name());
        assert_eq!(account.view.failed.len(), 1);
        assert_eq!(account.view.failed[0].attempts, 2);
        writer.close().await;
    }
}

#[tokio::test]
async fn removals_drop_confirmed_subscribers_and_a_failed_removal_restarts_the_count() {
    for b in backends("removals_drop_confirmed_subscribers_and_a_failed_removal_restarts_the_count")
    {
        let writer = b.writer().await;
        let added = batch("@TOA#_a", &["x", "y", "z"], &[], &[("w", 6017)]);
        writer.record(1, vec![added]).await.unwrap();
        let removed = removal("@TOA#_a", &["x"], &[("w", 6017), ("y", -1)]);
        writer.record(2, vec![removed]).await.unwrap();
        let account = &writer.snapshot().await.unwrap().accounts["@TOA#_a"];
        assert_eq!(account.confirmed, ["y", "z"], "{}", b.name());
        let failed: Vec<_> = account
            .view
            .failed
            .iter()
            .map(|f| (f.subscriber.as_str(), f.op, f.attempts))
            .collect();
        assert_eq!(failed, [("w", Op::Remove, 1), ("y", Op::Remove, 1)]);
        writer.close().await;
    }
}

#[tokio::test]
async fn every_write_increments_the_serial_and_lineage_stays() {
    for b in backends("every_write_increments_the_serial_and_lineage_stays") {
        let writer = b.writer().await;
        let first = writer.snapshot().await.unwrap();
        let run = writer.begin_run("apply", None).await.unwrap();
        let summary = serde_json::json!({"x": 1});
        writer
            .finish_run(run, RunOutcome::Converged, &summary)
            .await
            .unwrap();
        let second = writer.snapshot().await.unwrap();
        assert_eq!(second.serial, first.serial + 2, "{}", b.name());
        assert_eq!(second.lineage, first.lineage);
        assert_eq!(first.lineage.as_ref().map(String::len), Some(32));
        writer.close().await;
    }
}

#[tokio::test]
async fn account_facts_are_set_and_cleared() {
    for b in backends("account_facts_are_set_and_cleared") {
        let writer = b.writer().await;
        let a = "@TOA#_a".to_string();
        let fact = |fact| Record::Account {
            account: a.clone(),
            fact,
        };
        let info = AccountFact::Info {
            max_subscribers: Some(10),
            subscriber_num: Some(3),
        };
        let records = vec![fact(info), fact(AccountFact::LimitReached)];
        writer.record(1, records).await.unwrap();
        let facts = writer.snapshot().await.unwrap().accounts[&a]
            .view
            .facts
            .clone();
        assert_eq!(
            (facts.max_subscribers, facts.subscriber_num),
            (Some(10), Some(3)),
            "{}",
            b.name()
        );
        assert!(facts.limit_reached_at.is_some());
        let counted = AccountFact::Counted { subscriber_num: 4 };
        writer
            .record(2, vec![fact(AccountFact::Missing), fact(counted)])
            .await
            .unwrap();
        let facts = writer.snapshot().await.unwrap().accounts[&a]
            .view
            .facts
            .clone();
        assert!(facts.missing_since.is_some());
        assert_eq!(
            (facts.max_subscribers, facts.subscriber_num),
            (Some(10), Some(4))
        );
        writer
            .record(3, vec![fact(AccountFact::Healthy)])
            .await
            .unwrap();
        let facts = writer.snapshot().await.unwrap().accounts[&a]
            .view
            .facts
            .clone();
        assert_eq!((facts.limit_reached_at, facts.missing_since), (None, None));
        writer.close().await;
    }
}

#[tokio::test]
async fn a_refresh_adopts_the_unknown_drops_the_gone_and_keeps_both_as_drift() {
    for b in backends("a_refresh_adopts_the_unknown_drops_the_gone_and_keeps_both_as_drift") {
        let writer = b.writer().await;
        let known = batch("@TOA#_a", &["kept", "gone"], &[], &[("late", -1)]);
        writer.record(1, vec![known]).await.unwrap();
        writer.refresh_start("@TOA#_a").await;
        writer.observe("@TOA#_a", strings(&["kept", "new"])).await;
        writer.observe("@TOA#_a", strings(&["late"])).await;
        let counts = writer
            .refresh_finish(2, "@TOA#_a", Some(1000), false)
            .await
            .unwrap();
        let expected = Refreshed {
            seen: 3,
            added: 2,
            removed: 1,
        };
        assert_eq!(counts, expected, "{}", b.name());
        let account = &writer.snapshot().await.unwrap().accounts["@TOA#_a"];
        assert_eq!(account.confirmed, ["kept", "late", "new"]);
        assert_eq!(account.view.drift.added, ["late", "new"]);
        assert_eq!(account.view.drift.removed, ["gone"]);
        assert!(
            account.view.failed.is_empty(),
            "the live list settled the failure"
        );
        assert_eq!(account.view.facts.max_subscribers, Some(1000));
        assert_eq!(account.view.facts.subscriber_num, Some(3));
        // Found out of band: recorded, not managed.
        assert_eq!(account.view.out_of_band, ["late", "new"]);
        writer.close().await;
    }
}

#[tokio::test]
async fn an_import_adopts_what_it_finds_as_managed_not_as_drift() {
    for b in backends("an_import_adopts_what_it_finds_as_managed_not_as_drift") {
        let writer = b.writer().await;
        let known = batch("@TOA#_a", &["kept", "gone"], &[], &[]);
        writer.record(1, vec![known]).await.unwrap();
        writer.refresh_start("@TOA#_a").await;
        writer.observe("@TOA#_a", strings(&["kept", "new"])).await;
        let counts = writer
            .refresh_finish(2, "@TOA#_a", None, true)
            .await
            .unwrap();
        assert_eq!((counts.added, counts.removed), (1, 1), "{}", b.name());
        let account = &writer.snapshot().await.unwrap().accounts["@TOA#_a"];
        assert_eq!(account.confirmed, ["kept", "new"]);
        assert!(account.view.drift.added.is_empty(), "{}", b.name());
        assert_eq!(account.view.drift.removed, ["gone"]);
        assert!(account.view.out_of_band.is_empty(), "{}", b.name());
        writer.close().await;
    }
}

#[tokio::test]
async fn an_interrupted_runs_intents_are_recovered_by_a_refresh_not_taken_for_drift() {
    for b in backends("an_interrupted_runs_intents_are_recovered_by_a_refresh_not_taken_for_drift")
    {
        let writer = b.writer().await;
        let intend = |subscribers: &[&str], op| Record::Intend {
            account: "@TOA#_a".into(),
            op,
            subscribers: strings(subscribers),
        };
        let records = vec![
            batch("@TOA#_a", &["leaving"], &[], &[]),
            intend(&["sent"], Op::Add),
            intend(&["leaving"], Op::Remove),
        ];
        writer.record(1, records).await.unwrap();
        // The run ended with those in doubt; a refresh sees what they did.
        writer.refresh_start("@TOA#_a").await;
        writer.observe("@TOA#_a", strings(&["sent"])).await;
        let counts = writer
            .refresh_finish(2, "@TOA#_a", None, false)
            .await
            .unwrap();
        assert_eq!((counts.added, counts.removed), (0, 0), "{}", b.name());
        let account = &writer.snapshot().await.unwrap().accounts["@TOA#_a"];
        assert_eq!(account.confirmed, ["sent"], "{}", b.name());
        assert!(account.view.intents.is_empty(), "{}", b.name());
        assert!(account.view.out_of_band.is_empty(), "{}", b.name());
        writer.close().await;
    }
}

#[tokio::test]
async fn a_settled_run_keeps_only_the_intents_still_in_doubt() {
    for b in backends("a_settled_run_keeps_only_the_intents_still_in_doubt") {
        let writer = b.writer().await;
        let intend = Record::Intend {
            account: "@TOA#_a".into(),
            op: Op::Add,
            subscribers: strings(&["a", "b", "c", "d"]),
        };
        writer.record(7, vec![intend]).await.unwrap();
        // a: added; b: refused (a definite answer); c: a network fault; d: abandoned.
        let outcome = batch("@TOA#_a", &["a"], &[], &[("b", 130010), ("c", -1)]);
        writer.record(7, vec![outcome]).await.unwrap();
        let intents = &writer.snapshot().await.unwrap().accounts["@TOA#_a"]
            .view
            .intents;
        assert_eq!(intents, &["c", "d"], "{}", b.name());
        let settle = Record::Settle {
            in_doubt: vec![("@TOA#_a".into(), Op::Add, strings(&["d"]))],
        };
        writer.record(7, vec![settle]).await.unwrap();
        let intents = &writer.snapshot().await.unwrap().accounts["@TOA#_a"]
            .view
            .intents;
        assert_eq!(intents, &["d"], "{}", b.name());
        writer.close().await;
    }
}

#[tokio::test]
async fn readers_see_committed_state_while_the_writer_holds_the_lock() {
    for b in backends("readers_see_committed_state_while_the_writer_holds_the_lock") {
        let writer = b.writer().await;
        writer
            .record(1, vec![batch("@TOA#_a", &["x"], &[], &[])])
            .await
            .unwrap();
        assert_eq!(
            b.snapshot().await.accounts["@TOA#_a"].confirmed,
            ["x"],
            "{}",
            b.name()
        );
        let mut reader = Reader::open(&b.location).await.unwrap();
        let (meta, accounts) = reader.overviews().await.unwrap();
        assert_eq!(meta.serial, writer.snapshot().await.unwrap().serial);
        assert_eq!((accounts[0].confirmed, accounts[0].failed), (1, 0));
        assert_eq!(writer.accounts().await.unwrap(), accounts);
        reader.close().await;
        writer.close().await;
    }
}

#[tokio::test]
async fn a_missing_ledger_reads_as_empty_and_is_not_created() {
    for b in backends("a_missing_ledger_reads_as_empty_and_is_not_created") {
        let mut reader = Reader::open(&b.location).await.unwrap();
        assert!(!reader.exists(), "{}", b.name());
        assert_eq!(reader.snapshot().await.unwrap(), Snapshot::default());
        let held = reader.view(|source| source.held()).await.unwrap();
        assert!(held.is_empty());
        reader.close().await;
        assert!(!Reader::open(&b.location).await.unwrap().exists());
    }
}

#[tokio::test]
async fn runs_are_listed_newest_first_with_their_summary() {
    for b in backends("runs_are_listed_newest_first_with_their_summary") {
        let writer = b.writer().await;
        let a = writer.begin_run("apply", Some("r1")).await.unwrap();
        let summary = serde_json::json!({"n": 1});
        writer
            .finish_run(a, RunOutcome::Partial, &summary)
            .await
            .unwrap();
        let b_run = writer.begin_run("apply", Some("r2")).await.unwrap();
        let mut reader = Reader::open(&b.location).await.unwrap();
        let runs = reader.runs::<serde_json::Value>(10).await.unwrap();
        assert_eq!(runs[0].id, b_run, "{}", b.name());
        assert_eq!(runs[0].result, None);
        assert_eq!(runs[1].result, Some(RunOutcome::Partial));
        assert_eq!(runs[1].summary, Some(summary));
        assert_eq!(runs[1].revision.as_deref(), Some("r1"));
        assert_eq!(runs[1].pid, i64::from(std::process::id()));
        reader.close().await;
        writer.close().await;
    }
}

#[tokio::test]
async fn the_writer_commits_before_it_acknowledges() {
    for b in backends("the_writer_commits_before_it_acknowledges") {
        let writer = b.writer().await;
        let run = writer.begin_run("apply", None).await.unwrap();
        let recorded = vec![batch("@TOA#_a", &["x"], &[], &[])];
        writer.recorder(run).record(recorded).await.unwrap();
        // A separate connection sees it: it is committed, not just queued.
        assert_eq!(
            b.snapshot().await.accounts["@TOA#_a"].confirmed,
            ["x"],
            "{}",
            b.name()
        );
        assert!(!writer.lost().is_cancelled());
        writer.close().await;
    }
}

/// What a probe learns of an account's own properties: its name and perhaps its limit.
pub(super) fn properties(account: &str, name: &str, max: Option<u64>) -> Record {
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

#[tokio::test]
async fn account_properties_merge_what_is_learnt_and_replace_what_is_declared() {
    for b in backends("account_properties_merge_what_is_learnt_and_replace_what_is_declared") {
        let writer = b.writer().await;
        let a = "@TOA#_a";
        writer
            .record(1, vec![properties(a, "Old", Some(50))])
            .await
            .unwrap();
        // A later answer without MaxSubscriberNum keeps the one last known.
        writer
            .record(2, vec![properties(a, "New", None)])
            .await
            .unwrap();
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
        writer.record(3, vec![kept]).await.unwrap();
        let snapshot = writer.snapshot().await.unwrap();
        let known = snapshot.accounts[a].view.properties.clone();
        assert_eq!(known.live.name.as_deref(), Some("New"), "{}", b.name());
        assert_eq!(known.live.max_subscribers, Some(50), "{}", b.name());
        assert_eq!(known.owner.as_deref(), Some("admin"));
        assert_eq!((known.declared, known.kept), (declared.clone(), declared));
        assert!(known.learnt_at.is_some());
        // The limit learnt is the account's limit, for status and the plan.
        let overviews = writer.accounts().await.unwrap();
        assert_eq!(overviews[0].facts.max_subscribers, Some(50), "{}", b.name());
        assert!(overviews[0].properties.is_some());
        // In one transaction, a later record merges over an earlier one.
        let both = vec![
            properties(a, "First", Some(60)),
            properties(a, "Second", None),
        ];
        writer.record(4, both).await.unwrap();
        let snapshot = writer.snapshot().await.unwrap();
        let known = &snapshot.accounts[a].view.properties;
        assert_eq!(known.live.name.as_deref(), Some("Second"), "{}", b.name());
        assert_eq!(known.live.max_subscribers, Some(60), "{}", b.name());
        writer.close().await;
    }
}

mod lifecycle;

//! The ledger's life around the records: one writer at a time, the lock let go, a copy into
//! another ledger (either backend to either), a schema or a value from a newer subsync.

use super::*;
use crate::ledger::sqlite::FILE_NAME;

#[tokio::test]
async fn a_second_writer_is_refused_at_once_naming_the_holder() {
    for b in backends("a_second_writer_is_refused_at_once_naming_the_holder") {
        let held = Writer::open(&b.location, "watch").await.unwrap();
        let started = std::time::Instant::now();
        let err = Writer::open(&b.location, "apply").await.unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "refused at once"
        );
        let err = err.to_string();
        assert!(err.contains("is locked by"), "{}: {err}", b.name());
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert!(err.contains("watch"), "{err}");
        held.close().await;
    }
}

#[tokio::test]
async fn the_lock_is_released_by_close_and_with_the_last_handle() {
    for b in backends("the_lock_is_released_by_close_and_with_the_last_handle") {
        b.writer().await.close().await;
        let writer = b.writer().await;
        let clone = writer.clone();
        drop(writer);
        assert!(
            Writer::open(&b.location, "apply").await.is_err(),
            "a clone still holds it"
        );
        drop(clone);
        // The task lets go once its channel closes; nothing is left waiting on it here.
        let mut reopened = None;
        for _ in 0..400 {
            if let Ok(w) = Writer::open(&b.location, "apply").await {
                reopened = Some(w);
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let reopened = reopened.unwrap_or_else(|| panic!("{}: never released", b.name()));
        reopened.close().await;
    }
}

#[tokio::test]
async fn a_copy_keeps_lineage_serial_and_every_row_in_either_direction() {
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
        let writer = source.writer().await;
        let run = writer.begin_run("apply", Some("rev")).await.unwrap();
        let records = vec![
            batch("@TOA#_a", &["x", "y"], &["z"], &[("f", 130010)]),
            Record::Intend {
                account: "@TOA#_a".into(),
                op: Op::Remove,
                subscribers: strings(&["y"]),
            },
            properties("@TOA#_a", "Alpha", Some(9)),
        ];
        writer.record(run, records).await.unwrap();
        writer.refresh_start("@TOA#_b").await;
        writer.observe("@TOA#_b", strings(&["seen"])).await;
        writer
            .refresh_finish(run, "@TOA#_b", None, false)
            .await
            .unwrap();
        let summary = serde_json::json!({"ok": true});
        writer
            .finish_run(run, RunOutcome::Converged, &summary)
            .await
            .unwrap();
        writer.close().await;
        let copied = copy(&source.location, &to.location).await.unwrap();
        let pair = format!("{} to {}", source.name(), to.name());
        let counts = (
            copied.accounts,
            copied.confirmed,
            copied.failed,
            copied.runs,
        );
        assert_eq!(counts, (2, 4, 1, 1), "{pair}");
        assert_eq!(source.snapshot().await, to.snapshot().await, "{pair}");
        let runs = |location: Location| async move {
            let mut reader = Reader::open(&location).await.unwrap();
            reader.runs::<serde_json::Value>(10).await.unwrap()
        };
        assert_eq!(
            runs(source.location.clone()).await,
            runs(to.location.clone()).await,
            "{pair}"
        );
        // The copy goes on numbering runs after the copied ones.
        let target = to.writer().await;
        assert_eq!(target.begin_run("apply", None).await.unwrap(), 2, "{pair}");
        target.close().await;
        let err = copy(&source.location, &to.location).await.unwrap_err();
        assert!(
            matches!(err, LedgerError::NotEmpty { .. }),
            "a second copy is refused ({pair}): {err}"
        );
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused_by_readers_and_writers_and_left_alone() {
    for b in backends("a_newer_schema_is_refused_by_readers_and_writers_and_left_alone") {
        b.writer().await.close().await;
        match (&b.db, b.location.local_dir()) {
            (Some(db), _) => db
                .execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
                .unwrap(),
            (None, Some(dir)) => rusqlite::Connection::open(dir.join(FILE_NAME))
                .unwrap()
                .pragma_update(None, "user_version", 99)
                .unwrap(),
            (None, None) => unreachable!("a SQLite ledger has a directory"),
        }
        for err in [
            Reader::open(&b.location).await.unwrap_err(),
            Writer::open(&b.location, "apply").await.unwrap_err(),
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

#[tokio::test]
async fn a_stored_value_this_build_does_not_know_is_an_error_not_a_default() {
    let b = Backend::sqlite();
    let writer = b.writer().await;
    let failing = batch("@TOA#_a", &[], &[], &[("x", 130010)]);
    writer.record(1, vec![failing]).await.unwrap();
    writer.close().await;
    let dir = b.location.local_dir().unwrap();
    rusqlite::Connection::open(dir.join(FILE_NAME))
        .unwrap()
        .execute_batch("UPDATE failed SET op = 'teleport'")
        .unwrap();
    let mut reader = Reader::open(&b.location).await.unwrap();
    let err = reader.snapshot().await.unwrap_err();
    assert!(
        matches!(err, LedgerError::Unknown { what: "op", .. }),
        "{err}"
    );
    assert!(chain(&err).contains("\"teleport\""), "{}", chain(&err));
}

//! What only PostgreSQL ledgers do: fencing, lost sessions, refusals that name the fix, TLS.
//! Each test skips, saying so, without `SUBSYNC_TEST_POSTGRES_URL`.

use std::time::Duration;

use crate::ledger::{Ledger, LedgerError, Location, Reader, Record, Writer};
use crate::testing::TestDatabase;

fn database(test: &str) -> Option<TestDatabase> {
    TestDatabase::server(test).map(|server| TestDatabase::create(&server).unwrap())
}

fn added(account: &str, subscribers: &[&str]) -> Record {
    Record::Batch {
        account: account.into(),
        op: crate::ledger::Op::Add,
        done: subscribers.iter().map(|s| s.to_string()).collect(),
        unchanged: Vec::new(),
        failed: Vec::new(),
    }
}

/// The URL of `db` with its password replaced.
fn with_password(db: &TestDatabase, password: &str) -> Location {
    let mut url = url::Url::parse(db.url()).unwrap();
    url.set_password(Some(password)).unwrap();
    Location::postgres(url.as_str(), None).unwrap()
}

#[test]
fn a_write_after_another_replica_took_over_is_fenced_and_changes_nothing() {
    let Some(db) =
        database("a_write_after_another_replica_took_over_is_fenced_and_changes_nothing")
    else {
        return;
    };
    let mut ledger = Ledger::open(db.location(), "watch").unwrap();
    ledger.record(1, &[added("@TOA#_a", &["x"])]).unwrap();
    let serial = ledger.snapshot().unwrap().serial;
    // What a takeover does (here behind this session's back, as a pooler could let happen).
    db.execute("UPDATE holder SET epoch = epoch + 1").unwrap();
    let err = ledger.record(2, &[added("@TOA#_a", &["y"])]).unwrap_err();
    assert!(matches!(err, LedgerError::LockLost { .. }), "{err}");
    assert!(err.to_string().contains("fenced"), "{err}");
    let mut reader = Reader::open(db.location()).unwrap();
    let snapshot = reader.snapshot().unwrap();
    assert_eq!(snapshot.accounts["@TOA#_a"].confirmed, ["x"]);
    assert_eq!(snapshot.serial, serial);
    assert!(matches!(
        ledger.check_lock(),
        Err(LedgerError::LockLost { .. })
    ));
}

#[test]
fn a_terminated_session_loses_the_lock_and_another_writer_takes_it() {
    let Some(db) = database("a_terminated_session_loses_the_lock_and_another_writer_takes_it")
    else {
        return;
    };
    let mut first = Ledger::open(db.location(), "watch").unwrap();
    first.record(1, &[added("@TOA#_a", &["x"])]).unwrap();
    let err = Ledger::open(db.location(), "apply").unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = (SELECT backend_pid FROM holder)"
        )
        .unwrap(),
        1
    );
    db.execute("SELECT pg_terminate_backend(backend_pid) FROM holder")
        .unwrap();
    let err = first.record(2, &[added("@TOA#_a", &["y"])]).unwrap_err();
    assert!(matches!(err, LedgerError::LockLost { .. }), "{err}");
    let mut second = Ledger::open(db.location(), "watch").unwrap();
    assert_eq!(db.query_i64("SELECT epoch FROM holder").unwrap(), 2);
    second.record(3, &[added("@TOA#_a", &["z"])]).unwrap();
    assert_eq!(
        second.snapshot().unwrap().accounts["@TOA#_a"].confirmed,
        ["x", "z"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_writer_notices_a_lost_session_without_being_asked() {
    let Some(db) = database("the_writer_notices_a_lost_session_without_being_asked") else {
        return;
    };
    let writer = Writer::open(db.location(), "watch").await.unwrap();
    db.execute("SELECT pg_terminate_backend(backend_pid) FROM holder")
        .unwrap();
    // The writer checks every few seconds; the bound is only a safety net for a broken build.
    tokio::time::timeout(Duration::from_secs(30), writer.lost().cancelled())
        .await
        .expect("the loss is noticed");
    assert!(writer.lost_reason().unwrap().contains("session"));
    let err = writer.begin_run("watch", None).await.unwrap_err();
    assert!(matches!(err, LedgerError::LockLost { .. }), "{err}");
}

#[test]
fn replicas_starting_together_get_exactly_one_writer_and_one_schema() {
    let Some(db) = database("replicas_starting_together_get_exactly_one_writer_and_one_schema")
    else {
        return;
    };
    let start = std::sync::Arc::new(std::sync::Barrier::new(6));
    let tried = std::sync::Arc::new(std::sync::Barrier::new(6));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (location, start, tried) = (db.location(), start.clone(), tried.clone());
            std::thread::spawn(move || {
                start.wait();
                let opened = Ledger::open(location, "watch");
                // The one that got it holds it until every other replica has tried.
                tried.wait();
                opened.map(drop)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let leaders = threads.iter().filter(|r| r.is_ok()).count();
    assert_eq!(leaders, 1, "{threads:?}");
    for refused in threads.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(refused, LedgerError::Locked { .. }), "{refused}");
    }
    assert_eq!(
        db.query_i64("SELECT count(*) FROM meta WHERE key = 'lineage'")
            .unwrap(),
        1
    );
}

#[test]
fn a_wrong_password_is_named_with_the_fix_and_never_echoed() {
    let Some(db) = database("a_wrong_password_is_named_with_the_fix_and_never_echoed") else {
        return;
    };
    let wrong = with_password(&db, "not-the-password-42");
    for err in [
        Reader::open(&wrong).err().unwrap(),
        Ledger::open(&wrong, "apply").unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(text.contains("password authentication failed"), "{text}");
        assert!(text.contains("SUBSYNC_STATE_PASSWORD_FILE"), "{text}");
        assert!(!text.contains("not-the-password-42"), "{text}");
        assert!(!format!("{err:?}").contains("not-the-password-42"));
    }
}

#[test]
fn an_unreachable_server_is_reported_at_once() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let location =
        Location::postgres(&format!("postgres://u:secret@127.0.0.1:{port}/db"), None).unwrap();
    let err = Reader::open(&location).err().unwrap().to_string();
    assert!(err.contains("cannot reach the ledger"), "{err}");
    assert!(err.contains("check that the server runs"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn a_schema_that_is_missing_or_someone_elses_is_refused_and_left_alone() {
    let Some(db) = database("a_schema_that_is_missing_or_someone_elses_is_refused_and_left_alone")
    else {
        return;
    };
    let mut url = url::Url::parse(db.url()).unwrap();
    url.query_pairs_mut()
        .append_pair("options", "-c search_path=nowhere");
    let nowhere = Location::postgres(url.as_str(), None).unwrap();
    let err = Ledger::open(&nowhere, "apply").unwrap_err().to_string();
    assert!(
        err.contains("CREATE SCHEMA") && err.contains("search_path"),
        "{err}"
    );
    db.execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
        .unwrap();
    for err in [
        Reader::open(db.location()).err().unwrap(),
        Ledger::open(db.location(), "apply").unwrap_err(),
    ] {
        assert!(matches!(err, LedgerError::Foreign { .. }), "{err}");
        assert!(err.to_string().contains("orders"), "{err}");
    }
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .unwrap(),
        1
    );
}

#[test]
fn tls_follows_sslmode() {
    let Some(db) = database("tls_follows_sslmode") else {
        return;
    };
    let with = |host: &str, query: &str| {
        let mut url = url::Url::parse(db.url()).unwrap();
        url.set_host(Some(host)).unwrap();
        url.set_query(Some(query));
        Location::postgres(url.as_str(), None).unwrap()
    };
    let encrypted = |location: &Location| {
        let mut reader = Reader::open(location)?;
        reader.snapshot().map(|_| ())
    };
    // The test server's certificate is for localhost, from a CA of its own (.ci/postgres).
    let Ok(ca) = std::env::var("SUBSYNC_TEST_POSTGRES_CA") else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped tls_follows_sslmode: the server has no TLS; set SUBSYNC_TEST_POSTGRES_CA"
        );
        return;
    };
    encrypted(&with("127.0.0.1", "sslmode=require")).unwrap();
    let ca = format!("sslrootcert={ca}");
    encrypted(&with("localhost", &format!("sslmode=verify-full&{ca}"))).unwrap();
    encrypted(&with("127.0.0.1", &format!("sslmode=verify-ca&{ca}"))).unwrap();
    let err = encrypted(&with("127.0.0.1", &format!("sslmode=verify-full&{ca}")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
    let err = encrypted(&with("localhost", "sslmode=verify-full&sslrootcert=system"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
}

//! What only PostgreSQL ledgers do: fencing, lost sessions, refusals that name the fix, TLS.
//! Each test skips, saying so, without `SUBSYNC_TEST_POSTGRES_URL`.

use std::time::Duration;

use crate::errors::chain;
use crate::ledger::{LedgerError, Location, Op, Reader, Record, Writer};
use crate::testing::TestDatabase;

fn database(test: &str) -> Option<TestDatabase> {
    TestDatabase::server(test).map(|server| TestDatabase::create(&server).unwrap())
}

fn added(account: &str, subscribers: &[&str]) -> Vec<Record> {
    vec![Record::Batch {
        account: account.into(),
        op: Op::Add,
        done: subscribers.iter().map(|s| s.to_string()).collect(),
        unchanged: Vec::new(),
        failed: Vec::new(),
    }]
}

/// The URL of `db` with its password replaced.
fn with_password(db: &TestDatabase, password: &str) -> Location {
    let mut url = url::Url::parse(db.url()).unwrap();
    url.set_password(Some(password)).unwrap();
    Location::postgres(url.as_str(), None).unwrap()
}

async fn confirmed(location: &Location, account: &str) -> Vec<String> {
    let mut reader = Reader::open(location).await.unwrap();
    let snapshot = reader.snapshot().await.unwrap();
    snapshot.accounts[account].confirmed.clone()
}

#[tokio::test]
async fn a_write_after_another_replica_took_over_is_fenced_and_changes_nothing() {
    let Some(db) =
        database("a_write_after_another_replica_took_over_is_fenced_and_changes_nothing")
    else {
        return;
    };
    let writer = Writer::open(db.location(), "watch").await.unwrap();
    writer.record(1, added("@TOA#_a", &["x"])).await.unwrap();
    let serial = writer.snapshot().await.unwrap().serial;
    // What a takeover does (here behind this session's back, as a pooler could let happen).
    db.execute("UPDATE holder SET epoch = epoch + 1").unwrap();
    let err = writer
        .record(2, added("@TOA#_a", &["y"]))
        .await
        .unwrap_err();
    assert!(chain(&err).contains("fenced"), "{}", chain(&err));
    assert!(writer.lost().is_cancelled());
    let mut reader = Reader::open(db.location()).await.unwrap();
    let snapshot = reader.snapshot().await.unwrap();
    assert_eq!(snapshot.accounts["@TOA#_a"].confirmed, ["x"]);
    assert_eq!(snapshot.serial, serial);
    let refused = writer.begin_run("watch", None).await.unwrap_err();
    assert!(matches!(refused, LedgerError::LockLost { .. }), "{refused}");
}

#[tokio::test]
async fn a_terminated_session_loses_the_lock_and_another_writer_takes_it() {
    let Some(db) = database("a_terminated_session_loses_the_lock_and_another_writer_takes_it")
    else {
        return;
    };
    let first = Writer::open(db.location(), "watch").await.unwrap();
    first.record(1, added("@TOA#_a", &["x"])).await.unwrap();
    let err = Writer::open(db.location(), "apply").await.unwrap_err();
    assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
    let sessions =
        "SELECT count(*) FROM pg_stat_activity WHERE pid = (SELECT backend_pid FROM holder)";
    assert_eq!(db.query_i64(sessions).unwrap(), 1);
    db.execute("SELECT pg_terminate_backend(backend_pid) FROM holder")
        .unwrap();
    let err = first.record(2, added("@TOA#_a", &["y"])).await.unwrap_err();
    assert!(
        chain(&err).contains("lost the writer lock"),
        "{}",
        chain(&err)
    );
    let second = Writer::open(db.location(), "watch").await.unwrap();
    assert_eq!(db.query_i64("SELECT epoch FROM holder").unwrap(), 2);
    second.record(3, added("@TOA#_a", &["z"])).await.unwrap();
    assert_eq!(confirmed(&db.location(), "@TOA#_a").await, ["x", "z"]);
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
    assert!(chain(&writer.lost_reason().unwrap()).contains("session"));
    let err = writer.begin_run("watch", None).await.unwrap_err();
    assert!(matches!(err, LedgerError::LockLost { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_starting_together_get_exactly_one_writer_and_one_schema() {
    let Some(db) = database("replicas_starting_together_get_exactly_one_writer_and_one_schema")
    else {
        return;
    };
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(6));
    let replicas: Vec<_> = (0..6)
        .map(|_| {
            let (location, start) = (db.location(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                Writer::open(location, "watch").await
            })
        })
        .collect();
    let mut opened = Vec::new();
    for replica in replicas {
        opened.push(replica.await.unwrap());
    }
    let leaders = opened.iter().filter(|r| r.is_ok()).count();
    assert_eq!(leaders, 1, "{opened:?}");
    for refused in opened.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(refused, LedgerError::Locked { .. }), "{refused}");
    }
    let lineages = db.query_i64("SELECT count(*) FROM meta WHERE key = 'lineage'");
    assert_eq!(lineages.unwrap(), 1);
}

#[tokio::test]
async fn a_wrong_password_is_named_with_the_fix_and_never_echoed() {
    let Some(db) = database("a_wrong_password_is_named_with_the_fix_and_never_echoed") else {
        return;
    };
    let wrong = with_password(&db, "not-the-password-42");
    for err in [
        Reader::open(&wrong).await.unwrap_err(),
        Writer::open(&wrong, "apply").await.unwrap_err(),
    ] {
        let text = chain(&err);
        assert!(text.contains("password authentication failed"), "{text}");
        assert!(text.contains("SUBSYNC_STATE_PASSWORD_FILE"), "{text}");
        assert!(!text.contains("not-the-password-42"), "{text}");
        assert!(!format!("{err:?}").contains("not-the-password-42"));
    }
}

#[tokio::test]
async fn an_unreachable_server_is_reported_at_once() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let location =
        Location::postgres(&format!("postgres://u:secret@127.0.0.1:{port}/db"), None).unwrap();
    let err = chain(&Reader::open(&location).await.unwrap_err());
    assert!(err.contains("cannot reach the ledger"), "{err}");
    assert!(err.contains("check that the server runs"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[tokio::test]
async fn a_schema_that_is_missing_or_someone_elses_is_refused_and_left_alone() {
    let Some(db) = database("a_schema_that_is_missing_or_someone_elses_is_refused_and_left_alone")
    else {
        return;
    };
    let mut url = url::Url::parse(db.url()).unwrap();
    url.query_pairs_mut()
        .append_pair("options", "-c search_path=nowhere");
    let nowhere = Location::postgres(url.as_str(), None).unwrap();
    let err = Writer::open(&nowhere, "apply")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CREATE SCHEMA") && err.contains("search_path"),
        "{err}"
    );
    db.execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)")
        .unwrap();
    for err in [
        Reader::open(db.location()).await.unwrap_err(),
        Writer::open(db.location(), "apply").await.unwrap_err(),
    ] {
        assert!(matches!(err, LedgerError::Foreign { .. }), "{err}");
        assert!(err.to_string().contains("orders"), "{err}");
    }
    let tables = db.query_i64("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");
    assert_eq!(tables.unwrap(), 1);
}

#[tokio::test]
async fn the_answer_deadline_follows_the_statement_timeout_the_server_enforces() {
    let Some(db) =
        database("the_answer_deadline_follows_the_statement_timeout_the_server_enforces")
    else {
        return;
    };
    // A statement_timeout the server refuses is named by the server, before anything is done.
    let mut url = url::Url::parse(db.url()).unwrap();
    url.query_pairs_mut()
        .append_pair("options", "-c statement_timeout=soon");
    let bad = Location::postgres(url.as_str(), None).unwrap();
    let err = chain(&Writer::open(&bad, "apply").await.unwrap_err());
    assert!(err.contains("statement_timeout"), "{err}");
    // One it accepts is used: a ledger with a 2-minute bound works as any other.
    let mut url = url::Url::parse(db.url()).unwrap();
    url.query_pairs_mut()
        .append_pair("options", "-c statement_timeout=2min");
    let slow = Location::postgres(url.as_str(), None).unwrap();
    let writer = Writer::open(&slow, "apply").await.unwrap();
    writer.record(1, added("@TOA#_a", &["x"])).await.unwrap();
    writer.close().await;
}

#[tokio::test]
async fn tls_follows_sslmode() {
    let Some(db) = database("tls_follows_sslmode") else {
        return;
    };
    let with = |host: &str, query: &str| {
        let mut url = url::Url::parse(db.url()).unwrap();
        url.set_host(Some(host)).unwrap();
        url.set_query(Some(query));
        Location::postgres(url.as_str(), None).unwrap()
    };
    async fn encrypted(location: &Location) -> Result<(), LedgerError> {
        let mut reader = Reader::open(location).await?;
        reader.snapshot().await.map(|_| ())
    }
    // The test server's certificate is for localhost, from a CA of its own (.ci/postgres).
    // Skipped, saying so, when the server has no TLS (.ci/postgres without openssl); under CI
    // that fails instead.
    let Some(ca) = crate::testing::configured("tls_follows_sslmode", &["SUBSYNC_TEST_POSTGRES_CA"])
        .and_then(|mut values| values.pop())
    else {
        return;
    };
    encrypted(&with("127.0.0.1", "sslmode=require"))
        .await
        .unwrap();
    let ca = format!("sslrootcert={ca}");
    encrypted(&with("localhost", &format!("sslmode=verify-full&{ca}")))
        .await
        .unwrap();
    encrypted(&with("127.0.0.1", &format!("sslmode=verify-ca&{ca}")))
        .await
        .unwrap();
    for refused in [
        with("127.0.0.1", &format!("sslmode=verify-full&{ca}")),
        with("localhost", "sslmode=verify-full&sslrootcert=system"),
    ] {
        let err = chain(&encrypted(&refused).await.unwrap_err());
        assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
    }
}

/// Pages of `confirmed`, and how many of them are not yet marked all-visible.
fn unsettled(db: &TestDatabase) -> (i64, i64) {
    let pages = "pg_relation_size(oid) / CAST(current_setting('block_size') AS BIGINT)";
    let of = |what: &str| {
        db.query_i64(&format!(
            "SELECT CAST({what} AS BIGINT) FROM pg_class WHERE oid = CAST('confirmed' AS regclass)"
        ))
        .unwrap()
    };
    (of(pages), of(&format!("{pages} - relallvisible")))
}

#[tokio::test]
async fn a_run_that_wrote_many_rows_leaves_them_settled_for_the_first_read() {
    let Some(db) = database("a_run_that_wrote_many_rows_leaves_them_settled_for_the_first_read")
    else {
        return;
    };
    let writer = Writer::open(db.location(), "apply").await.unwrap();
    let ids: Vec<String> = (0..20_000).map(|i| format!("u{i:05}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let run = writer.begin_run("apply", None).await.unwrap();
    writer.record(run, added("@TOA#_a", &ids)).await.unwrap();
    writer
        .finish_run(run, crate::ledger::RunOutcome::Converged, &"done")
        .await
        .unwrap();
    // Settling follows the run's end; closing waits for it.
    writer.close().await;
    let (pages, unsettled) = unsettled(&db);
    assert!(pages > 0);
    assert_eq!(unsettled, 0, "of {pages} pages");
    assert_eq!(confirmed(&db.location(), "@TOA#_a").await.len(), 20_000);
}

//! Test support shared by the unit tests, the integration tests and the benchmarks: a fresh
//! PostgreSQL database per test on the server the caller names (`.ci/postgres` starts one).
//! Not part of the tool.

use crate::ledger::Location;

/// The environment variable naming the test server's admin URL.
pub const POSTGRES_URL_VAR: &str = "SUBSYNC_TEST_POSTGRES_URL";

/// A database created for one test and dropped (sessions and all) when this is dropped.
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// The test server's admin URL from `POSTGRES_URL_VAR`, or `None` after saying on stderr
    /// (past the test harness's capture) that `test` is skipped.
    pub fn server(test: &str) -> Option<String> {
        match std::env::var(POSTGRES_URL_VAR) {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped {test}: no PostgreSQL; set {POSTGRES_URL_VAR} (see .ci/postgres)"
                );
                None
            }
        }
    }

    /// Creates an empty database on the server at `admin_url`.
    pub fn create(admin_url: &str) -> TestDatabase {
        let bytes: [u8; 8] = rand::random();
        let name = format!(
            "subsync_test_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        admin(
            admin_url,
            &format!("CREATE DATABASE {name} TEMPLATE template0"),
        );
        let mut url = url::Url::parse(admin_url).expect("the test server's URL");
        url.set_path(&name);
        TestDatabase {
            admin: admin_url.to_owned(),
            name,
            url: url.to_string(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn location(&self) -> Location {
        Location::postgres(&self.url, None).expect("the test database's URL")
    }

    /// Runs `sql` in this database.
    pub fn execute(&self, sql: &str) {
        admin(&self.url, sql);
    }

    /// Runs a query answering one bigint.
    pub fn query_i64(&self, sql: &str) -> i64 {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        on_own_thread(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            client.query_one(&sql, &[]).expect(&sql).get(0)
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The synchronous driver cannot run on a runtime's thread; tests may be async.
fn on_own_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f)
        .join()
        .expect("the database helper thread")
}

fn admin(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_own_thread(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        client.batch_execute(&sql).expect(&sql);
    });
}

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
    location: Location,
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
    pub fn create(admin_url: &str) -> Result<TestDatabase, String> {
        let bytes: [u8; 8] = rand::random();
        let name = format!(
            "subsync_test_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut url = url::Url::parse(admin_url).map_err(|e| format!("{POSTGRES_URL_VAR}: {e}"))?;
        url.set_path(&name);
        let location = Location::postgres(url.as_str(), None).map_err(|e| e.to_string())?;
        admin(
            admin_url,
            &format!("CREATE DATABASE {name} TEMPLATE template0"),
        )?;
        Ok(TestDatabase {
            admin: admin_url.to_owned(),
            name,
            url: url.to_string(),
            location,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn location(&self) -> Location {
        self.location.clone()
    }

    /// Runs `sql` in this database.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        admin(&self.url, sql)
    }

    /// Runs a query answering one bigint.
    pub fn query_i64(&self, sql: &str) -> Result<i64, String> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        on_own_thread(move || {
            let mut client =
                postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
            let row = client
                .query_one(&sql, &[])
                .map_err(|e| format!("{sql}: {e}"))?;
            row.try_get(0).map_err(|e| format!("{sql}: {e}"))
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin(&self.admin, &drop) {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "cannot drop the test database: {e}");
        }
    }
}

/// The synchronous driver cannot run on a runtime's thread; tests may be async.
fn on_own_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(f)
        .join()
        .unwrap_or_else(|_| Err("the database helper thread panicked".into()))
}

fn admin(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_own_thread(move || {
        let mut client =
            postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
        client
            .batch_execute(&sql)
            .map_err(|e| format!("{sql}: {e}"))
    })
}

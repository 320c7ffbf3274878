//! A fresh PostgreSQL database per test. Its helpers run on a thread of their own with a
//! runtime of their own, so that sync and async tests alike can call them.

use crate::ledger::{Location, UrlError};

/// Why the test database could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("{POSTGRES_URL_VAR} is not a URL")]
    Url(#[from] url::ParseError),
    #[error("{POSTGRES_URL_VAR}")]
    Location(#[from] UrlError),
    #[error("cannot start the helper's runtime")]
    Runtime(#[source] std::io::Error),
    #[error("the test server refused {0}")]
    Sql(String, #[source] tokio_postgres::Error),
    #[error("the database helper thread panicked")]
    Panicked,
}

/// The environment variable naming the test server's admin URL.
pub const POSTGRES_URL_VAR: &str = "SUBSYNC_TEST_POSTGRES_URL";

/// The values of `vars`, which a PostgreSQL test needs, or `None` after saying on stderr (past
/// the test harness's capture) that `test` is skipped. Under CI (`CI` set) a missing one is a
/// failure, not a skip: CI must run these tests.
pub fn configured(test: &str, vars: &[&str]) -> Option<Vec<String>> {
    let values: Vec<Option<String>> = vars
        .iter()
        .map(|v| std::env::var(v).ok().filter(|value| !value.is_empty()))
        .collect();
    if values.iter().all(Option::is_some) {
        return Some(values.into_iter().flatten().collect());
    }
    let names = vars.join(" and ");
    if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
        panic!(
            "{test}: CI is set but not {names}; start a server with .ci/postgres (.ci/run does)"
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: no PostgreSQL; set {names} (see .ci/postgres)"
    );
    None
}

/// A database created for one test and dropped (sessions and all) when this is dropped.
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
    location: Location,
}

impl TestDatabase {
    /// The test server's admin URL from `POSTGRES_URL_VAR`, or `None` after saying on stderr
    /// (past the test harness's capture) that `test` is skipped. Under CI (`CI` set) a missing
    /// server is a failure, not a skip: CI must run these tests.
    pub fn server(test: &str) -> Option<String> {
        configured(test, &[POSTGRES_URL_VAR]).and_then(|mut values| values.pop())
    }

    /// Creates an empty database on the server at `admin_url`.
    pub fn create(admin_url: &str) -> Result<TestDatabase, DatabaseError> {
        let bytes: [u8; 8] = rand::random();
        let name = format!(
            "subsync_test_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&name);
        let location = Location::postgres(url.as_str(), None)?;
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
    pub fn execute(&self, sql: &str) -> Result<(), DatabaseError> {
        admin(&self.url, sql)
    }

    /// Runs a query answering one bigint.
    pub fn query_i64(&self, sql: &str) -> Result<i64, DatabaseError> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        on_own_thread(
            move |client, rt| {
                rt.block_on(client.query_one(&sql, &[]))
                    .and_then(|row| row.try_get(0))
                    .map_err(|e| DatabaseError::Sql(sql, e))
            },
            url,
        )
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin(&self.admin, &drop) {
            use std::io::Write;
            let e = crate::errors::chain(&e);
            let _ = writeln!(std::io::stderr(), "cannot drop the test database: {e}");
        }
    }
}

/// Connects to `url` on a thread of its own (a test may be async) and runs `f` there.
fn on_own_thread<T: Send + 'static>(
    f: impl FnOnce(&tokio_postgres::Client, &tokio::runtime::Runtime) -> Result<T, DatabaseError>
    + Send
    + 'static,
    url: String,
) -> Result<T, DatabaseError> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DatabaseError::Runtime)?;
        let (client, connection) = rt
            .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
            .map_err(|e| DatabaseError::Sql("a connection".into(), e))?;
        rt.spawn(async move {
            let _ = connection.await;
        });
        f(&client, &rt)
    })
    .join()
    .unwrap_or(Err(DatabaseError::Panicked))
}

fn admin(url: &str, sql: &str) -> Result<(), DatabaseError> {
    let sql = sql.to_owned();
    on_own_thread(
        move |client, rt| {
            rt.block_on(client.batch_execute(&sql))
                .map_err(|e| DatabaseError::Sql(sql, e))
        },
        url.to_owned(),
    )
}

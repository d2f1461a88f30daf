//! A fresh database per test: a SQLite file in a temporary directory, or a new
//! PostgreSQL database (random name) on the server named by
//! `CLAWFLEET_TEST_POSTGRES_URL`, dropped again when the test ends. A test that needs
//! PostgreSQL fails, never skips, when the server is not there.

use sqlx::{Connection, PgConnection};

/// The environment variable naming the PostgreSQL server the tests use.
pub const POSTGRES_URL_VARIABLE: &str = "CLAWFLEET_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    _sqlite_dir: Option<tempfile::TempDir>,
    _postgres: Option<PostgresDatabase>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                Self {
                    url: format!("sqlite://{}", dir.path().join("test.db").display()),
                    _sqlite_dir: Some(dir),
                    _postgres: None,
                }
            }
            Backend::Postgres => {
                let database = PostgresDatabase::create().await;
                Self {
                    url: database.url.clone(),
                    _sqlite_dir: None,
                    _postgres: Some(database),
                }
            }
        }
    }
}

/// The server URL; a test that needs PostgreSQL fails (never skips) without it.
pub fn postgres_server_url() -> String {
    match std::env::var(POSTGRES_URL_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "{POSTGRES_URL_VARIABLE} is not set: these tests need a PostgreSQL server. \
             Run `export {POSTGRES_URL_VARIABLE}=$(scripts/postgres start)` from the \
             repository root first (it needs `apt-get install -y postgresql`)."
        ),
    }
}

/// `server_url` with its database name replaced by `database`.
fn with_database(server_url: &str, database: &str) -> String {
    let (without_query, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = without_query.find("://").map_or(0, |index| index + 3);
    let path_start = without_query[authority_start..]
        .find('/')
        .map_or(without_query.len(), |index| authority_start + index);
    let mut url = format!("{}/{database}", &without_query[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

struct PostgresDatabase {
    server_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    async fn create() -> Self {
        let server_url = postgres_server_url();
        let name = format!("clawfleet_test_{}", hex::encode(random_bytes()));
        let mut admin = PgConnection::connect(&server_url)
            .await
            .unwrap_or_else(|error| {
                panic!("cannot connect to {POSTGRES_URL_VARIABLE} ({error}); is `scripts/postgres start` running?")
            });
        // The name is generated hex, so formatting it into the statement is safe.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        Self {
            url: with_database(&server_url, &name),
            server_url,
            name,
        }
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // Drop runs outside async context (and also on panic): use a private runtime
        // on its own thread so the enclosing runtime is never blocked from within.
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping the test database");
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&server_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

fn random_bytes() -> [u8; 8] {
    use rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 8];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
#[test]
fn database_names_replace_only_the_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:55432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:55432/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@h:1/db?sslmode=disable", "t1"),
        "postgres://u:p@h:1/t1?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:1", "t1"), "postgres://h:1/t1");
}

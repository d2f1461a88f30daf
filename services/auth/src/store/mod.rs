//! The account store: users, identities and refresh tokens, on SQLite (the embedded
//! default) or PostgreSQL (production), chosen by the `DATABASE_URL` scheme.
//!
//! Every statement is written once with `$n` placeholders, which both drivers accept,
//! and run on whichever pool is open through [`on_backend!`]. Migrations are embedded,
//! one directory per backend, and tracked in the auth service's own table so another
//! service's migrations in the same database never collide with ours.

mod identities;
mod refresh_tokens;
mod users;

use std::{str::FromStr, time::Duration};

use sqlx::{
    PgPool, SqlitePool,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use identities::EmailClaim;
pub use refresh_tokens::{NewRefreshToken, RefreshTokenRecord, Rotation};
pub use users::{NewUser, UserRecord};

/// The table that records which auth migrations ran (not sqlx's shared default).
pub const MIGRATIONS_TABLE: &str = "_clawfleet_auth_migrations";

/// How long a statement waits for a pooled connection or a SQLite write lock.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Store failures. Messages never contain the database URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("this sign-in is already linked to an account")]
    IdentityTaken,
    #[error("database url must start with sqlite: or postgres:")]
    UnsupportedUrl,
    #[error("cannot prepare the database directory: {0}")]
    Directory(std::io::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored account {id} is corrupt: {reason}")]
    Corrupt { id: String, reason: String },
}

enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool is open, and `$begin_write` bound
/// to the statement that opens a write transaction on it. SQLite gets
/// `BEGIN IMMEDIATE`, which takes the write lock up front: a deferred transaction that
/// reads first and writes later fails with `SQLITE_BUSY` instead of waiting when
/// another connection wrote in between.
macro_rules! on_backend {
    ($store:expr, |$pool:ident, $begin_write:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => {
                let $begin_write = "BEGIN IMMEDIATE";
                $body
            }
            $crate::store::Backend::Postgres($pool) => {
                let $begin_write = "BEGIN";
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// Users, identities and refresh tokens.
pub struct AuthStore {
    backend: Backend,
}

impl std::fmt::Debug for AuthStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "AuthStore {{ backend: {} }}",
            self.backend_name()
        )
    }
}

impl AuthStore {
    /// Connects to `database_url` (`sqlite://…`, `sqlite::memory:`, `postgres://…`)
    /// and applies the embedded migrations.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let backend = if database_url.starts_with("sqlite:") {
            Backend::Sqlite(open_sqlite(database_url).await?)
        } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
            Backend::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(database_url)
                    .await?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let store = Self { backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut migrator = sqlx::migrate!("./migrations/sqlite");
                migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
                migrator.run(pool).await?;
            }
            Backend::Postgres(pool) => {
                let mut migrator = sqlx::migrate!("./migrations/postgres");
                migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
                migrator.run(pool).await?;
            }
        }
        Ok(())
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

async fn open_sqlite(database_url: &str) -> Result<SqlitePool, StoreError> {
    let in_memory = database_url.contains(":memory:") || database_url.contains("mode=memory");
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(ACQUIRE_TIMEOUT);
    if in_memory {
        // One connection that is never recycled: each new in-memory connection would
        // be a new, empty database.
        return Ok(SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?);
    }
    if let Some(directory) = options.get_filename().parent()
        && !directory.as_os_str().is_empty()
    {
        std::fs::create_dir_all(directory).map_err(StoreError::Directory)?;
    }
    let options = options
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?)
}

/// True when `error` is a unique-constraint violation.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}

//! Opening a database by URL and migrating it.

use std::{str::FromStr, time::Duration};

use sqlx::{
    PgPool, SqlitePool,
    migrate::Migrator,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// How long a statement waits for a pooled connection or a SQLite write lock.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a database could not be opened. Messages never contain the URL (it may hold a
/// password).
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("database url must start with sqlite: or postgres:")]
    UnsupportedUrl,
    #[error("cannot prepare the database directory: {0}")]
    Directory(std::io::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// A service's migrations: one folder per backend (`sqlx::migrate!`), recorded in
/// `table`.
pub struct Migrations {
    pub sqlite: Migrator,
    pub postgres: Migrator,
    pub table: &'static str,
}

/// An open pool on one of the two backends.
#[derive(Clone)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Database({})", self.backend_name())
    }
}

/// Runs `$body` with `$pool` bound to whichever pool `$database` (anything that is
/// `AsRef<Database>`) has open, and `$begin_write` bound to the statement that opens a
/// write transaction on it. SQLite gets `BEGIN IMMEDIATE`, which takes the write lock up
/// front: a deferred transaction that reads first and writes later fails with
/// `SQLITE_BUSY` instead of waiting when another connection wrote in between.
#[macro_export]
macro_rules! on_backend {
    ($database:expr, |$pool:ident, $begin_write:ident| $body:expr) => {
        match ::std::convert::AsRef::<$crate::Database>::as_ref(&$database) {
            $crate::Database::Sqlite($pool) => {
                let $begin_write = "BEGIN IMMEDIATE";
                $body
            }
            $crate::Database::Postgres($pool) => {
                let $begin_write = "BEGIN";
                $body
            }
        }
    };
}

impl AsRef<Database> for Database {
    fn as_ref(&self) -> &Database {
        self
    }
}

impl Database {
    /// Connects to `url` (`sqlite://…`, `sqlite::memory:`, `postgres://…`) and applies
    /// `migrations`.
    pub async fn open(url: &str, migrations: Migrations) -> Result<Self, DatabaseError> {
        let database = if url.starts_with("sqlite:") {
            Database::Sqlite(open_sqlite(url).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Database::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?,
            )
        } else {
            return Err(DatabaseError::UnsupportedUrl);
        };
        let Migrations {
            mut sqlite,
            mut postgres,
            table,
        } = migrations;
        match &database {
            Database::Sqlite(pool) => {
                sqlite.dangerous_set_table_name(table);
                sqlite.run(pool).await?;
            }
            Database::Postgres(pool) => {
                postgres.dangerous_set_table_name(table);
                postgres.run(pool).await?;
            }
        }
        Ok(database)
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// The engine as OpenTelemetry's `db.system.name` names it, for query spans.
    pub fn system_name(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgresql",
        }
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

async fn open_sqlite(url: &str) -> Result<SqlitePool, DatabaseError> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = SqliteConnectOptions::from_str(url)?
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
        std::fs::create_dir_all(directory).map_err(DatabaseError::Directory)?;
    }
    private_database_file(options.get_filename()).map_err(DatabaseError::Directory)?;
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
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}

/// The database file exists and is 0600 before SQLite opens it, whatever the umask:
/// SQLite creates it with the umask's mode, and its `-wal` and `-shm` files copy the
/// database file's mode.
fn private_database_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

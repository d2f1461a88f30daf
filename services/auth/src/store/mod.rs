//! The account store: users, identities, refresh tokens and subscriptions, on SQLite (the embedded
//! default) or PostgreSQL (production), chosen by the `DATABASE_URL` scheme.
//!
//! Every statement is written once with `$n` placeholders, which both drivers accept,
//! and run on whichever pool is open through [`on_backend!`]. Migrations are embedded,
//! one directory per backend, and tracked in the auth service's own table so another
//! service's migrations in the same database never collide with ours.

mod identities;
mod refresh_tokens;
mod subscriptions;
mod users;

use clawfleet_database::{Database, DatabaseError, Migrations};
pub(crate) use clawfleet_database::{is_unique_violation, on_backend};

pub use identities::EmailClaim;
pub use refresh_tokens::{NewRefreshToken, RefreshTokenRecord, Rotation, RotationRequest};
pub use subscriptions::{
    DeletedUser, EventRecording, PlanSource, ReceivedEvent, SubscriptionRecord, SubscriptionState,
};
pub use users::{NewUser, UserRecord};

/// The table that records which auth migrations ran (not sqlx's shared default).
pub const MIGRATIONS_TABLE: &str = "_clawfleet_auth_migrations";

/// Store failures. Messages never contain the database URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("this sign-in is already linked to an account")]
    IdentityTaken,
    #[error(transparent)]
    Open(#[from] DatabaseError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored account {id} is corrupt: {reason}")]
    Corrupt { id: String, reason: String },
}

/// Users, identities and refresh tokens.
#[derive(Debug)]
pub struct AuthStore {
    database: Database,
}

impl AsRef<Database> for AuthStore {
    fn as_ref(&self) -> &Database {
        &self.database
    }
}

impl AuthStore {
    /// Connects to `database_url` (`sqlite://…`, `sqlite::memory:`, `postgres://…`)
    /// and applies the embedded migrations.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let migrations = Migrations {
            sqlite: sqlx::migrate!("./migrations/sqlite"),
            postgres: sqlx::migrate!("./migrations/postgres"),
            table: MIGRATIONS_TABLE,
        };
        Ok(Self {
            database: Database::open(database_url, migrations).await?,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        self.database.backend_name()
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        self.database.close().await;
    }
}

//! Users: one row per account, found by id or by normalised email.

use clawfleet_kit::{plan::Plan, secret::Redacted};
use rand_core::{OsRng, RngCore};

use super::{AuthStore, StoreError, is_unique_violation, on_backend};
use crate::{digest::hex, validation::Email};

/// Columns of `users`, in the order every query selects them.
pub(super) const USER_COLUMNS: &str = "users.id, users.email, users.name, users.password_hash, users.plan, users.email_verified, users.created_at";

pub(super) type UserRow = (
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    bool,
    i64,
);

/// A stored account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub email: Option<String>,
    pub name: String,
    /// Argon2id PHC string; `None` for provider-only accounts. Kept out of logs.
    pub password_hash: Option<Redacted<String>>,
    pub plan: Plan,
    pub email_verified: bool,
    pub created_at_ms: i64,
}

impl UserRecord {
    /// The stored password hash, for verifying and for writing back.
    pub fn password_hash(&self) -> Option<&str> {
        self.password_hash.as_deref().map(String::as_str)
    }
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(
        (id, email, name, password_hash, plan, email_verified, created_at_ms): UserRow,
    ) -> Result<Self, StoreError> {
        let plan = match Plan::from_name(&plan) {
            Ok(plan) => plan,
            Err(error) => {
                let reason = error.to_string();
                return Err(StoreError::Corrupt { id, reason });
            }
        };
        Ok(Self {
            id,
            email,
            name,
            password_hash: password_hash.map(Redacted),
            plan,
            email_verified,
            created_at_ms,
        })
    }
}

/// A user about to be created.
#[derive(Clone)]
pub struct NewUser {
    pub email: Option<Email>,
    pub name: String,
    pub password_hash: Option<String>,
    pub email_verified: bool,
    pub created_at_ms: i64,
}

impl NewUser {
    /// The record this user will have, under a freshly generated opaque id.
    pub(super) fn into_record(self) -> UserRecord {
        let mut random = [0u8; 16];
        OsRng.fill_bytes(&mut random);
        UserRecord {
            id: format!("usr_{}", hex(&random)),
            email: self.email.map(|email| email.as_str().to_owned()),
            name: self.name,
            password_hash: self.password_hash.map(Redacted),
            plan: Plan::DEFAULT,
            email_verified: self.email_verified,
            created_at_ms: self.created_at_ms,
        }
    }
}

pub(super) const INSERT_USER: &str = "INSERT INTO users (id, email, name, password_hash, plan, email_verified, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Maps a failed user insert: a unique violation can only be the email.
pub(super) fn user_insert_error(error: sqlx::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::EmailTaken
    } else {
        error.into()
    }
}

impl AuthStore {
    /// Creates a user; [`StoreError::EmailTaken`] when the email is in use.
    pub async fn insert_user(&self, new_user: NewUser) -> Result<UserRecord, StoreError> {
        self.insert_user_linked_to(new_user, None).await
    }

    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT users", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "SELECT", db.collection.name = "users",
        clawfleet.store.call = "user_by_id",
    ))]
    pub async fn user_by_id(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        let query = format!("SELECT {USER_COLUMNS} FROM users WHERE users.id = $1");
        let row: Option<UserRow> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(query))
                .bind(user_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(UserRecord::try_from).transpose()
    }

    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT users", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "SELECT", db.collection.name = "users",
        clawfleet.store.call = "user_by_email",
    ))]
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        let query = format!("SELECT {USER_COLUMNS} FROM users WHERE users.email = $1");
        let row: Option<UserRow> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(query))
                .bind(email.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(UserRecord::try_from).transpose()
    }

    /// How the user can sign in: `email` when they have a password, then each linked
    /// provider, sorted.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT identities", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "SELECT", db.collection.name = "identities",
        clawfleet.store.call = "providers_of",
    ))]
    pub async fn providers_of(&self, user: &UserRecord) -> Result<Vec<String>, StoreError> {
        let mut providers: Vec<String> = on_backend!(self, |pool, _begin| {
            sqlx::query_scalar(
                "SELECT DISTINCT provider FROM identities WHERE user_id = $1 ORDER BY provider",
            )
            .bind(&user.id)
            .fetch_all(pool)
            .await?
        });
        if user.password_hash.is_some() {
            providers.insert(0, "email".to_owned());
        }
        Ok(providers)
    }

    /// Number of accounts (for operators and tests).
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT users", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "SELECT", db.collection.name = "users",
        clawfleet.store.call = "count_users",
    ))]
    pub async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(on_backend!(self, |pool, _begin| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_says_whether_there_is_a_password_but_not_its_hash() {
        let record = NewUser {
            email: Some(Email::parse("ada@example.com").unwrap()),
            name: "Ada".to_owned(),
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
            email_verified: false,
            created_at_ms: 0,
        }
        .into_record();
        let shown = format!("{record:?}");
        assert!(
            !shown.contains("argon2id") && !shown.contains("aGFzaA"),
            "{shown}"
        );
        assert!(shown.contains("password_hash: Some([redacted])"), "{shown}");
        assert_eq!(
            record.password_hash(),
            Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
        );
    }
}

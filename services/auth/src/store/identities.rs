//! Identities: a provider account (`google` or `apple` plus its stable `sub`) linked to
//! one user.

use super::{
    AuthStore, StoreError, is_unique_violation, on_backend,
    users::{INSERT_USER, NewUser, USER_COLUMNS, UserRecord, UserRow, user_insert_error},
};

const INSERT_IDENTITY: &str =
    "INSERT INTO identities (provider, subject, user_id, created_at) VALUES ($1, $2, $3, $4)";

fn identity_insert_error(error: sqlx::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::IdentityTaken
    } else {
        error.into()
    }
}

/// What linking an identity by its verified email did to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailClaim {
    /// The account's email was already verified; only the identity was added.
    AlreadyVerified,
    /// The account's email was unverified: it is now verified, its password is gone
    /// and `revoked_tokens` live refresh tokens were revoked.
    ClaimedUnverifiedAccount { revoked_tokens: u64 },
}

impl AuthStore {
    /// The user a provider account is linked to.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT identities", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "SELECT", db.collection.name = "identities",
        clawfleet.store.call = "user_by_identity",
    ))]
    pub async fn user_by_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let query = format!(
            "SELECT {USER_COLUMNS} FROM users JOIN identities ON identities.user_id = users.id \
             WHERE identities.provider = $1 AND identities.subject = $2"
        );
        let row: Option<UserRow> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(query))
                .bind(provider)
                .bind(subject)
                .fetch_optional(pool)
                .await?
        });
        row.map(UserRecord::try_from).transpose()
    }

    /// Creates a user and links the provider account to it, atomically.
    /// [`StoreError::EmailTaken`] or [`StoreError::IdentityTaken`] when either exists.
    pub async fn insert_user_with_identity(
        &self,
        new_user: NewUser,
        provider: &str,
        subject: &str,
    ) -> Result<UserRecord, StoreError> {
        self.insert_user_linked_to(new_user, Some((provider, subject)))
            .await
    }

    /// Creates a user and, when given, links the `(provider, subject)` account to it,
    /// in one transaction: the one place a user row is written.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "INSERT users", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "INSERT", db.collection.name = "users",
        clawfleet.store.call = "insert_user",
    ))]
    pub(super) async fn insert_user_linked_to(
        &self,
        new_user: NewUser,
        identity: Option<(&str, &str)>,
    ) -> Result<UserRecord, StoreError> {
        let record = new_user.into_record();
        on_backend!(self, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            sqlx::query(INSERT_USER)
                .bind(&record.id)
                .bind(&record.email)
                .bind(&record.name)
                .bind(record.password_hash())
                .bind(record.plan.as_str())
                .bind(record.email_verified)
                .bind(record.created_at_ms)
                .execute(&mut *transaction)
                .await
                .map_err(user_insert_error)?;
            if let Some((provider, subject)) = identity {
                sqlx::query(INSERT_IDENTITY)
                    .bind(provider)
                    .bind(subject)
                    .bind(&record.id)
                    .bind(record.created_at_ms)
                    .execute(&mut *transaction)
                    .await
                    .map_err(identity_insert_error)?;
            }
            transaction.commit().await?;
        });
        Ok(record)
    }

    /// Links a provider account, whose provider vouched for the email, to the existing
    /// user with that email.
    ///
    /// When the account's email was never verified, whoever signed up with it was never
    /// shown to own the address, and may have registered it ahead of its real owner to
    /// take the account over once the owner arrives through the provider (account
    /// pre-hijacking). So in the same transaction the link claims such an account for
    /// the provider: the email becomes verified, the unverified password is dropped and
    /// every refresh-token family is revoked. Returns whether that claim happened.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "INSERT identities", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "INSERT", db.collection.name = "identities",
        clawfleet.store.call = "link_identity_with_verified_email",
    ))]
    pub async fn link_identity_with_verified_email(
        &self,
        user_id: &str,
        provider: &str,
        subject: &str,
        now_ms: i64,
    ) -> Result<EmailClaim, StoreError> {
        on_backend!(self, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            sqlx::query(INSERT_IDENTITY)
                .bind(provider)
                .bind(subject)
                .bind(user_id)
                .bind(now_ms)
                .execute(&mut *transaction)
                .await
                .map_err(identity_insert_error)?;
            let claimed = sqlx::query(
                "UPDATE users SET email_verified = TRUE, password_hash = NULL \
                 WHERE id = $1 AND email_verified = FALSE",
            )
            .bind(user_id)
            .execute(&mut *transaction)
            .await?
            .rows_affected()
                == 1;
            let mut revoked_tokens = 0;
            if claimed {
                revoked_tokens = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1 \
                     WHERE user_id = $2 AND revoked_at IS NULL",
                )
                .bind(now_ms)
                .bind(user_id)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            }
            transaction.commit().await?;
            Ok(if claimed {
                EmailClaim::ClaimedUnverifiedAccount { revoked_tokens }
            } else {
                EmailClaim::AlreadyVerified
            })
        })
    }
}

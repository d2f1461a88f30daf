//! Refresh tokens, stored only as SHA-256 digests. Tokens issued from one sign-in form a
//! family; each use rotates the token (the old row is marked `rotated_at` and a new row
//! joins the family), and presenting a rotated token revokes the whole family, because
//! then either the client or a thief holds a copy that should have been discarded.

use super::{AuthStore, StoreError, on_backend};

/// A refresh token about to be stored.
#[derive(Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub token_hash: String,
    pub family_id: String,
    pub user_id: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A stored refresh token's state (for inspection and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub family_id: String,
    pub user_id: String,
    pub expires_at_ms: i64,
    pub rotated_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// The successor of a rotated token, sealed (see [`crate::successor_seal`]).
    pub successor_sealed: Option<String>,
}

type RefreshTokenRow = (
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

impl From<RefreshTokenRow> for RefreshTokenRecord {
    fn from(
        (family_id, user_id, expires_at_ms, rotated_at_ms, revoked_at_ms, successor_sealed): RefreshTokenRow,
    ) -> Self {
        Self {
            family_id,
            user_id,
            expires_at_ms,
            rotated_at_ms,
            revoked_at_ms,
            successor_sealed,
        }
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now rotated and the replacement stored.
    Rotated { user_id: String, family_id: String },
    /// The token had already been rotated: its whole family is now revoked.
    Reused { family_id: String },
    /// The token was rotated moments ago (within the retry grace) and its successor
    /// is still current: a retry of a lost response, answered with the same successor.
    Retried {
        user_id: String,
        family_id: String,
        successor_sealed: String,
    },
    /// Unknown, expired or revoked: nothing changed.
    Invalid,
}

/// One rotation: the presented token's digest, its replacement, and the rules.
#[derive(Debug, Clone)]
pub struct RotationRequest<'a> {
    pub presented_hash: &'a str,
    pub replacement_hash: &'a str,
    /// The replacement sealed under the presented token, kept for retries.
    pub replacement_sealed: Option<&'a str>,
    pub now_ms: i64,
    pub replacement_expires_at_ms: i64,
    /// A rotated token presented again within this long after its rotation is a retry,
    /// not a theft (0: never).
    pub retry_grace_ms: i64,
    /// No token of a family outlives its first one by more than this.
    pub family_lifetime_ms: i64,
}

const INSERT_TOKEN: &str = "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5)";
const SELECT_TOKEN: &str = "SELECT family_id, user_id, expires_at, rotated_at, revoked_at, successor_sealed \
     FROM refresh_tokens WHERE token_hash = $1";
const REVOKE_FAMILY: &str =
    "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL";

impl AuthStore {
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "INSERT refresh_tokens", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "INSERT", db.collection.name = "refresh_tokens",
        clawfleet.store.call = "insert_refresh_token",
    ))]
    pub async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<(), StoreError> {
        on_backend!(self, |pool, _begin| {
            sqlx::query(INSERT_TOKEN)
                .bind(&token.token_hash)
                .bind(&token.family_id)
                .bind(&token.user_id)
                .bind(token.created_at_ms)
                .bind(token.expires_at_ms)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Rotates the token whose digest is `presented_hash`, storing
    /// `replacement_hash` in its family, with no retry grace and no family lifetime.
    pub async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        replacement_hash: &str,
        now_ms: i64,
        replacement_expires_at_ms: i64,
    ) -> Result<Rotation, StoreError> {
        self.rotate_refresh_token_with(&RotationRequest {
            presented_hash,
            replacement_hash,
            replacement_sealed: None,
            now_ms,
            replacement_expires_at_ms,
            retry_grace_ms: 0,
            family_lifetime_ms: i64::MAX,
        })
        .await
    }

    /// Rotates the presented token (user and family are taken from it). The
    /// conditional UPDATE (`rotated_at IS NULL`) is the arbiter when two refreshes race
    /// with the same token: only one changes a row; the other sees a rotated token and
    /// is a retry (within the grace, successor still sealed) or a reuse that revokes
    /// the family. The replacement expires no later than the family's lifetime allows.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "UPDATE refresh_tokens", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "UPDATE", db.collection.name = "refresh_tokens",
        clawfleet.store.call = "rotate_refresh_token",
    ))]
    pub async fn rotate_refresh_token_with(
        &self,
        request: &RotationRequest<'_>,
    ) -> Result<Rotation, StoreError> {
        let now_ms = request.now_ms;
        on_backend!(self, |pool, begin_write| {
            let mut transaction = pool.begin_with(begin_write).await?;
            let rotated = sqlx::query(
                "UPDATE refresh_tokens SET rotated_at = $1, successor_sealed = $3 \
                 WHERE token_hash = $2 \
                 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
            )
            .bind(now_ms)
            .bind(request.presented_hash)
            .bind(request.replacement_sealed)
            .execute(&mut *transaction)
            .await?
            .rows_affected()
                == 1;
            let row: Option<RefreshTokenRow> = sqlx::query_as(SELECT_TOKEN)
                .bind(request.presented_hash)
                .fetch_optional(&mut *transaction)
                .await?;
            let Some(record) = row.map(RefreshTokenRecord::from) else {
                return Ok(Rotation::Invalid);
            };
            if rotated {
                let (family_start,): (i64,) = sqlx::query_as(
                    "SELECT MIN(created_at) FROM refresh_tokens WHERE family_id = $1",
                )
                .bind(&record.family_id)
                .fetch_one(&mut *transaction)
                .await?;
                let expires_at = request
                    .replacement_expires_at_ms
                    .min(family_start.saturating_add(request.family_lifetime_ms));
                sqlx::query(INSERT_TOKEN)
                    .bind(request.replacement_hash)
                    .bind(&record.family_id)
                    .bind(&record.user_id)
                    .bind(now_ms)
                    .bind(expires_at)
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
                return Ok(Rotation::Rotated {
                    user_id: record.user_id,
                    family_id: record.family_id,
                });
            }
            if let (None, Some(rotated_at)) = (record.revoked_at_ms, record.rotated_at_ms) {
                let within_grace = now_ms.saturating_sub(rotated_at) <= request.retry_grace_ms;
                if let (true, Some(successor_sealed)) = (within_grace, record.successor_sealed) {
                    return Ok(Rotation::Retried {
                        user_id: record.user_id,
                        family_id: record.family_id,
                        successor_sealed,
                    });
                }
                sqlx::query(REVOKE_FAMILY)
                    .bind(now_ms)
                    .bind(&record.family_id)
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
                return Ok(Rotation::Reused {
                    family_id: record.family_id,
                });
            }
            // Expired or already revoked: nothing to change.
            Ok(Rotation::Invalid)
        })
    }

    /// Revokes the family of the token whose digest is `token_hash`. With `owner`, only
    /// when the token belongs to that user. Returns whether any token was revoked.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "UPDATE refresh_tokens", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "UPDATE", db.collection.name = "refresh_tokens",
        clawfleet.store.call = "revoke_family_of",
    ))]
    pub async fn revoke_family_of(
        &self,
        token_hash: &str,
        owner: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let Some(record) = self.refresh_token(token_hash).await? else {
            return Ok(false);
        };
        if owner.is_some_and(|owner| owner != record.user_id) {
            return Ok(false);
        }
        let revoked = on_backend!(self, |pool, _begin| {
            sqlx::query(REVOKE_FAMILY)
                .bind(now_ms)
                .bind(&record.family_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(revoked > 0)
    }

    /// The stored state of the token whose digest is `token_hash`.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "SELECT refresh_tokens", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "SELECT", db.collection.name = "refresh_tokens",
        clawfleet.store.call = "refresh_token",
    ))]
    pub async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let row: Option<RefreshTokenRow> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(SELECT_TOKEN)
                .bind(token_hash)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(RefreshTokenRecord::from))
    }

    /// Deletes every family whose newest token expired before `now_ms`, revoked or
    /// not, and returns how many tokens went. Whole families only: a rotated token
    /// must stay while its family can still be refreshed, or presenting a stolen
    /// copy would read as unknown instead of revoking the family.
    #[tracing::instrument(name = "db", skip_all, fields(
        otel.name = "DELETE refresh_tokens", otel.kind = "client",
        db.system.name = self.database.system_name(),
        db.operation.name = "DELETE", db.collection.name = "refresh_tokens",
        clawfleet.store.call = "purge_expired_refresh_tokens",
    ))]
    pub async fn purge_expired_refresh_tokens(&self, now_ms: i64) -> Result<u64, StoreError> {
        Ok(on_backend!(self, |pool, _begin| {
            sqlx::query(
                "DELETE FROM refresh_tokens WHERE family_id IN (SELECT family_id \
                 FROM refresh_tokens GROUP BY family_id HAVING MAX(expires_at) <= $1)",
            )
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }
}

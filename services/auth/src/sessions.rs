//! Sessions: the token pair a sign-in returns, refresh-token rotation with reuse
//! detection (a retry of a lost response within a short grace gets the same successor),
//! an absolute lifetime per sign-in, and log-out.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use clawfleet_kit::{
    access_token::{AccessTokenKeys, IssuedToken},
    secret::{SecretString, random_token},
};

use crate::{
    digest::sha256_hex,
    error::AuthError,
    store::{AuthStore, NewRefreshToken, Rotation, RotationRequest, UserRecord},
    successor_seal,
};

/// Lifetime of a refresh token (docs/product/app-api.md#tokens: 7 days); each rotation starts a new one.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// How long after a rotation the rotated token may be presented again as a retry (the
/// response was lost; the client repeats the call) and get the same successor, instead
/// of being taken for a stolen copy that revokes the family.
pub const DEFAULT_RETRY_GRACE: Duration = Duration::from_secs(30);
/// How long one sign-in lasts at most, however often it is refreshed: after this the
/// user signs in again.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Entropy of a refresh token, in bytes.
const REFRESH_TOKEN_BYTES: usize = 32;
/// Longer presented tokens are refused without a lookup.
const MAX_REFRESH_TOKEN_LENGTH: usize = 512;

/// An access token and the refresh token issued with it.
#[derive(Clone, Debug)]
pub struct SessionTokens {
    pub access: IssuedToken,
    /// Opaque; only its SHA-256 is stored.
    pub refresh_token: SecretString,
}

/// Issues and rotates tokens.
#[derive(Debug)]
pub struct Sessions {
    store: Arc<AuthStore>,
    keys: AccessTokenKeys,
    refresh_ttl: Duration,
    retry_grace: Duration,
    session_lifetime: Duration,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

impl Sessions {
    pub fn new(store: Arc<AuthStore>, keys: AccessTokenKeys, refresh_ttl: Duration) -> Self {
        Self {
            store,
            keys,
            refresh_ttl,
            retry_grace: DEFAULT_RETRY_GRACE,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
        }
    }

    /// These sessions with a retry grace and an absolute lifetime other than the defaults.
    pub fn with_limits(mut self, retry_grace: Duration, session_lifetime: Duration) -> Self {
        self.retry_grace = retry_grace;
        self.session_lifetime = session_lifetime;
        self
    }

    fn refresh_expiry(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(millis(self.refresh_ttl))
    }

    /// Starts a new refresh-token family for `user` and returns its first pair.
    pub async fn start(&self, user: &UserRecord) -> Result<SessionTokens, AuthError> {
        let now = now_ms();
        let refresh_token = random_token(REFRESH_TOKEN_BYTES);
        self.store
            .insert_refresh_token(&NewRefreshToken {
                token_hash: sha256_hex(&refresh_token),
                family_id: format!("fam_{}", random_token(16)),
                user_id: user.id.clone(),
                created_at_ms: now,
                expires_at_ms: self
                    .refresh_expiry(now)
                    .min(now.saturating_add(millis(self.session_lifetime))),
            })
            .await?;
        let access = self.keys.issue(&user.id, user.plan, SystemTime::now())?;
        Ok(SessionTokens {
            access,
            refresh_token: refresh_token.into(),
        })
    }

    /// Rotates `presented` and returns the new pair and its user. An already-rotated
    /// token revokes its family; expired, revoked or unknown tokens are refused alike.
    pub async fn refresh(&self, presented: &str) -> Result<(SessionTokens, UserRecord), AuthError> {
        let presented = presented.trim();
        if presented.is_empty() {
            return Err(AuthError::InvalidArgument("refresh_token is required"));
        }
        if presented.len() > MAX_REFRESH_TOKEN_LENGTH {
            return Err(AuthError::InvalidRefreshToken);
        }
        let now = now_ms();
        let mut replacement = random_token(REFRESH_TOKEN_BYTES);
        let sealed = successor_seal::seal(&replacement, presented);
        let rotation = self
            .store
            .rotate_refresh_token_with(&RotationRequest {
                presented_hash: &sha256_hex(presented),
                replacement_hash: &sha256_hex(&replacement),
                replacement_sealed: sealed.as_deref(),
                now_ms: now,
                replacement_expires_at_ms: self.refresh_expiry(now),
                retry_grace_ms: millis(self.retry_grace),
                family_lifetime_ms: millis(self.session_lifetime),
            })
            .await?;
        let user_id = match rotation {
            Rotation::Rotated { user_id, .. } => user_id,
            Rotation::Retried {
                user_id,
                family_id,
                successor_sealed,
            } => {
                replacement = self
                    .current_successor(presented, &successor_sealed, &family_id, now)
                    .await?;
                tracing::info!(%family_id, "refresh retried within the grace; same successor returned");
                user_id
            }
            Rotation::Reused { family_id } => {
                crate::metrics::refresh_reuse_detected();
                tracing::warn!(%family_id, "rotated refresh token presented again; family revoked");
                return Err(AuthError::InvalidRefreshToken);
            }
            Rotation::Invalid => return Err(AuthError::InvalidRefreshToken),
        };
        let user = self
            .store
            .user_by_id(&user_id)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        let access = self.keys.issue(&user.id, user.plan, SystemTime::now())?;
        Ok((
            SessionTokens {
                access,
                refresh_token: replacement.into(),
            },
            user,
        ))
    }

    /// The successor sealed under `presented`, if it is still the family's current token.
    /// Once the successor itself was used (or the family ended), presenting its
    /// predecessor again is no retry: the family is revoked, as for any reuse.
    async fn current_successor(
        &self,
        presented: &str,
        sealed: &str,
        family_id: &str,
        now: i64,
    ) -> Result<String, AuthError> {
        let successor = successor_seal::open(sealed, presented);
        let current = match &successor {
            Some(successor) => self
                .store
                .refresh_token(&sha256_hex(successor))
                .await?
                .is_some_and(|record| {
                    record.rotated_at_ms.is_none()
                        && record.revoked_at_ms.is_none()
                        && record.expires_at_ms > now
                }),
            None => false,
        };
        match successor {
            Some(successor) if current => Ok(successor),
            _ => {
                tracing::warn!(%family_id, "rotated refresh token presented again after its successor was used; family revoked");
                self.store
                    .revoke_family_of(&sha256_hex(presented), None, now)
                    .await?;
                Err(AuthError::InvalidRefreshToken)
            }
        }
    }

    /// Revokes the family of `presented`; with `owner`, only when it is theirs.
    /// Unknown tokens revoke nothing and are not an error, so log-out is idempotent.
    pub async fn log_out(&self, presented: &str, owner: Option<&str>) -> Result<bool, AuthError> {
        let presented = presented.trim();
        if presented.is_empty() {
            return Err(AuthError::InvalidArgument("refresh_token is required"));
        }
        if presented.len() > MAX_REFRESH_TOKEN_LENGTH {
            return Ok(false);
        }
        Ok(self
            .store
            .revoke_family_of(&sha256_hex(presented), owner, now_ms())
            .await?)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use clawfleet_kit::{plan::Plan, secret::ExposeSecret};

    use super::*;

    #[test]
    fn debug_output_hides_both_tokens() {
        let keys = AccessTokenKeys::from_secret(&[7u8; 32]).unwrap();
        let tokens = SessionTokens {
            access: keys.issue("usr_1", Plan::Free, SystemTime::now()).unwrap(),
            refresh_token: random_token(REFRESH_TOKEN_BYTES).into(),
        };
        let shown = format!("{tokens:?}");
        assert!(!shown.contains(tokens.access.token.expose_secret()));
        assert!(!shown.contains(tokens.refresh_token.expose_secret()));
        assert!(shown.contains(&tokens.access.jti), "{shown}");
    }
}

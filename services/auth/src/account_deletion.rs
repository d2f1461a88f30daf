//! Account deletion (docs/product/app-api.md#account-deletion): the app user proves who
//! they are again — their password, or a fresh Google or Apple token of an identity
//! linked to the account — and then the user, their identities, sessions and
//! subscription records are deleted in one transaction. The edge deletes the user's
//! instances between the check and the deletion, so a wrong password changes nothing.

use clawfleet_kit::identity::{Caller, Role};

use crate::{
    accounts::{Accounts, truncate_bytes},
    error::AuthError,
    providers::Provider,
    sessions::now_ms,
    store::{DeletedUser, UserRecord},
};

/// A provider token older than this is not fresh enough to delete an account with.
pub const MAX_PROVIDER_TOKEN_AGE_SECONDS: i64 = 10 * 60;

/// One proof of identity.
#[derive(Debug, Clone, Copy)]
pub enum Proof<'a> {
    Password(&'a str),
    Provider {
        provider: Provider,
        token: &'a str,
        nonce: &'a str,
    },
}

impl<'a> Proof<'a> {
    /// Reads the request's fields: a password, or a provider name with its token.
    pub fn from_fields(
        password: &'a str,
        provider: &'a str,
        token: &'a str,
        nonce: &'a str,
    ) -> Result<Self, AuthError> {
        match (password.is_empty(), provider.trim()) {
            (false, "") => Ok(Proof::Password(password)),
            (true, "google") => Ok(Proof::Provider {
                provider: Provider::Google,
                token,
                nonce,
            }),
            (true, "apple") => Ok(Proof::Provider {
                provider: Provider::Apple,
                token,
                nonce,
            }),
            (false, _) => Err(AuthError::InvalidArgument(
                "send either a password or a provider token, not both",
            )),
            (true, "") => Err(AuthError::InvalidArgument(
                "confirm with your password, or a fresh google or apple token",
            )),
            (true, _) => Err(AuthError::InvalidArgument(
                "provider must be google or apple",
            )),
        }
    }
}

impl Accounts {
    /// Checks that the calling app user just proved who they are; changes nothing.
    pub async fn verify_reauthentication(
        &self,
        caller: &Caller,
        proof: Proof<'_>,
    ) -> Result<UserRecord, AuthError> {
        if caller.role != Role::App {
            return Err(AuthError::InvalidArgument(
                "only an app user can confirm their own identity",
            ));
        }
        let user = self
            .store
            .user_by_id(&caller.subject)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        match proof {
            Proof::Password(password) => {
                // Without a stored hash, the dummy hash is checked (and fails) so the
                // time does not tell whether the account has a password.
                let stored = user
                    .password_hash()
                    .filter(|_| password.len() <= crate::validation::MAX_PASSWORD_BYTES);
                let bounded = truncate_bytes(password, crate::validation::MAX_PASSWORD_BYTES);
                if !self.passwords.verify(bounded, stored).await? {
                    return Err(AuthError::ReauthenticationFailed);
                }
            }
            Proof::Provider {
                provider,
                token,
                nonce,
            } => {
                let verifier = match provider {
                    Provider::Google => &self.google,
                    Provider::Apple => &self.apple,
                };
                let identity = verifier.verify(token.trim(), nonce.trim()).await?;
                let fresh = identity.issued_at.is_some_and(|issued_at| {
                    now_ms() / 1000 - issued_at <= MAX_PROVIDER_TOKEN_AGE_SECONDS
                });
                let linked = self
                    .store
                    .user_by_identity(provider.as_str(), &identity.subject)
                    .await?
                    .is_some_and(|linked| linked.id == user.id);
                if !fresh || !linked {
                    return Err(AuthError::ReauthenticationFailed);
                }
            }
        }
        Ok(user)
    }

    /// Checks the proof again, then deletes the calling app user with everything the
    /// auth store holds of them.
    pub async fn delete_account(
        &self,
        caller: &Caller,
        proof: Proof<'_>,
    ) -> Result<DeletedUser, AuthError> {
        let user = self.verify_reauthentication(caller, proof).await?;
        let deleted = self
            .store
            .delete_user(&user.id)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        tracing::info!(
            user_id = %user.id,
            identities = deleted.identities,
            refresh_tokens = deleted.refresh_tokens,
            "account deleted"
        );
        Ok(deleted)
    }
}

//! The account operations behind the RPCs: sign-up, log-in, sign-in with a provider,
//! refresh, log-out and profile reads. Input is validated here, before any query.

use std::sync::Arc;

use clawfleet_kit::identity::{Caller, Role};

use crate::{
    error::AuthError,
    password::Passwords,
    providers::{IdTokenVerifier, Provider, VerifiedIdentity},
    sessions::{SessionTokens, Sessions, now_ms},
    store::{AuthStore, EmailClaim, NewUser, StoreError, UserRecord},
    subscriptions::Subscriptions,
    validation::{Email, check_new_password, clean_name},
};

/// A user as callers see it.
#[derive(Debug, Clone)]
pub struct UserProfile {
    pub user: UserRecord,
    /// `email`, `google`, `apple`: how the user can sign in.
    pub providers: Vec<String>,
}

/// What every successful sign-in returns.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub tokens: SessionTokens,
    pub profile: UserProfile,
}

/// Everything the handlers need.
#[derive(Debug)]
pub struct Accounts {
    pub store: Arc<AuthStore>,
    pub passwords: Passwords,
    pub sessions: Sessions,
    pub google: IdTokenVerifier,
    pub apple: IdTokenVerifier,
    pub subscriptions: Subscriptions,
}

impl Accounts {
    async fn profile(&self, user: UserRecord) -> Result<UserProfile, AuthError> {
        let providers = self.store.providers_of(&user).await?;
        Ok(UserProfile { user, providers })
    }

    async fn signed_in(&self, user: UserRecord) -> Result<SignedIn, AuthError> {
        let tokens = self.sessions.start(&user).await?;
        Ok(SignedIn {
            tokens,
            profile: self.profile(user).await?,
        })
    }

    /// Creates an email-and-password account and signs it in.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<SignedIn, AuthError> {
        let email = Email::parse(email).map_err(AuthError::InvalidArgument)?;
        check_new_password(password).map_err(AuthError::InvalidArgument)?;
        let name = clean_name(name).map_err(AuthError::InvalidArgument)?;
        // Cheap check first so a taken email does not cost a hash; the unique
        // constraint still decides when two sign-ups race.
        if self.store.user_by_email(&email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let password_hash = self.passwords.hash(password).await?;
        let user = self
            .store
            .insert_user(NewUser {
                email: Some(email),
                name,
                password_hash: Some(password_hash),
                email_verified: false,
                created_at_ms: now_ms(),
            })
            .await?;
        tracing::info!(user_id = %user.id, "user signed up");
        self.signed_in(user).await
    }

    /// Signs in with email and password. An unknown email, a malformed one, an
    /// account without a password and a wrong password all give the same error after
    /// the same amount of hashing work.
    pub async fn log_in(&self, email: &str, password: &str) -> Result<SignedIn, AuthError> {
        if password.is_empty() {
            return Err(AuthError::InvalidArgument("password is required"));
        }
        if email.trim().is_empty() {
            return Err(AuthError::InvalidArgument("email is required"));
        }
        let user = match Email::parse(email) {
            Ok(email) => self.store.user_by_email(&email).await?,
            Err(_) => None,
        };
        // Over-long passwords are checked against the dummy hash too (and fail), so
        // the hashing input stays bounded without a distinguishable early return.
        let stored_hash = user
            .as_ref()
            .and_then(UserRecord::password_hash)
            .filter(|_| password.len() <= crate::validation::MAX_PASSWORD_BYTES);
        let bounded_password = truncate_bytes(password, crate::validation::MAX_PASSWORD_BYTES);
        let matched = self.passwords.verify(bounded_password, stored_hash).await?;
        match user {
            Some(user) if matched => self.signed_in(user).await,
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// Signs in with a Google ID token or an Apple identity token, creating the user
    /// on first use. `name` is what the app sends (Apple gives it only once).
    pub async fn sign_in_with(
        &self,
        provider: Provider,
        token: &str,
        nonce: &str,
        name: &str,
    ) -> Result<SignedIn, AuthError> {
        if token.trim().is_empty() {
            return Err(AuthError::InvalidArgument("token is required"));
        }
        let request_name = clean_name(name).map_err(AuthError::InvalidArgument)?;
        let verifier = match provider {
            Provider::Google => &self.google,
            Provider::Apple => &self.apple,
        };
        let identity = verifier.verify(token.trim(), nonce.trim()).await?;
        let user = self.user_for_identity(identity, request_name).await?;
        self.signed_in(user).await
    }

    async fn user_for_identity(
        &self,
        identity: VerifiedIdentity,
        request_name: String,
    ) -> Result<UserRecord, AuthError> {
        let provider = identity.provider.as_str();
        if let Some(user) = self
            .store
            .user_by_identity(provider, &identity.subject)
            .await?
        {
            return Ok(user);
        }
        if let Some(email) = &identity.email
            && let Some(existing) = self.store.user_by_email(email).await?
        {
            if !identity.email_verified {
                return Err(AuthError::UnverifiedEmailInUse(identity.provider));
            }
            let linked = self
                .store
                .link_identity_with_verified_email(
                    &existing.id,
                    provider,
                    &identity.subject,
                    now_ms(),
                )
                .await;
            return match linked {
                Ok(claim) => {
                    if let EmailClaim::ClaimedUnverifiedAccount { revoked_tokens } = claim {
                        tracing::warn!(
                            user_id = %existing.id,
                            provider,
                            revoked_tokens,
                            "identity linked to an account with an unverified email: \
                             the account's password and sessions were revoked"
                        );
                    } else {
                        tracing::info!(user_id = %existing.id, provider, "identity linked");
                    }
                    self.user_by_id(&existing.id).await
                }
                Err(StoreError::IdentityTaken) => self.linked_by_a_racing_request(&identity).await,
                Err(error) => Err(error.into()),
            };
        }
        let name = identity
            .name
            .as_deref()
            .and_then(|name| clean_name(name).ok())
            .filter(|name| !name.is_empty())
            .unwrap_or(request_name);
        // An email the provider did not verify is not recorded: claiming it would let
        // whoever controls that provider account block the address's real owner.
        let new_user = NewUser {
            email: identity.email.clone().filter(|_| identity.email_verified),
            name,
            password_hash: None,
            email_verified: identity.email_verified,
            created_at_ms: now_ms(),
        };
        match self
            .store
            .insert_user_with_identity(new_user, provider, &identity.subject)
            .await
        {
            Ok(user) => {
                tracing::info!(user_id = %user.id, provider, "user signed up");
                Ok(user)
            }
            Err(StoreError::IdentityTaken) => self.linked_by_a_racing_request(&identity).await,
            Err(error) => Err(error.into()),
        }
    }

    /// Two first sign-ins with the same provider account raced; the other one won.
    async fn linked_by_a_racing_request(
        &self,
        identity: &VerifiedIdentity,
    ) -> Result<UserRecord, AuthError> {
        self.store
            .user_by_identity(identity.provider.as_str(), &identity.subject)
            .await?
            .ok_or_else(|| AuthError::Internal("identity vanished after a conflict".to_owned()))
    }

    async fn user_by_id(&self, user_id: &str) -> Result<UserRecord, AuthError> {
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// Rotates a refresh token into a new pair.
    pub async fn refresh(&self, refresh_token: &str) -> Result<SignedIn, AuthError> {
        let (tokens, user) = self.sessions.refresh(refresh_token).await?;
        Ok(SignedIn {
            tokens,
            profile: self.profile(user).await?,
        })
    }

    /// Revokes the family of `refresh_token`. App callers may only revoke their own.
    pub async fn log_out(&self, caller: &Caller, refresh_token: &str) -> Result<bool, AuthError> {
        let owner = (caller.role == Role::App).then_some(caller.subject.as_str());
        self.sessions.log_out(refresh_token, owner).await
    }

    /// A user's profile. Empty `user_id` means the calling app user; app users may
    /// only read themselves, and anyone else's id is NotFound, as if it did not exist.
    pub async fn get_user(&self, caller: &Caller, user_id: &str) -> Result<UserProfile, AuthError> {
        let user_id = user_id.trim();
        let wanted = match (caller.role, user_id.is_empty()) {
            (Role::App, true) => caller.subject.as_str(),
            (Role::App, false) if user_id != caller.subject => {
                return Err(AuthError::UserNotFound);
            }
            (_, true) => {
                return Err(AuthError::RequiresUserId(
                    "user_id is required for callers that are not app users",
                ));
            }
            (_, false) => user_id,
        };
        let user = self.user_by_id(wanted).await?;
        self.profile(user).await
    }
}

/// The longest prefix of `text` of at most `limit` bytes that ends on a char boundary.
pub(crate) fn truncate_bytes(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

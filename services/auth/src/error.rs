//! The auth service's errors and their one mapping to the platform's error codes.
//! Messages are lowercase and safe to show: never a password, token, hash or URL.

use clawfleet_kit::{
    access_token::AccessTokenError,
    error::{ErrorCode, ServiceError},
};

use crate::{
    password::PasswordError,
    providers::{IdTokenError, Provider},
    store::StoreError,
};

/// Everything an auth operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    InvalidArgument(&'static str),
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The same for an unknown email and a wrong password, so neither is revealed.
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("invalid or expired refresh token")]
    InvalidRefreshToken,
    #[error(transparent)]
    IdToken(#[from] IdTokenError),
    /// The provider did not verify the email, and an account already uses it: linking
    /// would hand that account to whoever controls the provider account.
    #[error(
        "an account with this email already exists and {0} has not verified the email; sign in with that account instead"
    )]
    UnverifiedEmailInUse(Provider),
    #[error("user not found")]
    UserNotFound,
    /// The password or provider token sent to confirm a deletion was not right, not
    /// fresh, or not linked to the account.
    #[error("re-authentication failed: check the password, or sign in with the provider again")]
    ReauthenticationFailed,
    #[error("{0}")]
    RequiresUserId(&'static str),
    /// Logged where it is converted; the caller sees only "internal error".
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::InvalidArgument(_) | AuthError::RequiresUserId(_) => {
                ErrorCode::InvalidArgument
            }
            AuthError::EmailTaken | AuthError::UnverifiedEmailInUse(_) => ErrorCode::AlreadyExists,
            AuthError::InvalidCredentials
            | AuthError::InvalidRefreshToken
            | AuthError::ReauthenticationFailed => ErrorCode::Unauthenticated,
            AuthError::IdToken(IdTokenError::NotConfigured(_)) => ErrorCode::FailedPrecondition,
            AuthError::IdToken(IdTokenError::Invalid(_)) => ErrorCode::Unauthenticated,
            AuthError::IdToken(IdTokenError::KeysUnavailable(_)) => ErrorCode::Unavailable,
            AuthError::IdToken(IdTokenError::NonceRequired(_)) => ErrorCode::InvalidArgument,
            AuthError::UserNotFound => ErrorCode::NotFound,
            AuthError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => AuthError::EmailTaken,
            other => AuthError::Internal(other.to_string()),
        }
    }
}

impl From<PasswordError> for AuthError {
    fn from(error: PasswordError) -> Self {
        AuthError::Internal(error.to_string())
    }
}

impl From<AccessTokenError> for AuthError {
    fn from(error: AccessTokenError) -> Self {
        AuthError::Internal(error.to_string())
    }
}

impl From<AuthError> for ServiceError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Internal(detail) => ServiceError::internal(detail),
            other => ServiceError::new(other.code(), other.to_string()),
        }
    }
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        ServiceError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_stay_internal() {
        let error = ServiceError::from(AuthError::Internal("pool timed out at 10.0.0.1".into()));
        assert_eq!(error.code, ErrorCode::Internal);
        assert_eq!(error.message, "internal error");
    }

    #[test]
    fn provider_errors_map_to_the_spec_codes() {
        let not_configured = ServiceError::from(AuthError::from(IdTokenError::NotConfigured(
            Provider::Google,
        )));
        assert_eq!(not_configured.code, ErrorCode::FailedPrecondition);
        assert_eq!(not_configured.message, "google sign-in is not configured");
        let invalid = ServiceError::from(AuthError::from(IdTokenError::Invalid(Provider::Apple)));
        assert_eq!(invalid.code, ErrorCode::Unauthenticated);
        assert_eq!(invalid.message, "invalid apple token");
    }
}

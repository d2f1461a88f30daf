//! Verification of Google ID tokens and Apple identity tokens: RS256 signatures
//! against the provider's JWKS, then `aud`, `iss`, `exp` and the nonce.

use clawfleet_kit::secret::constant_time_eq;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde::Deserialize;

use super::{
    Provider,
    jwks::{JwksCache, JwksError},
};
use crate::{digest::sha256_hex, validation::Email};

/// Largest ID token accepted (real ones are ~1 KiB); bounds parsing work.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew tolerated on the provider's `exp`.
const EXPIRY_LEEWAY_SECONDS: u64 = 30;

/// What a valid ID token says about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub provider: Provider,
    /// The provider's stable account id (`sub`).
    pub subject: String,
    /// The email, when present and of a shape we accept.
    pub email: Option<Email>,
    /// True only when the provider says it verified `email`.
    pub email_verified: bool,
    pub name: Option<String>,
    /// The token's `iat` (Unix seconds), when it has one: re-authentication wants a
    /// fresh token.
    pub issued_at: Option<i64>,
}

/// Why a token was refused. The messages name the provider but never echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("{0} sign-in is not configured")]
    NotConfigured(Provider),
    #[error("invalid {0} token")]
    Invalid(Provider),
    #[error("{0} signing keys are unavailable")]
    KeysUnavailable(Provider),
    #[error("{0} sign-in requires a nonce: send the nonce the app gave {0}")]
    NonceRequired(Provider),
}

/// `email_verified` is a JSON bool for Google, and a bool or the string `"true"` for
/// Apple.
#[derive(Deserialize)]
#[serde(untagged)]
enum FlexibleBool {
    Bool(bool),
    Text(String),
}

impl FlexibleBool {
    fn is_true(&self) -> bool {
        match self {
            FlexibleBool::Bool(value) => *value,
            FlexibleBool::Text(text) => text == "true",
        }
    }
}

#[derive(Deserialize)]
struct ProviderClaims {
    sub: String,
    email: Option<String>,
    email_verified: Option<FlexibleBool>,
    nonce: Option<String>,
    name: Option<String>,
    iat: Option<i64>,
}

/// Verifies one provider's tokens.
#[derive(Debug)]
pub struct IdTokenVerifier {
    provider: Provider,
    /// `None` when the provider's client id is not configured: sign-in is refused.
    validation: Option<Validation>,
    jwks: JwksCache,
    /// Refuse tokens checked without a nonce (the app's configuration says it always
    /// sends one), so an ID token taken from another app cannot be replayed here.
    require_nonce: bool,
}

impl IdTokenVerifier {
    pub fn new(provider: Provider, client_id: Option<&str>, jwks: JwksCache) -> Self {
        let validation = client_id.map(|client_id| {
            let mut validation = Validation::new(Algorithm::RS256);
            validation.algorithms = vec![Algorithm::RS256];
            validation.leeway = EXPIRY_LEEWAY_SECONDS;
            validation.set_audience(&[client_id]);
            validation.set_issuer(provider.issuers());
            // Without these, jsonwebtoken skips the aud/iss checks when the claim is absent.
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation
        });
        Self {
            provider,
            validation,
            jwks,
            require_nonce: false,
        }
    }

    /// This verifier, refusing sign-ins without a nonce when `required`.
    pub fn requiring_nonce(mut self, required: bool) -> Self {
        self.require_nonce = required;
        self
    }

    /// The JWKS cache (tests read its fetch count).
    pub fn jwks(&self) -> &JwksCache {
        &self.jwks
    }

    /// Checks `token` and, when `expected_nonce` is not empty, its nonce. The span names
    /// the provider and, on failure, the error's kind (never the token or its claims).
    #[tracing::instrument(
        name = "id_token.verify",
        skip_all,
        fields(otel.name = "id token verify", clawfleet.auth.provider = self.provider.as_str()),
        err(Display)
    )]
    pub async fn verify(
        &self,
        token: &str,
        expected_nonce: &str,
    ) -> Result<VerifiedIdentity, IdTokenError> {
        let provider = self.provider;
        let invalid = || IdTokenError::Invalid(provider);
        let validation = self
            .validation
            .as_ref()
            .ok_or(IdTokenError::NotConfigured(provider))?;
        if self.require_nonce && expected_nonce.is_empty() {
            return Err(IdTokenError::NonceRequired(provider));
        }
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(invalid());
        }
        let header = decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::RS256 {
            return Err(invalid());
        }
        let kid = header.kid.ok_or_else(invalid)?;
        let key = self.jwks.key(&kid).await.map_err(|error| match error {
            JwksError::UnknownKey => invalid(),
            JwksError::Fetch(_) => IdTokenError::KeysUnavailable(provider),
        })?;
        let claims = decode::<ProviderClaims>(token, &key, validation)
            .map_err(|error| {
                tracing::debug!(provider = %provider, reason = ?error.kind(), "id token refused");
                invalid()
            })?
            .claims;
        if claims.sub.is_empty() {
            return Err(invalid());
        }
        if !expected_nonce.is_empty() {
            let token_nonce = claims.nonce.as_deref().ok_or_else(invalid)?;
            if !nonce_matches(provider, token_nonce, expected_nonce) {
                return Err(invalid());
            }
        }
        let email = claims
            .email
            .as_deref()
            .and_then(|email| Email::parse(email).ok());
        let email_verified = email.is_some()
            && claims
                .email_verified
                .as_ref()
                .is_some_and(FlexibleBool::is_true);
        Ok(VerifiedIdentity {
            provider,
            subject: claims.sub,
            email,
            email_verified,
            name: claims.name.filter(|name| !name.trim().is_empty()),
            issued_at: claims.iat,
        })
    }
}

/// Google echoes the nonce the app passed to it. Apple's native flow has the app pass
/// SHA-256(raw nonce) as hex to Apple, which puts that digest in the token while the
/// app sends us the raw value; other Apple clients pass the raw nonce. So for Apple
/// the token's nonce may equal the request's nonce or its lowercase hex SHA-256.
fn nonce_matches(provider: Provider, token_nonce: &str, expected_nonce: &str) -> bool {
    if constant_time_eq(token_nonce.as_bytes(), expected_nonce.as_bytes()) {
        return true;
    }
    provider == Provider::Apple
        && constant_time_eq(
            token_nonce.as_bytes(),
            sha256_hex(expected_nonce).as_bytes(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_nonces_must_match_exactly() {
        assert!(nonce_matches(Provider::Google, "n-1", "n-1"));
        assert!(!nonce_matches(Provider::Google, &sha256_hex("n-1"), "n-1"));
        assert!(!nonce_matches(Provider::Google, "n-2", "n-1"));
    }

    #[test]
    fn apple_nonces_may_be_raw_or_hashed() {
        assert!(nonce_matches(Provider::Apple, "n-1", "n-1"));
        assert!(nonce_matches(Provider::Apple, &sha256_hex("n-1"), "n-1"));
        assert!(!nonce_matches(Provider::Apple, &sha256_hex("n-2"), "n-1"));
        assert!(!nonce_matches(Provider::Apple, "n-1", &sha256_hex("n-1")));
    }

    #[test]
    fn email_verified_accepts_bools_and_the_string_true() {
        let parse = |json: &str| {
            serde_json::from_str::<FlexibleBool>(json)
                .unwrap()
                .is_true()
        };
        assert!(parse("true"));
        assert!(parse("\"true\""));
        assert!(!parse("false"));
        assert!(!parse("\"false\""));
        assert!(!parse("\"yes\""));
    }
}

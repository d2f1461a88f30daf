//! The app's access token: an HS256 JWT that the auth service issues and the edge
//! verifies locally on every request (no round trip), so both sides share this code
//! and the `JWT_SECRET`.
//!
//! Only HS256 is accepted: the algorithm is pinned in the validation, so a token that
//! names `none`, an RSA or ECDSA algorithm, or another HMAC size is refused before any
//! signature check (no algorithm confusion).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode, errors::ErrorKind,
};
use serde::{Deserialize, Serialize};

use crate::{
    plan::Plan,
    secret::{Redacted, SecretString, random_token},
};

/// Lifetime of an access token (docs/product/app-api.md#tokens: 15 minutes).
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Shortest accepted HMAC secret: HS256 keys shorter than the hash size are guessable.
pub const MIN_SECRET_BYTES: usize = 32;
/// Clock skew tolerated when checking `exp`; kept small so expiry means expiry.
pub const EXPIRY_LEEWAY_SECONDS: u64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// The user's plan (`free`, `pro`, `enterprise`).
    pub plan: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
}

/// A freshly signed access token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The compact JWT: a bearer credential, so kept out of logs.
    pub token: SecretString,
    /// Seconds until it expires (900).
    pub expires_in: u32,
    /// Its `jti` claim.
    pub jti: String,
}

/// Why a secret was refused or a token could not be issued or verified. Messages are
/// lowercase and never contain the token or the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    #[error("jwt secret must be at least {MIN_SECRET_BYTES} bytes, got {length}")]
    SecretTooShort { length: usize },
    #[error("access token expired")]
    Expired,
    #[error("invalid access token")]
    Invalid,
    #[error("cannot sign access token: {0}")]
    Signing(String),
}

/// The signing and verifying keys, with the validation rules built once: `verify`
/// runs on every app request and only does the HMAC and the claim checks. Both keys
/// are the shared secret, so they are [`Redacted`].
#[derive(Clone, Debug)]
pub struct AccessTokenKeys {
    encoding: Redacted<EncodingKey>,
    decoding: Redacted<DecodingKey>,
    validation: Validation,
    header: Header,
}

impl AccessTokenKeys {
    /// Keys from the shared HMAC secret; refuses secrets shorter than 32 bytes.
    pub fn from_secret(secret: &[u8]) -> Result<Self, AccessTokenError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AccessTokenError::SecretTooShort {
                length: secret.len(),
            });
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = EXPIRY_LEEWAY_SECONDS;
        validation.validate_exp = true;
        // `iat`, `plan` and `jti` are required by deserialising into `AccessClaims`.
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            encoding: Redacted(EncodingKey::from_secret(secret)),
            decoding: Redacted(DecodingKey::from_secret(secret)),
            validation,
            header: Header::new(Algorithm::HS256),
        })
    }

    /// Signs an access token for `user_id` on `plan`, valid for 15 minutes from `now`.
    pub fn issue(
        &self,
        user_id: &str,
        plan: Plan,
        now: SystemTime,
    ) -> Result<IssuedToken, AccessTokenError> {
        let issued_at = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| AccessTokenError::Signing("clock is before 1970".to_owned()))?
            .as_secs();
        let claims = AccessClaims {
            sub: user_id.to_owned(),
            plan: plan.as_str().to_owned(),
            iat: issued_at,
            exp: issued_at + ACCESS_TOKEN_TTL.as_secs(),
            jti: random_token(16),
        };
        let token = encode(&self.header, &claims, &self.encoding)
            .map_err(|error| AccessTokenError::Signing(error.to_string()))?;
        Ok(IssuedToken {
            token: token.into(),
            expires_in: ACCESS_TOKEN_TTL.as_secs() as u32,
            jti: claims.jti,
        })
    }

    /// Checks the signature (HS256 only), the expiry and that every claim is present.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, AccessTokenError> {
        let data =
            decode::<AccessClaims>(token, &self.decoding, &self.validation).map_err(|error| {
                match error.kind() {
                    ErrorKind::ExpiredSignature => AccessTokenError::Expired,
                    _ => AccessTokenError::Invalid,
                }
            })?;
        if data.claims.sub.is_empty() {
            return Err(AccessTokenError::Invalid);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use serde_json::json;

    use super::*;
    use crate::secret::ExposeSecret;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn keys() -> AccessTokenKeys {
        AccessTokenKeys::from_secret(SECRET).unwrap()
    }

    fn now_seconds() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn signed_with(algorithm: Algorithm, claims: &serde_json::Value) -> String {
        encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn valid_claims() -> serde_json::Value {
        let now = now_seconds();
        json!({"sub": "u1", "plan": "free", "iat": now, "exp": now + 600, "jti": "j"})
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let keys = keys();
        let issued = keys
            .issue("user-1", crate::plan::Plan::Pro, SystemTime::now())
            .unwrap();
        assert_eq!(issued.expires_in, 900);
        let claims = keys.verify(issued.token.expose_secret()).unwrap();
        assert_eq!(claims.sub, "user-1");
        assert_eq!(claims.plan, "pro");
        assert_eq!(claims.jti, issued.jti);
        assert_eq!(claims.exp - claims.iat, 900);
        let again = keys
            .issue("user-1", crate::plan::Plan::Pro, SystemTime::now())
            .unwrap();
        assert_ne!(again.jti, issued.jti);
    }

    #[test]
    fn short_secrets_are_refused() {
        let error = AccessTokenKeys::from_secret(b"short").unwrap_err();
        assert_eq!(error, AccessTokenError::SecretTooShort { length: 5 });
        assert_eq!(
            error.to_string(),
            "jwt secret must be at least 32 bytes, got 5"
        );
        assert!(AccessTokenKeys::from_secret(&[7u8; 32]).is_ok());
    }

    #[test]
    fn debug_output_hides_the_secret_and_the_token() {
        let keys = keys();
        let printed = format!("{keys:?}");
        let secret_as_bytes = format!("{:?}", &SECRET[..4]);
        assert!(!printed.contains("0123456789"));
        assert!(!printed.contains(secret_as_bytes.trim_end_matches(']')));
        assert!(printed.contains("HS256") && printed.contains("[redacted]"));
        let issued = keys
            .issue("u", crate::plan::Plan::Free, SystemTime::now())
            .unwrap();
        assert!(!format!("{issued:?}").contains(issued.token.expose_secret()));
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(valid_claims().to_string());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert_eq!(keys().verify(&token), Err(AccessTokenError::Invalid));
        }
    }

    #[test]
    fn an_rs256_header_is_refused_even_with_an_hmac_signature() {
        // Algorithm confusion: an HMAC over the token made with the shared secret but
        // labelled RS256 must not pass.
        let genuine = signed_with(Algorithm::HS256, &valid_claims());
        let (_, rest) = genuine.split_once('.').unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let token = format!("{header}.{rest}");
        assert_eq!(keys().verify(&token), Err(AccessTokenError::Invalid));
    }

    #[test]
    fn other_hmac_sizes_are_refused() {
        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            let token = signed_with(algorithm, &valid_claims());
            assert_eq!(keys().verify(&token), Err(AccessTokenError::Invalid));
        }
    }

    #[test]
    fn a_tampered_signature_or_payload_is_refused() {
        let token = keys()
            .issue("u1", crate::plan::Plan::Free, SystemTime::now())
            .unwrap()
            .token
            .expose_secret()
            .to_owned();
        let mut bytes = token.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered_signature = String::from_utf8(bytes).unwrap();
        assert_eq!(
            keys().verify(&tampered_signature),
            Err(AccessTokenError::Invalid)
        );

        let parts: Vec<&str> = token.split('.').collect();
        let mut claims = valid_claims();
        claims["plan"] = json!("enterprise");
        let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(keys().verify(&forged), Err(AccessTokenError::Invalid));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = AccessTokenKeys::from_secret(&[9u8; 40]).unwrap();
        let token = other
            .issue("u1", crate::plan::Plan::Free, SystemTime::now())
            .unwrap()
            .token;
        assert_eq!(
            keys().verify(token.expose_secret()),
            Err(AccessTokenError::Invalid)
        );
    }

    #[test]
    fn expired_tokens_are_refused_with_little_leeway() {
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        let token = keys()
            .issue("u1", crate::plan::Plan::Free, long_ago)
            .unwrap()
            .token;
        assert_eq!(
            keys().verify(token.expose_secret()),
            Err(AccessTokenError::Expired)
        );

        let now = now_seconds();
        let just_expired =
            json!({"sub": "u1", "plan": "free", "iat": now - 900, "exp": now - 10, "jti": "j"});
        let token = signed_with(Algorithm::HS256, &just_expired);
        assert_eq!(keys().verify(&token), Err(AccessTokenError::Expired));
    }

    #[test]
    fn tokens_missing_a_claim_are_refused() {
        for claim in ["sub", "plan", "iat", "exp", "jti"] {
            let mut claims = valid_claims();
            claims.as_object_mut().unwrap().remove(claim);
            let token = signed_with(Algorithm::HS256, &claims);
            assert_eq!(
                keys().verify(&token),
                Err(AccessTokenError::Invalid),
                "missing {claim}"
            );
        }
        let mut claims = valid_claims();
        claims["sub"] = json!("");
        let token = signed_with(Algorithm::HS256, &claims);
        assert_eq!(keys().verify(&token), Err(AccessTokenError::Invalid));
    }

    #[test]
    fn garbage_is_refused() {
        for token in ["", "a.b.c", "not a token", "..", "eyJhbGciOiJIUzI1NiJ9.."] {
            assert_eq!(keys().verify(token), Err(AccessTokenError::Invalid));
        }
    }
}

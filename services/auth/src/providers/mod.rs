//! Sign-in with Google and Apple: which provider, its issuers and key URLs, and the
//! verifiers built from configuration.

pub mod id_token;
pub mod jwks;

use std::fmt;

pub use id_token::{IdTokenError, IdTokenVerifier, VerifiedIdentity};
pub use jwks::{JwksCache, JwksError};

/// Google's published signing keys.
pub const DEFAULT_GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// Apple's published signing keys.
pub const DEFAULT_APPLE_JWKS_URL: &str = "https://appleid.apple.com/auth/keys";

/// An identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Google,
    Apple,
}

impl Provider {
    /// The name stored in `identities.provider` and listed in `User.providers`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Apple => "apple",
        }
    }

    /// The `iss` values its tokens may carry. Google documents both spellings.
    pub fn issuers(self) -> &'static [&'static str] {
        match self {
            Provider::Google => &["accounts.google.com", "https://accounts.google.com"],
            Provider::Apple => &["https://appleid.apple.com"],
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

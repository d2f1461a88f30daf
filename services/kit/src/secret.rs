//! Secrets: random tokens, constant-time comparison, and [`Redacted`], the one wrapper
//! that keeps a non-string secret out of `Debug` output. String secrets are
//! [`secrecy::SecretString`] (re-exported here), whose `Debug` is redacted too, so
//! structs holding secrets derive `Debug` instead of hand-writing it.

use std::{fmt, ops::Deref};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand_core::{OsRng, RngCore};
pub use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A random URL-safe token carrying `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// Compares two secrets without leaking, through timing, where they differ or how long
/// the expected one is: both sides are hashed to fixed-length digests first, which
/// are then compared in constant time.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    let left = Sha256::digest(left);
    let right = Sha256::digest(right);
    left.ct_eq(&right).into()
}

/// A value whose `Debug` output is `[redacted]`: keys and other secrets that are not
/// strings (signing keys, decoded credentials). Dereferences to the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redacted<T>(pub T);

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("[redacted]")
    }
}

/// Shared string secrets (a clone per connection stays cheap) built from text.
impl From<String> for Redacted<std::sync::Arc<str>> {
    fn from(text: String) -> Self {
        Self(text.into())
    }
}

impl From<&str> for Redacted<std::sync::Arc<str>> {
    fn from(text: &str) -> Self {
        Self(text.into())
    }
}

impl<T> Deref for Redacted<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let first = random_token(32);
        let second = random_token(32);
        assert_ne!(first, second);
        assert_eq!(first.len(), 43);
        assert!(
            first
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn comparison_matches_only_equal_secrets() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn redacted_values_never_show_in_debug_output() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            key: Redacted<Vec<u8>>,
            token: SecretString,
        }
        let holder = Holder {
            key: Redacted(b"signing-key".to_vec()),
            token: SecretString::from("token-value"),
        };
        let shown = format!("{holder:?}");
        assert!(!shown.contains("signing-key") && !shown.contains("token-value"));
        assert_eq!(holder.key.len(), 11);
        assert_eq!(holder.token.expose_secret(), "token-value");
    }
}

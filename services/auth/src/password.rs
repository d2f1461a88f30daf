//! Password hashing: argon2id with parameters at or above the OWASP minimum, run on
//! the blocking pool (it takes tens of milliseconds and ~19 MiB of memory) behind a
//! semaphore, so a burst of log-ins cannot exhaust memory or starve the runtime.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use clawfleet_kit::secret::Redacted;
use tokio::sync::Semaphore;

/// Memory cost in KiB (OWASP 2023 minimum for argon2id: 19 MiB).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Iterations (OWASP minimum with 19 MiB: 2).
pub const ARGON2_ITERATIONS: u32 = 2;
/// Lanes.
pub const ARGON2_PARALLELISM: u32 = 1;

/// Why hashing failed; never carries the password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("password hashing task failed")]
    Task,
}

/// Hashes and verifies passwords with bounded concurrency.
#[derive(Clone, Debug)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so that case costs the same time as
    /// a wrong password and does not reveal which emails have accounts.
    dummy_hash: Redacted<Arc<str>>,
}

impl Passwords {
    /// The production parameters; computes the dummy hash once (on the blocking pool).
    pub async fn new() -> Result<Self, PasswordError> {
        let params = Params::new(
            ARGON2_MEMORY_KIB,
            ARGON2_ITERATIONS,
            ARGON2_PARALLELISM,
            None,
        )
        .map_err(|error| PasswordError::Hashing(error.to_string()))?;
        let concurrency = std::thread::available_parallelism()
            .map(|count| count.get())
            .unwrap_or(2)
            .clamp(1, 8);
        let permits = Arc::new(Semaphore::new(concurrency));
        let dummy_params = params.clone();
        let dummy_hash = run_blocking(&permits, move || {
            hash_with(&dummy_params, b"dummy password for unknown accounts")
        })
        .await??;
        Ok(Self {
            params,
            permits,
            dummy_hash: Redacted(Arc::from(dummy_hash)),
        })
    }

    /// The argon2id PHC string of `password` with a fresh random salt.
    #[tracing::instrument(name = "password.hash", skip_all, fields(otel.name = "password hash"))]
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let params = self.params.clone();
        let password = password.to_owned();
        run_blocking(&self.permits, move || {
            hash_with(&params, password.as_bytes())
        })
        .await?
    }

    /// True when `password` matches `stored_hash`. With no stored hash (unknown email,
    /// or an account without a password) it verifies against a dummy hash and returns
    /// false, taking the same time as a wrong password.
    #[tracing::instrument(
        name = "password.verify",
        skip_all,
        fields(otel.name = "password verify")
    )]
    pub async fn verify(
        &self,
        password: &str,
        stored_hash: Option<&str>,
    ) -> Result<bool, PasswordError> {
        let has_hash = stored_hash.is_some();
        let hash = stored_hash
            .map(str::to_owned)
            .unwrap_or_else(|| self.dummy_hash.to_string());
        let password = password.to_owned();
        let matched = run_blocking(&self.permits, move || {
            // Parameters come from the stored PHC string, so old hashes keep verifying
            // after the constants are raised.
            Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await?;
        Ok(has_hash && matched)
    }
}

fn hash_with(params: &Params, password: &[u8]) -> Result<String, PasswordError> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordError::Hashing(error.to_string()))
}

async fn run_blocking<T: Send + 'static>(
    permits: &Semaphore,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let _permit = permits.acquire().await.map_err(|_| PasswordError::Task)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| PasswordError::Task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_declared_parameters() {
        let passwords = Passwords::new().await.unwrap();
        let hash = passwords.hash("correct horse").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("correct horse"));
        let again = passwords.hash("correct horse").await.unwrap();
        assert_ne!(hash, again, "each hash has its own salt");
    }

    #[tokio::test]
    async fn only_the_right_password_verifies() {
        let passwords = Passwords::new().await.unwrap();
        let hash = passwords.hash("correct horse").await.unwrap();
        assert!(
            passwords
                .verify("correct horse", Some(&hash))
                .await
                .unwrap()
        );
        assert!(!passwords.verify("wrong horse", Some(&hash)).await.unwrap());
        assert!(!passwords.verify("correct horse", None).await.unwrap());
        assert!(
            !passwords
                .verify("dummy password for unknown accounts", None)
                .await
                .unwrap(),
            "the dummy hash never signs anyone in"
        );
        assert!(
            !passwords
                .verify("x", Some("not a phc string"))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn debug_output_shows_the_parameters_but_no_hash() {
        let passwords = Passwords::new().await.unwrap();
        let shown = format!("{passwords:?}");
        assert!(!shown.contains("$argon2id"), "{shown}");
        assert!(
            shown.contains("19456") && shown.contains("[redacted]"),
            "{shown}"
        );
    }
}

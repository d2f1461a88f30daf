//! The per-account sign-in budget: email sign-in attempts per normalised email, whatever
//! addresses they come from, so a botnet spreading guesses over many addresses still
//! gets only a few tries per account per minute.

use super::keyed_budget::KeyedBudget;

/// Email sign-in attempts per account per minute.
pub const LOGINS_PER_ACCOUNT_PER_MINUTE: u32 = 10;

/// Keyed by the email as the auth service stores it (trimmed, lowercase).
#[derive(Debug)]
pub struct AccountLogins(KeyedBudget<String>);

impl Default for AccountLogins {
    fn default() -> Self {
        Self::per_minute(LOGINS_PER_ACCOUNT_PER_MINUTE)
    }
}

impl AccountLogins {
    pub fn per_minute(per_minute: u32) -> Self {
        Self(KeyedBudget::per_minute(per_minute))
    }

    /// Takes one attempt for `email`; when spent, the wait in whole seconds.
    pub fn acquire(&self, email: &str) -> Result<(), u64> {
        self.0
            .acquire(&normalised(email))
            .map_err(|wait| wait.as_secs().max(1))
    }

    pub fn sweep(&self) {
        self.0.sweep();
    }
}

/// The auth service's normalisation (trim, lowercase), so case variants share a budget.
fn normalised(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_of_one_email_share_a_budget() {
        let logins = AccountLogins::per_minute(2);
        assert!(logins.acquire("Alice@Example.com").is_ok());
        assert!(logins.acquire(" alice@example.com ").is_ok());
        let wait = logins.acquire("ALICE@EXAMPLE.COM").unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(logins.acquire("bob@example.com").is_ok());
    }
}

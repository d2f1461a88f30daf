//! Access tokens the edge has already verified, remembered until they expire. An app
//! presents the same token on every request for its 15 minutes, so after the first
//! request its HMAC and claim parsing are a map lookup. The map is keyed by the whole
//! token, so only a byte-identical token — one that verified — hits; expiry is still
//! checked on every hit with the same leeway as the full check.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{SystemTime, UNIX_EPOCH},
};

use clawfleet_kit::{
    access_token::{AccessTokenError, AccessTokenKeys, EXPIRY_LEEWAY_SECONDS},
    identity::Caller,
    plan::Plan,
    secret::Redacted,
};

/// Most tokens remembered; when full, expired ones go first, then the half that expires
/// soonest (never all at once: that would send every user back to the full check at
/// the same moment).
const CAPACITY: usize = 50_000;

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub caller: Caller,
    pub plan: Plan,
    expires_at: u64,
}

/// The verifying keys with the cache of tokens they verified.
#[derive(Debug)]
pub struct VerifiedTokens {
    keys: AccessTokenKeys,
    /// Keyed by the bearer tokens themselves, so never printed.
    verified: Redacted<RwLock<HashMap<Box<str>, VerifiedToken>>>,
}

impl VerifiedTokens {
    pub fn new(keys: AccessTokenKeys) -> Self {
        Self {
            keys,
            verified: Redacted(RwLock::new(HashMap::new())),
        }
    }

    /// The token's user and plan, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, AccessTokenError> {
        self.verify_at(token, unix_seconds())
    }

    fn verify_at(&self, token: &str, now: u64) -> Result<VerifiedToken, AccessTokenError> {
        let remembered = self
            .verified
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(token)
            .cloned();
        if let Some(verified) = remembered {
            return if is_expired(verified.expires_at, now) {
                Err(AccessTokenError::Expired)
            } else {
                Ok(verified)
            };
        }
        let claims = self.keys.verify(token)?;
        let verified = VerifiedToken {
            caller: Caller::app_user(&claims.sub),
            // A plan this edge does not know is a token it cannot honour.
            plan: Plan::from_name(&claims.plan).map_err(|_| AccessTokenError::Invalid)?,
            expires_at: claims.exp,
        };
        let mut remembered = self
            .verified
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if remembered.len() >= CAPACITY {
            remembered.retain(|_, verified| !is_expired(verified.expires_at, now));
            if remembered.len() >= CAPACITY {
                evict_soonest_half(&mut remembered);
            }
        }
        remembered.insert(token.into(), verified.clone());
        Ok(verified)
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.verified
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

/// Drops the half of `remembered` that expires soonest (ties may take a few more).
fn evict_soonest_half(remembered: &mut HashMap<Box<str>, VerifiedToken>) {
    let mut expiries: Vec<u64> = remembered
        .values()
        .map(|verified| verified.expires_at)
        .collect();
    if expiries.is_empty() {
        return;
    }
    let middle = expiries.len() / 2;
    let (_, median, _) = expiries.select_nth_unstable(middle);
    let median = *median;
    remembered.retain(|_, verified| verified.expires_at > median);
}

/// Past `exp` by more than the leeway the full check allows.
fn is_expired(expires_at: u64, now: u64) -> bool {
    expires_at.saturating_add(EXPIRY_LEEWAY_SECONDS) < now
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clawfleet_kit::secret::ExposeSecret;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-edge";

    fn keys() -> AccessTokenKeys {
        AccessTokenKeys::from_secret(SECRET).unwrap()
    }

    /// A token for `user` on `plan`, signed with [`SECRET`] at `issued`.
    fn token_for(user: &str, plan: Plan, issued: SystemTime) -> String {
        let issued = keys().issue(user, plan, issued).unwrap();
        issued.token.expose_secret().to_owned()
    }

    #[test]
    fn a_verified_token_is_remembered_with_its_user_and_plan() {
        let tokens = VerifiedTokens::new(keys());
        let token = token_for("usr_1", Plan::Pro, SystemTime::now());
        let first = tokens.verify(&token).unwrap();
        assert_eq!(first.caller, Caller::app_user("usr_1"));
        assert_eq!(first.plan, Plan::Pro);
        assert_eq!(tokens.verify(&token).unwrap(), first);
        assert_eq!(tokens.remembered(), 1);
    }

    #[test]
    fn debug_output_shows_neither_remembered_tokens_nor_the_secret() {
        let tokens = VerifiedTokens::new(keys());
        let token = token_for("usr_1", Plan::Pro, SystemTime::now());
        tokens.verify(&token).unwrap();
        let shown = format!("{tokens:?}");
        assert!(
            !shown.contains(&token) && !shown.contains("usr_1"),
            "{shown}"
        );
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn refused_tokens_are_not_remembered() {
        let tokens = VerifiedTokens::new(keys());
        let token = token_for("usr_1", Plan::Free, SystemTime::now());
        let foreign = AccessTokenKeys::from_secret(b"another-secret-another-secret-0123")
            .unwrap()
            .issue("usr_1", Plan::Free, SystemTime::now())
            .unwrap()
            .token
            .expose_secret()
            .to_owned();
        let mut tampered = token.clone();
        tampered.pop();
        for bad in [foreign.as_str(), tampered.as_str(), "not.a.jwt"] {
            assert_eq!(tokens.verify(bad), Err(AccessTokenError::Invalid), "{bad}");
        }
        assert_eq!(tokens.remembered(), 0);
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let tokens = VerifiedTokens::new(keys());
        let issued = SystemTime::now();
        let token = token_for("usr_1", Plan::Free, issued);
        let now = issued.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let verified = tokens.verify_at(&token, now).unwrap();
        let fifteen_minutes = Duration::from_secs(15 * 60).as_secs();
        let last_second = now + fifteen_minutes + EXPIRY_LEEWAY_SECONDS;
        assert_eq!(tokens.verify_at(&token, last_second), Ok(verified));
        assert_eq!(
            tokens.verify_at(&token, last_second + 1),
            Err(AccessTokenError::Expired)
        );
    }

    #[test]
    fn a_full_cache_makes_room_and_keeps_working() {
        let tokens = VerifiedTokens::new(keys());
        let now = SystemTime::now();
        let first = token_for("usr_0", Plan::Free, now);
        tokens.verify(&first).unwrap();
        {
            let mut remembered = tokens.verified.write().unwrap();
            let template = remembered.values().next().unwrap().clone();
            for index in 0..CAPACITY {
                remembered.insert(format!("filler-{index}").into(), template.clone());
            }
        }
        let next = token_for("usr_1", Plan::Free, now);
        assert_eq!(
            tokens.verify(&next).unwrap().caller,
            Caller::app_user("usr_1")
        );
        assert!(tokens.remembered() <= CAPACITY);
        assert_eq!(
            tokens.verify(&first).unwrap().caller,
            Caller::app_user("usr_0")
        );
    }

    #[test]
    fn a_full_cache_keeps_the_later_expiring_half() {
        let tokens = VerifiedTokens::new(keys());
        let first = token_for("usr_0", Plan::Free, SystemTime::now());
        tokens.verify(&first).unwrap();
        let mut remembered = tokens.verified.write().unwrap();
        let template = remembered.values().next().unwrap().clone();
        remembered.clear();
        for index in 0..1000u64 {
            let mut entry = template.clone();
            entry.expires_at = 1_000 + index;
            remembered.insert(format!("token-{index}").into(), entry);
        }
        evict_soonest_half(&mut remembered);
        assert_eq!(remembered.len(), 499);
        assert!(
            remembered
                .values()
                .all(|verified| verified.expires_at > 1_500)
        );
        assert!(remembered.contains_key("token-999"));
    }
}

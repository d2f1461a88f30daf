//! RevenueCat settings: where its API is, the secret key, how entitlements map to plans,
//! how long a read is trusted and how long a request may take.

use std::time::Duration;

use clawfleet_kit::{
    config::{self, ConfigError, EnvSource, keys},
    plan::Plan,
    secret::SecretString,
};

/// RevenueCat's public REST API root.
pub const DEFAULT_BASE_URL: &str = "https://api.revenuecat.com";
/// A subscriber read is trusted this long; webhooks update the plan meanwhile.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(60);
/// Upper bound on one request to RevenueCat.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The entitlement table when none is configured.
pub const DEFAULT_ENTITLEMENT_PLANS: &str = "pro=pro,enterprise=enterprise";

/// Which plan each RevenueCat entitlement grants; a user with several gets the largest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementPlans(Vec<(String, Plan)>);

impl EntitlementPlans {
    /// Parses `entitlement=plan[,entitlement=plan...]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pairs = Vec::new();
        for pair in text
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let Some((entitlement, plan)) = pair.split_once('=') else {
                return Err(format!("{pair:?} is not entitlement=plan"));
            };
            let entitlement = entitlement.trim();
            if entitlement.is_empty() {
                return Err(format!("{pair:?} names no entitlement"));
            }
            let plan = Plan::from_name(plan.trim()).map_err(|error| error.to_string())?;
            pairs.push((entitlement.to_owned(), plan));
        }
        if pairs.is_empty() {
            return Err("no entitlement=plan pair".to_owned());
        }
        Ok(Self(pairs))
    }

    /// The plan `entitlement` grants, if it is in the table.
    pub fn plan_of(&self, entitlement: &str) -> Option<Plan> {
        self.0
            .iter()
            .find(|(name, _)| name == entitlement)
            .map(|(_, plan)| *plan)
    }
}

/// Everything the service needs to ask RevenueCat.
#[derive(Debug, Clone)]
pub struct RevenueCatConfig {
    /// `None`: RevenueCat is not configured and operators set plans.
    pub secret_key: Option<SecretString>,
    pub base_url: String,
    pub entitlement_plans: EntitlementPlans,
    pub cache: Duration,
    pub timeout: Duration,
}

impl RevenueCatConfig {
    /// Reads `REVENUECAT_SECRET_KEY`, `REVENUECAT_BASE_URL`, `REVENUECAT_ENTITLEMENT_PLANS`,
    /// `REVENUECAT_CACHE_SECONDS` and `REVENUECAT_TIMEOUT_MS`.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let plans_text = config::optional(env, keys::REVENUECAT_ENTITLEMENT_PLANS)
            .unwrap_or_else(|| DEFAULT_ENTITLEMENT_PLANS.to_owned());
        let entitlement_plans =
            EntitlementPlans::parse(&plans_text).map_err(|reason| ConfigError::Invalid {
                key: keys::REVENUECAT_ENTITLEMENT_PLANS,
                reason,
            })?;
        let base_url = config::optional(env, keys::REVENUECAT_BASE_URL)
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        if base_url.parse::<http::Uri>().is_err() || !base_url.starts_with("http") {
            return Err(ConfigError::Invalid {
                key: keys::REVENUECAT_BASE_URL,
                reason: "must be an http(s) URL".to_owned(),
            });
        }
        let cache_seconds =
            config::parsed_or(env, keys::REVENUECAT_CACHE_SECONDS, DEFAULT_CACHE.as_secs())?;
        let timeout_ms = config::parsed_or(
            env,
            keys::REVENUECAT_TIMEOUT_MS,
            DEFAULT_TIMEOUT.as_millis() as u64,
        )?;
        if timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                key: keys::REVENUECAT_TIMEOUT_MS,
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(Self {
            secret_key: config::optional(env, keys::REVENUECAT_SECRET_KEY).map(SecretString::from),
            base_url: base_url.trim_end_matches('/').to_owned(),
            entitlement_plans,
            cache: Duration::from_secs(cache_seconds),
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use clawfleet_kit::{config::EnvMap, secret::ExposeSecret};

    use super::*;

    #[test]
    fn defaults_leave_revenuecat_unconfigured() {
        let config = RevenueCatConfig::from_env(&EnvMap::default()).unwrap();
        assert!(config.secret_key.is_none());
        assert_eq!(config.base_url, DEFAULT_BASE_URL);
        assert_eq!(config.entitlement_plans.plan_of("pro"), Some(Plan::Pro));
        assert_eq!(config.entitlement_plans.plan_of("gold"), None);
        assert_eq!(config.cache, DEFAULT_CACHE);
    }

    #[test]
    fn configured_values_are_read_and_the_key_stays_hidden() {
        let env = EnvMap::from_pairs([
            (keys::REVENUECAT_SECRET_KEY, "sk_live_hunter2"),
            (keys::REVENUECAT_BASE_URL, "http://127.0.0.1:9/"),
            (
                keys::REVENUECAT_ENTITLEMENT_PLANS,
                "plus=pro, max=enterprise",
            ),
            (keys::REVENUECAT_TIMEOUT_MS, "250"),
        ]);
        let config = RevenueCatConfig::from_env(&env).unwrap();
        assert_eq!(
            config.secret_key.as_ref().unwrap().expose_secret(),
            "sk_live_hunter2"
        );
        assert_eq!(config.base_url, "http://127.0.0.1:9");
        assert_eq!(
            config.entitlement_plans.plan_of("max"),
            Some(Plan::Enterprise)
        );
        assert_eq!(config.timeout, Duration::from_millis(250));
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn bad_tables_name_the_key_and_the_pair() {
        for text in ["pro", "=pro", "pro=platinum"] {
            let env = EnvMap::from_pairs([(keys::REVENUECAT_ENTITLEMENT_PLANS, text)]);
            let error = RevenueCatConfig::from_env(&env).unwrap_err().to_string();
            assert!(error.contains("REVENUECAT_ENTITLEMENT_PLANS"), "{error}");
        }
    }
}

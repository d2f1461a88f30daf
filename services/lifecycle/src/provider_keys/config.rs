//! Settings of per-user provider keys: where OpenRouter's key API is, the management
//! key, each plan's credit limit, the default model, and the lapse grace
//! (docs/product/provider-keys.md#configuration).

use std::time::Duration;

use clawfleet_kit::{
    config::{self, ConfigError, EnvSource, keys},
    plan::Plan,
    secret::SecretString,
};

/// OpenRouter's API root.
pub const DEFAULT_BASE_URL: &str = "https://openrouter.ai/api/v1";
/// Credit limits in USD per plan: free, pro, enterprise.
pub const DEFAULT_LIMITS_USD: [f64; 3] = [1.0, 20.0, 100.0];
/// The gateway's default model when the platform provides the key (an OpenClaw model
/// reference: `openrouter/<OpenRouter model id>`).
pub const DEFAULT_MODEL: &str = "openrouter/openai/gpt-4o-mini";
/// How long a lapsed subscription keeps its instances running.
pub const DEFAULT_LAPSE_GRACE: Duration = Duration::from_secs(3 * 24 * 60 * 60);
/// How often the keys' usage is read for alerts.
pub const DEFAULT_USAGE_POLL: Duration = Duration::from_secs(300);
/// Upper bound on one call to OpenRouter, connect to last byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the provider-key module needs.
#[derive(Debug, Clone)]
pub struct ProviderKeysConfig {
    pub base_url: String,
    /// `None`: keys are never provisioned (users bring their own).
    pub management_key: Option<SecretString>,
    /// Credit limit in USD for each plan, indexed like [`Plan::ALL`].
    pub limits_usd: [f64; 3],
    pub default_model: String,
    pub lapse_grace: Duration,
    pub timeout: Duration,
    /// How often the keys' usage is read for 80 % / 100 % alerts.
    pub usage_poll: Duration,
}

impl Default for ProviderKeysConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            management_key: None,
            limits_usd: DEFAULT_LIMITS_USD,
            default_model: DEFAULT_MODEL.to_owned(),
            lapse_grace: DEFAULT_LAPSE_GRACE,
            timeout: DEFAULT_TIMEOUT,
            usage_poll: DEFAULT_USAGE_POLL,
        }
    }
}

impl ProviderKeysConfig {
    /// Reads the keys documented in docs/product/configuration.md#provider-keys.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let base_url = config::optional(env, keys::OPENROUTER_BASE_URL)
            .unwrap_or(defaults.base_url)
            .trim_end_matches('/')
            .to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                key: keys::OPENROUTER_BASE_URL,
                reason: "it must be an http:// or https:// URL".to_owned(),
            });
        }
        let mut limits_usd = defaults.limits_usd;
        for (index, key) in [
            keys::CLAWFLEET_OPENROUTER_LIMIT_FREE_USD,
            keys::CLAWFLEET_OPENROUTER_LIMIT_PRO_USD,
            keys::CLAWFLEET_OPENROUTER_LIMIT_ENTERPRISE_USD,
        ]
        .into_iter()
        .enumerate()
        {
            let limit: f64 = config::parsed_or(env, key, limits_usd[index])?;
            if !limit.is_finite() || limit < 0.0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("{limit} is not a non-negative amount of USD"),
                });
            }
            limits_usd[index] = limit;
        }
        let default_model = config::optional(env, keys::CLAWFLEET_OPENROUTER_DEFAULT_MODEL)
            .unwrap_or(defaults.default_model);
        if crate::validation::validate_model(&default_model).is_err() {
            return Err(ConfigError::Invalid {
                key: keys::CLAWFLEET_OPENROUTER_DEFAULT_MODEL,
                reason: "not a model reference such as openrouter/openai/gpt-4o-mini".to_owned(),
            });
        }
        Ok(Self {
            base_url,
            management_key: config::optional(env, keys::OPENROUTER_MANAGEMENT_KEY)
                .map(SecretString::from),
            limits_usd,
            default_model,
            lapse_grace: Duration::from_secs(config::parsed_or(
                env,
                keys::CLAWFLEET_SUBSCRIPTION_GRACE_SECONDS,
                defaults.lapse_grace.as_secs(),
            )?),
            timeout: Duration::from_millis(config::parsed_or(
                env,
                keys::CLAWFLEET_OPENROUTER_TIMEOUT_MS,
                u64::try_from(defaults.timeout.as_millis()).unwrap_or(u64::MAX),
            )?),
            usage_poll: Duration::from_secs(config::parsed_or(
                env,
                keys::CLAWFLEET_OPENROUTER_USAGE_POLL_SECONDS,
                defaults.usage_poll.as_secs(),
            )?),
        })
    }

    /// The credit limit of `plan`, in USD.
    pub fn limit_usd(&self, plan: Plan) -> f64 {
        self.limits_usd[plan as usize]
    }
}

#[cfg(test)]
mod tests {
    use clawfleet_kit::{config::EnvMap, secret::ExposeSecret};

    use super::*;

    #[test]
    fn defaults_hold_without_settings_and_keys_are_read_when_set() {
        let defaults = ProviderKeysConfig::from_env(&EnvMap::default()).unwrap();
        assert!(defaults.management_key.is_none());
        assert_eq!(defaults.base_url, DEFAULT_BASE_URL);
        assert_eq!(defaults.limit_usd(Plan::Pro), DEFAULT_LIMITS_USD[1]);
        let set = ProviderKeysConfig::from_env(&EnvMap::from_pairs([
            (keys::OPENROUTER_MANAGEMENT_KEY, "sk-or-v1-manage"),
            (keys::OPENROUTER_BASE_URL, "http://127.0.0.1:9/api/v1/"),
            (keys::CLAWFLEET_OPENROUTER_LIMIT_ENTERPRISE_USD, "250.5"),
            (keys::CLAWFLEET_SUBSCRIPTION_GRACE_SECONDS, "0"),
        ]))
        .unwrap();
        assert_eq!(
            set.management_key.as_ref().map(|key| key.expose_secret()),
            Some("sk-or-v1-manage")
        );
        assert_eq!(set.base_url, "http://127.0.0.1:9/api/v1");
        assert_eq!(set.limit_usd(Plan::Enterprise), 250.5);
        assert_eq!(set.lapse_grace, Duration::ZERO);
    }

    #[test]
    fn unusable_values_name_their_key() {
        for (key, value) in [
            (keys::OPENROUTER_BASE_URL, "ftp://openrouter.ai"),
            (keys::CLAWFLEET_OPENROUTER_LIMIT_FREE_USD, "-1"),
            (keys::CLAWFLEET_OPENROUTER_LIMIT_PRO_USD, "lots"),
            (keys::CLAWFLEET_OPENROUTER_DEFAULT_MODEL, "not a model!"),
            (keys::CLAWFLEET_SUBSCRIPTION_GRACE_SECONDS, "soon"),
        ] {
            let error = ProviderKeysConfig::from_env(&EnvMap::from_pairs([(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{key}: {error}");
        }
    }
}

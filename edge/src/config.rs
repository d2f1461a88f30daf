//! The edge's configuration, read from the environment through an [`EnvSource`].

use std::time::Duration;

use clawfleet_kit::{
    access_token::AccessTokenKeys,
    config::{self, ConfigError, EnvSource, keys},
    identity::{ServiceCredentials, tls_from_env},
    secret::SecretString,
    service_token::service_token_from_env,
    tls::ServiceTls,
};

use crate::limits::{
    app_user::{DEFAULT_CONCURRENT_REQUESTS, DEFAULT_RATE_PER_MINUTE},
    client_address::TrustedProxies,
};

/// The body limit used when `EDGE_BODY_LIMIT_BYTES` is unset: 1 MiB.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// `/auth/*` requests per minute per client address when `EDGE_AUTH_RATE_PER_MINUTE` is unset.
pub const DEFAULT_AUTH_RATE_PER_MINUTE: u32 = 30;
/// `/auth/refresh` requests per minute per client address when `EDGE_REFRESH_RATE_PER_MINUTE`
/// is unset: an app refreshes every 15 minutes, so this leaves room for many devices
/// behind one address.
pub const DEFAULT_REFRESH_RATE_PER_MINUTE: u32 = 60;
/// Silence of the lifecycle's watch after which instance reads are 503, when
/// `EDGE_INSTANCE_STALENESS_SECONDS` is unset (three missed bookmarks).
pub const DEFAULT_INSTANCE_STALENESS: Duration = Duration::from_secs(30);

/// Everything the edge needs to serve the manager-compatible API.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// The key operators present as `Authorization: Bearer <key>` (`OPENCLAW_MANAGER_API_KEY`).
    pub platform_api_key: SecretString,
    /// The edge's own token, presented to the other services (`CLAWFLEET_SERVICE_TOKEN`).
    pub service_token: SecretString,
    /// `host:port` of the lifecycle service's gRPC listener (`CLAWFLEET_LIFECYCLE_ADDR`).
    pub lifecycle_address: String,
    /// `host:port` of the gateway bridge's gRPC listener (`CLAWFLEET_BRIDGE_ADDR`).
    pub bridge_address: String,
    /// `host:port` of the channels service's gRPC listener (`CLAWFLEET_CHANNELS_ADDR`).
    pub channels_address: String,
    /// `host:port` of the auth service's gRPC listener (`CLAWFLEET_AUTH_ADDR`).
    pub auth_address: String,
    /// Service TLS for every call to those services (`CLAWFLEET_TLS_*`; off when unset).
    pub service_tls: Option<ServiceTls>,
    /// Verifies app users' access tokens (`JWT_SECRET`, shared with the auth service).
    pub jwt_secret: SecretString,
    /// Largest request body accepted, in bytes (`EDGE_BODY_LIMIT_BYTES`, default 1 MiB).
    pub body_limit_bytes: usize,
    /// `/auth/*` requests per minute per client address (`EDGE_AUTH_RATE_PER_MINUTE`).
    pub auth_rate_per_minute: u32,
    /// `/auth/refresh` requests per minute per client address (`EDGE_REFRESH_RATE_PER_MINUTE`).
    pub refresh_rate_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` names the client (`EDGE_TRUSTED_PROXIES`, none by default).
    pub trusted_proxies: TrustedProxies,
    /// App instance and gateway requests per user per minute (`EDGE_APP_RATE_PER_MINUTE`).
    pub app_rate_per_minute: u32,
    /// App instance and gateway requests one user may have in flight
    /// (`EDGE_APP_CONCURRENT_REQUESTS`).
    pub app_concurrent_requests: usize,
    /// Serve the OpenAPI document and its viewer at `/docs` (`EDGE_DOCS`, dev only).
    pub docs_enabled: bool,
    /// How long the instance replica may go without word from the lifecycle's watch
    /// before reads answer 503 (`EDGE_INSTANCE_STALENESS_SECONDS`).
    pub instance_staleness: Duration,
    /// The exact `Authorization` header RevenueCat's webhook carries
    /// (`REVENUECAT_WEBHOOK_AUTHORIZATION`); `None`: the webhook route answers 412.
    pub revenuecat_webhook_authorization: Option<SecretString>,
}

impl EdgeConfig {
    /// Reads the configuration; the error names the first missing or invalid key.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let platform_api_key = config::required_credential(env, keys::OPENCLAW_MANAGER_API_KEY)?;
        let service_token = service_token_from_env(env)?;
        if ServiceCredentials::new(&service_token).is_err() {
            return Err(ConfigError::Invalid {
                key: keys::CLAWFLEET_SERVICE_TOKEN,
                reason: "the token cannot be sent in a header".to_owned(),
            });
        }
        let lifecycle_address = required_address(env, keys::CLAWFLEET_LIFECYCLE_ADDR)?;
        let bridge_address = required_address(env, keys::CLAWFLEET_BRIDGE_ADDR)?;
        let channels_address = required_address(env, keys::CLAWFLEET_CHANNELS_ADDR)?;
        let auth_address = required_address(env, keys::CLAWFLEET_AUTH_ADDR)?;
        let jwt_secret = config::required(env, keys::JWT_SECRET)?;
        if let Err(error) = AccessTokenKeys::from_secret(jwt_secret.as_bytes()) {
            return Err(ConfigError::Invalid {
                key: keys::JWT_SECRET,
                reason: error.to_string(),
            });
        }
        let auth_rate_per_minute = config::parsed_or(
            env,
            keys::EDGE_AUTH_RATE_PER_MINUTE,
            DEFAULT_AUTH_RATE_PER_MINUTE,
        )?;
        let refresh_rate_per_minute = config::parsed_or(
            env,
            keys::EDGE_REFRESH_RATE_PER_MINUTE,
            DEFAULT_REFRESH_RATE_PER_MINUTE,
        )?;
        let trusted_proxies = TrustedProxies::parse(
            &config::optional(env, keys::EDGE_TRUSTED_PROXIES).unwrap_or_default(),
        )
        .map_err(|reason| ConfigError::Invalid {
            key: keys::EDGE_TRUSTED_PROXIES,
            reason,
        })?;
        let app_rate_per_minute =
            config::parsed_or(env, keys::EDGE_APP_RATE_PER_MINUTE, DEFAULT_RATE_PER_MINUTE)?;
        let app_concurrent_requests = config::parsed_or(
            env,
            keys::EDGE_APP_CONCURRENT_REQUESTS,
            DEFAULT_CONCURRENT_REQUESTS,
        )?;
        for (key, value) in [
            (
                keys::EDGE_AUTH_RATE_PER_MINUTE,
                u64::from(auth_rate_per_minute),
            ),
            (
                keys::EDGE_REFRESH_RATE_PER_MINUTE,
                u64::from(refresh_rate_per_minute),
            ),
            (
                keys::EDGE_APP_RATE_PER_MINUTE,
                u64::from(app_rate_per_minute),
            ),
            (
                keys::EDGE_APP_CONCURRENT_REQUESTS,
                app_concurrent_requests as u64,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "the limit must be at least 1".to_owned(),
                });
            }
        }
        let docs_enabled = config::flag_or(env, keys::EDGE_DOCS, false)?;
        let instance_staleness = Duration::from_secs(config::parsed_or(
            env,
            keys::EDGE_INSTANCE_STALENESS_SECONDS,
            DEFAULT_INSTANCE_STALENESS.as_secs(),
        )?);
        if instance_staleness.is_zero() {
            return Err(ConfigError::Invalid {
                key: keys::EDGE_INSTANCE_STALENESS_SECONDS,
                reason: "the bound must be at least 1 second".to_owned(),
            });
        }
        let body_limit_bytes =
            config::parsed_or(env, keys::EDGE_BODY_LIMIT_BYTES, DEFAULT_BODY_LIMIT_BYTES)?;
        if body_limit_bytes == 0 {
            return Err(ConfigError::Invalid {
                key: keys::EDGE_BODY_LIMIT_BYTES,
                reason: "the limit must be at least 1 byte".to_owned(),
            });
        }
        Ok(Self {
            platform_api_key: platform_api_key.into(),
            service_token: service_token.into(),
            lifecycle_address,
            bridge_address,
            channels_address,
            auth_address,
            service_tls: tls_from_env(env)?,
            jwt_secret: jwt_secret.into(),
            body_limit_bytes,
            auth_rate_per_minute,
            refresh_rate_per_minute,
            trusted_proxies,
            app_rate_per_minute,
            app_concurrent_requests,
            docs_enabled,
            instance_staleness,
            revenuecat_webhook_authorization: config::optional(
                env,
                keys::REVENUECAT_WEBHOOK_AUTHORIZATION,
            )
            .map(SecretString::from),
        })
    }
}

/// A required `host:port` address.
fn required_address(env: &dyn EnvSource, key: &'static str) -> Result<String, ConfigError> {
    let address = config::required(env, key)?;
    validate_address(&address).map_err(|reason| ConfigError::Invalid { key, reason })?;
    Ok(address)
}

/// Accepts `host:port` only, the form the gRPC endpoint URL is built from.
fn validate_address(address: &str) -> Result<(), String> {
    let uri: http::Uri = format!("http://{address}")
        .parse()
        .map_err(|_| format!("{address:?} is not a host:port address"))?;
    let authority_is_everything = uri
        .authority()
        .is_some_and(|authority| authority.as_str() == address);
    if !authority_is_everything || uri.port_u16().is_none() {
        return Err(format!("{address:?} is not a host:port address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clawfleet_kit::{config::EnvMap, secret::ExposeSecret};

    use super::*;

    fn complete_env() -> EnvMap {
        EnvMap::from_pairs([
            (keys::OPENCLAW_MANAGER_API_KEY, "operator-key-0123456789"),
            (
                keys::CLAWFLEET_SERVICE_TOKEN,
                "edge-service-token-0123456789abcdef",
            ),
            (keys::CLAWFLEET_LIFECYCLE_ADDR, "127.0.0.1:4101"),
            (keys::CLAWFLEET_BRIDGE_ADDR, "127.0.0.1:4102"),
            (keys::CLAWFLEET_CHANNELS_ADDR, "127.0.0.1:4103"),
            (keys::CLAWFLEET_AUTH_ADDR, "127.0.0.1:4104"),
            (keys::JWT_SECRET, "a-jwt-secret-of-at-least-32-bytes!!"),
        ])
    }

    #[test]
    fn a_complete_environment_loads_with_the_default_body_limit() {
        let config = EdgeConfig::from_env(&complete_env()).unwrap();
        assert_eq!(
            config.platform_api_key.expose_secret(),
            "operator-key-0123456789"
        );
        assert_eq!(
            config.service_token.expose_secret(),
            "edge-service-token-0123456789abcdef"
        );
        assert_eq!(config.lifecycle_address, "127.0.0.1:4101");
        assert_eq!(config.bridge_address, "127.0.0.1:4102");
        assert_eq!(config.body_limit_bytes, 1024 * 1024);
    }

    #[test]
    fn each_required_key_is_named_when_missing() {
        for key in [
            keys::OPENCLAW_MANAGER_API_KEY,
            keys::CLAWFLEET_SERVICE_TOKEN,
            keys::CLAWFLEET_LIFECYCLE_ADDR,
            keys::CLAWFLEET_BRIDGE_ADDR,
            keys::CLAWFLEET_CHANNELS_ADDR,
            keys::CLAWFLEET_AUTH_ADDR,
            keys::JWT_SECRET,
        ] {
            let mut env = complete_env();
            env.0.remove(key);
            assert_eq!(
                EdgeConfig::from_env(&env).unwrap_err(),
                ConfigError::Missing { key }
            );
        }
    }

    #[test]
    fn the_body_limit_can_be_set_but_not_to_zero_or_garbage() {
        let mut env = complete_env();
        env.set(keys::EDGE_BODY_LIMIT_BYTES, "2048");
        assert_eq!(EdgeConfig::from_env(&env).unwrap().body_limit_bytes, 2048);
        for bad in ["0", "lots", "-1"] {
            env.set(keys::EDGE_BODY_LIMIT_BYTES, bad);
            assert!(matches!(
                EdgeConfig::from_env(&env),
                Err(ConfigError::Invalid {
                    key: keys::EDGE_BODY_LIMIT_BYTES,
                    ..
                })
            ));
        }
    }

    #[test]
    fn the_lifecycle_address_must_be_host_and_port() {
        let mut env = complete_env();
        for bad in [
            "http://127.0.0.1:4101",
            "127.0.0.1",
            "127.0.0.1:4101/x",
            "a b:1",
        ] {
            env.set(keys::CLAWFLEET_LIFECYCLE_ADDR, bad);
            assert!(
                matches!(
                    EdgeConfig::from_env(&env),
                    Err(ConfigError::Invalid {
                        key: keys::CLAWFLEET_LIFECYCLE_ADDR,
                        ..
                    })
                ),
                "{bad} was accepted"
            );
        }
        env.set(
            keys::CLAWFLEET_LIFECYCLE_ADDR,
            "lifecycle.clawfleet.svc:4101",
        );
        assert!(EdgeConfig::from_env(&env).is_ok());
    }

    #[test]
    fn short_credentials_are_refused_naming_the_key() {
        for (key, value, expected) in [
            (
                keys::OPENCLAW_MANAGER_API_KEY,
                "fifteen-chars!!",
                "at least 16",
            ),
            (
                keys::CLAWFLEET_SERVICE_TOKEN,
                "thirty-one-characters-long-tok!",
                "shorter than 32",
            ),
        ] {
            let mut env = complete_env();
            env.set(key, value);
            let error = EdgeConfig::from_env(&env).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Invalid { key: named, reason } if *named == key && reason.contains(expected)),
                "{error}"
            );
            assert!(!error.to_string().contains(value), "{error}");
        }
    }

    #[test]
    fn limits_and_trusted_proxies_are_read_and_checked() {
        let mut env = complete_env();
        let config = EdgeConfig::from_env(&env).unwrap();
        assert_eq!(config.trusted_proxies, TrustedProxies::default());
        assert_eq!(
            config.refresh_rate_per_minute,
            DEFAULT_REFRESH_RATE_PER_MINUTE
        );
        assert_eq!(config.app_concurrent_requests, DEFAULT_CONCURRENT_REQUESTS);
        env.set(keys::EDGE_TRUSTED_PROXIES, "10.0.0.0/8, fd00::/8");
        env.set(keys::EDGE_APP_RATE_PER_MINUTE, "7");
        let config = EdgeConfig::from_env(&env).unwrap();
        assert_eq!(
            config.trusted_proxies,
            TrustedProxies::parse("10.0.0.0/8,fd00::/8").unwrap()
        );
        assert_eq!(config.app_rate_per_minute, 7);
        for (key, bad) in [
            (keys::EDGE_TRUSTED_PROXIES, "10.0.0.0/40"),
            (keys::EDGE_APP_RATE_PER_MINUTE, "0"),
            (keys::EDGE_APP_CONCURRENT_REQUESTS, "0"),
            (keys::EDGE_REFRESH_RATE_PER_MINUTE, "0"),
        ] {
            let mut env = complete_env();
            env.set(key, bad);
            assert!(
                matches!(EdgeConfig::from_env(&env), Err(ConfigError::Invalid { key: named, .. }) if named == key),
                "{key}={bad}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let config = EdgeConfig::from_env(&complete_env()).unwrap();
        let text = format!("{config:?}");
        assert!(!text.contains("operator-key"));
        assert!(!text.contains("edge-service-token"));
        assert!(!text.contains("a-jwt-secret"));
    }
}

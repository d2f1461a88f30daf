//! What every handler shares: the lifecycle client, the operator API key, the body limit
//! and the shutdown token that ends long-lived streams.

use std::sync::Arc;

use clawfleet_kit::{
    access_token::AccessTokenKeys,
    secret::{ExposeSecret, Redacted, constant_time_eq},
    shutdown::ShutdownToken,
};

use crate::{
    auth_service::AuthClient,
    bridge::BridgeClient,
    channels::ChannelsClient,
    config::EdgeConfig,
    instance_cache::InstanceCache,
    lifecycle::LifecycleClient,
    limits::{
        self, account::AccountLogins, app_user::AppUserLimits, client_address::TrustedProxies,
    },
    rate_limit::RateLimiter,
    server::EdgeError,
    verified_tokens::VerifiedTokens,
};

/// The state behind the router; cloning it is one reference-count increment.
#[derive(Clone, Debug)]
pub struct EdgeState(Arc<Shared>);

/// An [`EdgeState`] that may be gone.
pub(crate) struct WeakEdgeState(std::sync::Weak<Shared>);

impl WeakEdgeState {
    pub(crate) fn upgrade(&self) -> Option<EdgeState> {
        self.0.upgrade().map(EdgeState)
    }
}

#[derive(Debug)]
struct Shared {
    lifecycle: LifecycleClient,
    bridge: BridgeClient,
    channels: ChannelsClient,
    auth: AuthClient,
    access_tokens: VerifiedTokens,
    auth_rate_limiter: RateLimiter,
    refresh_rate_limiter: RateLimiter,
    account_logins: AccountLogins,
    app_user_limits: AppUserLimits,
    trusted_proxies: TrustedProxies,
    docs_enabled: bool,
    instances: Arc<InstanceCache>,
    platform_api_key: Redacted<Box<[u8]>>,
    revenuecat_webhook_authorization: Option<Redacted<Box<[u8]>>>,
    body_limit_bytes: usize,
    shutdown: ShutdownToken,
}

impl EdgeState {
    /// Builds the state; the lifecycle channel connects on first use. Must run inside a
    /// tokio runtime. Watches end when `shutdown` is cancelled, so that graceful
    /// shutdown is not held up by open event streams.
    pub fn new(config: &EdgeConfig, shutdown: ShutdownToken) -> Result<Self, EdgeError> {
        let service_token = config.service_token.expose_secret();
        let tls = config.service_tls.as_ref();
        let lifecycle =
            LifecycleClient::connect_lazy(&config.lifecycle_address, tls, service_token)?;
        let bridge = BridgeClient::connect_lazy(&config.bridge_address, tls, service_token)?;
        let channels = ChannelsClient::connect_lazy(&config.channels_address, tls, service_token)?;
        let auth = AuthClient::connect_lazy(&config.auth_address, tls, service_token)?;
        let access_tokens =
            AccessTokenKeys::from_secret(config.jwt_secret.expose_secret().as_bytes())
                .map_err(EdgeError::AccessTokens)?;
        let instances = Arc::new(InstanceCache::new(config.instance_staleness));
        instances
            .clone()
            .spawn_follower(lifecycle.clone(), shutdown.clone());
        let state = Self(Arc::new(Shared {
            lifecycle,
            bridge,
            channels,
            auth,
            access_tokens: VerifiedTokens::new(access_tokens),
            auth_rate_limiter: RateLimiter::new(config.auth_rate_per_minute),
            refresh_rate_limiter: RateLimiter::new(config.refresh_rate_per_minute),
            account_logins: AccountLogins::default(),
            app_user_limits: AppUserLimits::new(
                config.app_rate_per_minute,
                config.app_concurrent_requests,
            ),
            trusted_proxies: config.trusted_proxies.clone(),
            docs_enabled: config.docs_enabled,
            instances,
            platform_api_key: Redacted(config.platform_api_key.expose_secret().as_bytes().into()),
            revenuecat_webhook_authorization: config
                .revenuecat_webhook_authorization
                .as_ref()
                .map(|header| Redacted(header.expose_secret().as_bytes().into())),
            body_limit_bytes: config.body_limit_bytes,
            shutdown: shutdown.clone(),
        }));
        limits::spawn_sweeper(&state, shutdown);
        Ok(state)
    }

    /// A reference that does not keep the state alive (for background tasks).
    pub(crate) fn downgrade(&self) -> WeakEdgeState {
        WeakEdgeState(Arc::downgrade(&self.0))
    }

    pub(crate) fn lifecycle(&self) -> &LifecycleClient {
        &self.0.lifecycle
    }

    /// The watch-fed replica of every instance.
    pub(crate) fn instances(&self) -> &InstanceCache {
        &self.0.instances
    }

    pub(crate) fn channels(&self) -> &ChannelsClient {
        &self.0.channels
    }

    pub(crate) fn bridge(&self) -> &BridgeClient {
        &self.0.bridge
    }

    pub(crate) fn auth(&self) -> &AuthClient {
        &self.0.auth
    }

    /// Verifies app users' access tokens locally.
    pub(crate) fn access_tokens(&self) -> &VerifiedTokens {
        &self.0.access_tokens
    }

    pub(crate) fn auth_rate_limiter(&self) -> &RateLimiter {
        &self.0.auth_rate_limiter
    }

    /// `/auth/refresh`'s own per-address budget.
    pub(crate) fn refresh_rate_limiter(&self) -> &RateLimiter {
        &self.0.refresh_rate_limiter
    }

    pub(crate) fn account_logins(&self) -> &AccountLogins {
        &self.0.account_logins
    }

    pub(crate) fn app_user_limits(&self) -> &AppUserLimits {
        &self.0.app_user_limits
    }

    pub(crate) fn trusted_proxies(&self) -> &TrustedProxies {
        &self.0.trusted_proxies
    }

    /// Drops idle keys from every budget; nobody's spent budget is reset.
    pub(crate) fn sweep_limits(&self) {
        self.0.auth_rate_limiter.sweep();
        self.0.refresh_rate_limiter.sweep();
        self.0.account_logins.sweep();
        self.0.app_user_limits.sweep();
    }

    pub(crate) fn docs_enabled(&self) -> bool {
        self.0.docs_enabled
    }

    /// True when `presented` is the platform API key (compared in constant time).
    pub(crate) fn is_platform_api_key(&self, presented: &[u8]) -> bool {
        constant_time_eq(presented, &self.0.platform_api_key)
    }

    /// Whether `presented` is RevenueCat's webhook header (constant time); `None` when
    /// the webhook is not configured.
    pub(crate) fn is_revenuecat_webhook(&self, presented: &[u8]) -> Option<bool> {
        self.0
            .revenuecat_webhook_authorization
            .as_ref()
            .map(|expected| constant_time_eq(presented, expected))
    }

    pub(crate) fn body_limit_bytes(&self) -> usize {
        self.0.body_limit_bytes
    }

    pub(crate) fn shutdown(&self) -> &ShutdownToken {
        &self.0.shutdown
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{API_KEY, JWT_SECRET, test_state};

    #[tokio::test]
    async fn debug_output_shows_no_key_token_or_secret() {
        let shown = format!("{:?}", test_state(1024));
        assert!(shown.contains("body_limit_bytes: 1024"), "{shown}");
        for secret in [
            API_KEY,
            JWT_SECRET,
            "edge-service-token-0123456789abcdef",
            "webhook-secret-0123456789",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

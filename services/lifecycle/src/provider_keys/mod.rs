//! Per-user provider keys (docs/product/provider-keys.md): with an OpenRouter
//! management key configured, an app user's instances get one OpenRouter key per user,
//! its credit limit following the plan, disabled while the subscription is lapsed,
//! rotated on request, and deleted once the user has nothing left.

pub mod client; // OpenRouter's key-provisioning API over HTTP(S), with deadlines
pub mod config; // base URL, management key, limits per plan, default model, grace
pub mod errors; // provider failures as clear, retryable errors for callers
pub mod provisioning; // a key for a create, and its release when nothing uses it
pub mod rotation; // a new key for the owner, placed in their instances, the old one deleted
pub mod store; // the per-owner key and subscription rows
pub mod subscriptions; // SetOwnerPlan: plan, limit, lapse and renewal
pub mod upkeep; // the periodic pass: lapses past their grace, unused keys, usage alerts

use crate::model::Secrets;

pub use self::{
    client::{OpenRouterClient, ProviderError},
    config::ProviderKeysConfig,
};

/// The secret the platform-provided key is placed in.
pub const KEY_SECRET: &str = "OPENROUTER_API_KEY";

/// What the lifecycle holds to manage keys: the client when a management key is
/// configured, and the settings.
#[derive(Debug, Clone, Default)]
pub struct ProviderKeys {
    client: Option<OpenRouterClient>,
    pub config: ProviderKeysConfig,
}

impl ProviderKeys {
    /// Keys as `config` says: provisioned only when it has a management key.
    pub fn new(config: ProviderKeysConfig) -> Result<Self, rustls::Error> {
        let client = match &config.management_key {
            Some(key) => Some(OpenRouterClient::new(
                &config.base_url,
                key.clone(),
                config.timeout,
            )?),
            None => None,
        };
        Ok(Self { client, config })
    }

    /// The client, when keys are managed at all.
    pub fn client(&self) -> Option<&OpenRouterClient> {
        self.client.as_ref()
    }
}

/// Whether the user brought a provider key of their own (any `*_API_KEY` secret), in
/// which case the platform provides none.
pub fn brings_own_key(secrets: &Secrets) -> bool {
    secrets.keys().any(|name| name.ends_with("_API_KEY"))
}

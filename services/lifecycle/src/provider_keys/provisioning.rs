//! A key for a create, and its release when nothing uses it any more
//! (docs/product/provider-keys.md#lifecycle-of-a-key).
//!
//! One key per owner, shared by the owner's instances: the first create provisions it,
//! later ones reuse the stored one. A create that fails after provisioning deletes the
//! key it made (unless an instance of the owner holds it by then), so a retry starts
//! clean; the key of an owner with no instance and no kept data is deleted at once by
//! the delete or purge that removed the last one, and by the upkeep pass otherwise.

use clawfleet_kit::{
    error::ServiceError,
    secret::{ExposeSecret, SecretString},
};

use super::{KEY_SECRET, ProviderError, errors::provider_error, store::OwnerKey};
use crate::{
    model::{Plan, Secrets, now_ms},
    service::{Lifecycle, store_error},
};

/// The key a create placed in the instance's secrets.
#[derive(Debug, Clone)]
pub struct ProvidedKey {
    pub hash: String,
    /// Made for this create (so a failed create deletes it).
    pub fresh: bool,
}

impl Lifecycle {
    /// The plan the owner's key is limited by: the subscription's, else `fallback`.
    pub(crate) async fn owner_plan(&self, owner: &str, fallback: Plan) -> Plan {
        match self.registry.store().subscription(owner).await {
            Ok(Some(subscription)) => subscription.plan,
            _ => fallback,
        }
    }

    /// The plan of an app user's create: their subscription's when one was set (else
    /// `requested`), refused while the subscription is lapsed.
    pub(crate) async fn app_create_plan(
        &self,
        owner: &str,
        requested: Plan,
    ) -> Result<Plan, ServiceError> {
        match self
            .registry
            .store()
            .subscription(owner)
            .await
            .map_err(store_error)?
        {
            Some(subscription) if !subscription.active => Err(ServiceError::new(
                clawfleet_kit::error::ErrorCode::FailedPrecondition,
                "your subscription has lapsed; renew it to create instances",
            )),
            Some(subscription) => Ok(subscription.plan),
            None => Ok(requested),
        }
    }

    /// For an app user's create without a provider key of their own: the owner's key
    /// (provisioned now if they have none) goes into `secrets`, and the default model
    /// into `model` unless one was chosen. `None` when keys are not managed.
    pub(crate) async fn provide_key_for_create(
        &self,
        owner: &str,
        plan: Plan,
        secrets: &mut Secrets,
        model: &mut String,
    ) -> Result<Option<ProvidedKey>, ServiceError> {
        let Some(client) = self.provider_keys.client() else {
            return Ok(None);
        };
        let store = self.registry.store();
        let (key, fresh) = match store.owner_key(owner).await.map_err(store_error)? {
            Some(key) => (key, false),
            None => {
                let plan = self.owner_plan(owner, plan).await;
                let limit_usd = self.provider_keys.config.limit_usd(plan);
                let created = match client.create(&key_name(owner), limit_usd).await {
                    Ok(created) => created,
                    Err(error) => {
                        if error == ProviderError::Timeout {
                            self.sweep_unanswered_create(owner);
                        }
                        return Err(provider_error("creating your AI key", error));
                    }
                };
                let key = OwnerKey {
                    owner: owner.to_owned(),
                    hash: created.info.hash.clone(),
                    value: created.key,
                    limit_usd,
                    disabled: false,
                    alerted_percent: 0,
                    updated_at_ms: now_ms(),
                };
                match store.insert_owner_key(&key, now_ms()).await {
                    Ok(true) => {
                        tracing::info!(owner, key_hash = %key.hash, limit_usd, "provider key provisioned");
                        (key, true)
                    }
                    // A concurrent create of the same owner stored its key first: use
                    // that one and delete ours.
                    Ok(false) => {
                        self.retire_at_provider(owner, &key.hash).await;
                        match store.owner_key(owner).await.map_err(store_error)? {
                            Some(stored) => (stored, false),
                            None => {
                                return Err(ServiceError::unavailable(
                                    "your AI key changed while it was being created; try again",
                                )
                                .with_retry_after(1));
                            }
                        }
                    }
                    Err(error) => {
                        self.retire_at_provider(owner, &key.hash).await;
                        return Err(store_error(error));
                    }
                }
            }
        };
        secrets.insert(KEY_SECRET.to_owned(), key.value.expose_secret().to_owned());
        if model.is_empty() {
            model.clone_from(&self.provider_keys.config.default_model);
        }
        Ok(Some(ProvidedKey {
            hash: key.hash,
            fresh,
        }))
    }

    /// A create call that timed out may still make its key: look for keys of `owner`
    /// the store does not know, a few times over a growing wait, and delete them.
    fn sweep_unanswered_create(&self, owner: &str) {
        let (Some(client), Some(store)) = (
            self.provider_keys.client().cloned(),
            Some(self.registry.store().clone()),
        ) else {
            return;
        };
        let owner = owner.to_owned();
        let mut wait = self.provider_keys.config.timeout;
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            for _ in 0..UNANSWERED_CREATE_CHECKS {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
                }
                wait *= 2;
                let known = match store.owner_key(&owner).await {
                    Ok(key) => key.map(|key| key.hash),
                    Err(_) => continue,
                };
                let Ok(keys) = list_all(&client).await else {
                    continue;
                };
                for key in keys {
                    if key.name == key_name(&owner) && Some(&key.hash) != known.as_ref() {
                        match client.delete(&key.hash).await {
                            Ok(()) => {
                                tracing::info!(owner, key_hash = %key.hash, "deleted a key whose create had timed out")
                            }
                            Err(error) => {
                                tracing::warn!(owner, key_hash = %key.hash, %error, "cannot delete a key whose create had timed out")
                            }
                        }
                    }
                }
            }
        });
    }

    /// After a create failed: deletes the key it provisioned, unless an instance of the
    /// owner holds it by now (a concurrent create reused it).
    pub(crate) async fn release_failed_create_key(&self, owner: &str, provided: &ProvidedKey) {
        if !provided.fresh {
            return;
        }
        let store = self.registry.store();
        let Ok(Some(key)) = store.owner_key(owner).await else {
            return;
        };
        if key.hash != provided.hash || self.key_in_use(owner, &key.value) {
            return;
        }
        if self.delete_at_provider(&key.hash).await
            && let Err(error) = store.forget_owner_key(owner, &key.hash).await
        {
            tracing::warn!(owner, key_hash = %key.hash, %error, "cannot forget a deleted provider key yet");
        }
    }

    /// Deletes the owner's key when they have no instance and no kept data left (the
    /// last one was purged, or the account deleted). Returns whether a key went.
    pub async fn release_key_if_unused(&self, owner: &str) -> bool {
        if self.provider_keys.client().is_none() || owner.is_empty() {
            return false;
        }
        let store = self.registry.store();
        let unused = match store.owner_key_if_unused(owner).await {
            Ok(key) => key,
            Err(error) => {
                tracing::warn!(owner, %error, "cannot check the provider key of an owner; the upkeep pass will");
                return false;
            }
        };
        match unused {
            Some(key) => self.delete_owner_key(&key).await,
            None => false,
        }
    }

    /// Deletes `key` at OpenRouter, then forgets it; false (kept for a retry) when
    /// OpenRouter could not be told.
    pub(crate) async fn delete_owner_key(&self, key: &OwnerKey) -> bool {
        if !self.delete_at_provider(&key.hash).await {
            return false;
        }
        match self
            .registry
            .store()
            .forget_owner_key(&key.owner, &key.hash)
            .await
        {
            Ok(_) => {
                tracing::info!(owner = %key.owner, key_hash = %key.hash, "provider key deleted");
                true
            }
            Err(error) => {
                tracing::warn!(owner = %key.owner, key_hash = %key.hash, %error, "cannot forget a deleted provider key yet");
                false
            }
        }
    }

    /// Whether any instance of `owner` carries `value` as its provider key.
    pub(crate) fn key_in_use(&self, owner: &str, value: &SecretString) -> bool {
        self.registry.all().iter().any(|record| {
            record.owner == owner
                && record
                    .secrets
                    .get(KEY_SECRET)
                    .is_some_and(|held| held == value.expose_secret())
        })
    }

    /// Deletes a key no row refers to (a race's loser, a rotated-out key); when
    /// OpenRouter cannot be told now, records it so the upkeep pass retries.
    pub(crate) async fn retire_at_provider(&self, owner: &str, hash: &str) {
        if self.delete_at_provider(hash).await {
            return;
        }
        if let Err(error) = self
            .registry
            .store()
            .retire_key(owner, hash, now_ms())
            .await
        {
            tracing::error!(owner, key_hash = %hash, %error, "a provider key could not be deleted nor recorded for a retry; delete it at OpenRouter");
        }
    }

    /// Deletes the key `hash` at OpenRouter; false when it could not be.
    pub(crate) async fn delete_at_provider(&self, hash: &str) -> bool {
        let Some(client) = self.provider_keys.client() else {
            return false;
        };
        match client.delete(hash).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(key_hash = %hash, %error, "cannot delete a provider key yet; will retry");
                false
            }
        }
    }
}

/// How many times keys are looked for after a create that timed out.
const UNANSWERED_CREATE_CHECKS: u32 = 4;
/// At most this many pages of keys are read when looking.
const MAX_LIST_PAGES: usize = 50;

/// Every key of the account (up to [`MAX_LIST_PAGES`] pages).
async fn list_all(
    client: &super::OpenRouterClient,
) -> Result<Vec<super::client::KeyInfo>, ProviderError> {
    let mut keys = Vec::new();
    for _ in 0..MAX_LIST_PAGES {
        let page = client.list(keys.len()).await?;
        if page.is_empty() {
            break;
        }
        keys.extend(page);
    }
    Ok(keys)
}

/// The name a user's key carries at OpenRouter (their user id, nothing personal).
fn key_name(owner: &str) -> String {
    format!("clawfleet-{owner}")
}

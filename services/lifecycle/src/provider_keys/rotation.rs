//! Rotation of an owner's key (docs/product/provider-keys.md#rotation): a new key with
//! the same limit, placed in every instance of the owner that held the old one, then the
//! old key deleted. The instances stay; their gateways restart with the new secret.

use clawfleet_kit::{
    error::{ErrorCode, ServiceError},
    secret::ExposeSecret,
};

use super::{KEY_SECRET, errors::provider_error};
use crate::{
    model::now_ms,
    service::{Lifecycle, store_error},
    store::Update,
};

impl Lifecycle {
    /// Rotates `owner`'s key; returns how many instances received the new one.
    pub async fn rotate_owner_key(&self, owner: &str) -> Result<u32, ServiceError> {
        let Some(client) = self.provider_keys.client() else {
            return Err(no_platform_key());
        };
        let store = self.registry.store();
        let Some(old) = store.owner_key(owner).await.map_err(store_error)? else {
            return Err(no_platform_key());
        };
        let created = client
            .create(&format!("clawfleet-{owner}"), old.limit_usd)
            .await
            .map_err(|error| provider_error("rotating your AI key", error))?;
        let new_hash = created.info.hash.clone();
        if old.disabled
            && let Err(error) = client.update(&new_hash, old.limit_usd, true).await
        {
            self.retire_at_provider(owner, &new_hash).await;
            return Err(provider_error("rotating your AI key", error));
        }
        let replaced = store
            .replace_owner_key(owner, &old.hash, &new_hash, &created.key, now_ms())
            .await;
        match replaced {
            Ok(true) => {}
            Ok(false) => {
                self.retire_at_provider(owner, &new_hash).await;
                return Err(ServiceError::new(
                    ErrorCode::Conflict,
                    "your AI key changed while it was being rotated; try again",
                ));
            }
            Err(error) => {
                self.retire_at_provider(owner, &new_hash).await;
                return Err(store_error(error));
            }
        }
        let mut updated = 0u32;
        for record in self.owned_records(owner) {
            let holds_old = record
                .secrets
                .get(KEY_SECRET)
                .is_some_and(|value| value == old.value.expose_secret());
            if !holds_old {
                continue;
            }
            let mut secrets = record.secrets.clone();
            secrets.insert(
                KEY_SECRET.to_owned(),
                created.key.expose_secret().to_owned(),
            );
            let update = self
                .registry
                .set_secrets(&record.id, &secrets)
                .await
                .map_err(store_error)?;
            if let Update::Changed(changed) = update {
                self.converge_changed(&changed).await?;
                updated += 1;
            }
        }
        self.retire_at_provider(owner, &old.hash).await;
        tracing::info!(owner, old_key_hash = %old.hash, key_hash = %new_hash, instances = updated, "provider key rotated");
        Ok(updated)
    }
}

fn no_platform_key() -> ServiceError {
    ServiceError::new(
        ErrorCode::FailedPrecondition,
        "this instance has no platform-provided AI key to rotate (it uses the owner's own key, or keys are not provided here)",
    )
}

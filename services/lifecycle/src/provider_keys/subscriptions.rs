//! SetOwnerPlan: an owner's plan and subscription state applied to everything they own
//! (docs/product/provider-keys.md#plans-and-subscriptions).
//!
//! The provider is told first (the key's limit, and whether it is disabled), so a
//! provider failure changes nothing. Then each instance takes the plan, and the state is
//! stored: a lapse records when it began, and once the grace has passed the owner's
//! running instances are stopped and their ids recorded, so a renewal starts exactly
//! those again, even after a restart of the lifecycle.

use std::sync::Arc;

use clawfleet_contracts::lifecycle::v1::Instance;
use clawfleet_kit::error::ServiceError;

use super::{errors::provider_error, store::Subscription};
use crate::{
    instance_id::InstanceId,
    model::{DesiredState, Plan, now_ms},
    service::{Lifecycle, runtime_error, store_error},
    store::Update,
};

impl Lifecycle {
    /// Applies `plan` and the subscription state to `owner`'s key and instances; returns
    /// the instances afterwards.
    pub async fn set_owner_plan(
        self: &Arc<Self>,
        owner: &str,
        plan: Plan,
        active: bool,
    ) -> Result<Vec<Instance>, ServiceError> {
        let store = self.registry.store();
        self.apply_key_state(owner, plan, active).await?;
        for record in self.owned_records(owner) {
            if record.plan == plan {
                continue;
            }
            let update = self
                .registry
                .set_plan(&record.id, plan)
                .await
                .map_err(store_error)?;
            if let Update::Changed(updated) = update {
                self.converge_changed(&updated).await?;
            }
        }
        let previous = store.subscription(owner).await.map_err(store_error)?;
        let was_lapsed = previous.as_ref().is_some_and(|previous| !previous.active);
        let now = now_ms();
        let subscription = Subscription {
            owner: owner.to_owned(),
            plan,
            active,
            lapsed_since_ms: match (&previous, active) {
                (_, true) => None,
                (Some(previous), false) if was_lapsed => previous.lapsed_since_ms.or(Some(now)),
                _ => Some(now),
            },
            stopped_for_lapse: match &previous {
                Some(previous) if was_lapsed && !active => previous.stopped_for_lapse.clone(),
                _ => None,
            },
        };
        store
            .put_subscription(&subscription, now)
            .await
            .map_err(store_error)?;
        if active {
            if let Some(stopped) = previous.and_then(|previous| previous.stopped_for_lapse) {
                self.start_after_renewal(owner, &stopped).await?;
            }
        } else if subscription.stopped_for_lapse.is_none()
            && subscription
                .lapsed_since_ms
                .is_some_and(|since| self.grace_ended(since, now))
        {
            self.stop_for_lapse(&subscription).await?;
        }
        Ok(self
            .owned_records(owner)
            .iter()
            .map(|record| self.view(record))
            .collect())
    }

    /// Tells OpenRouter the key's limit for `plan` and whether it is disabled, then
    /// records it; nothing to do without a key or when both already hold.
    async fn apply_key_state(
        &self,
        owner: &str,
        plan: Plan,
        active: bool,
    ) -> Result<(), ServiceError> {
        let Some(client) = self.provider_keys.client() else {
            return Ok(());
        };
        let store = self.registry.store();
        let Some(key) = store.owner_key(owner).await.map_err(store_error)? else {
            return Ok(());
        };
        let limit_usd = self.provider_keys.config.limit_usd(plan);
        let disabled = !active;
        if key.limit_usd == limit_usd && key.disabled == disabled {
            return Ok(());
        }
        client
            .update(&key.hash, limit_usd, disabled)
            .await
            .map_err(|error| provider_error("updating your AI key", error))?;
        store
            .set_owner_key_limits(owner, &key.hash, limit_usd, disabled, now_ms())
            .await
            .map_err(store_error)?;
        tracing::info!(owner, key_hash = %key.hash, limit_usd, disabled, "provider key follows the plan");
        Ok(())
    }

    /// Whether a lapse that began at `since_ms` is past its grace at `now_ms`.
    pub(crate) fn grace_ended(&self, since_ms: i64, now_ms: i64) -> bool {
        let grace_ms =
            i64::try_from(self.provider_keys.config.lapse_grace.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_sub(since_ms) >= grace_ms
    }

    /// Stops the owner's running instances after the grace, recording which (first, so
    /// a renewal after a crash in between still knows them).
    pub(crate) async fn stop_for_lapse(
        &self,
        subscription: &Subscription,
    ) -> Result<(), ServiceError> {
        let running: Vec<InstanceId> = self
            .owned_records(&subscription.owner)
            .into_iter()
            .filter(|record| record.desired_state == DesiredState::Running)
            .map(|record| record.id)
            .collect();
        let recorded = Subscription {
            stopped_for_lapse: Some(running.iter().map(ToString::to_string).collect()),
            ..subscription.clone()
        };
        self.registry
            .store()
            .put_subscription(&recorded, now_ms())
            .await
            .map_err(store_error)?;
        for id in &running {
            self.set_desired_by_platform(id, DesiredState::Stopped)
                .await?;
        }
        tracing::info!(owner = %subscription.owner, stopped = running.len(), "instances stopped: the subscription lapsed past its grace");
        Ok(())
    }

    /// Starts again the instances a lapse stopped (those still there).
    async fn start_after_renewal(
        &self,
        owner: &str,
        stopped: &[String],
    ) -> Result<(), ServiceError> {
        for id in stopped.iter().filter_map(|id| InstanceId::parse(id).ok()) {
            let owned = self
                .registry
                .get(&id)
                .is_some_and(|record| record.owner == owner && record.deleting.is_none());
            if owned {
                self.set_desired_by_platform(&id, DesiredState::Running)
                    .await?;
            }
        }
        tracing::info!(
            owner,
            started = stopped.len(),
            "instances started: the subscription was renewed"
        );
        Ok(())
    }

    /// Sets the desired state of `id` for the platform's own reasons (no caller check).
    async fn set_desired_by_platform(
        &self,
        id: &InstanceId,
        desired_state: DesiredState,
    ) -> Result<(), ServiceError> {
        let update = self
            .registry
            .set_desired_state(id, desired_state)
            .await
            .map_err(store_error)?;
        if let Update::Changed(updated) = update {
            self.converge_changed(&updated).await?;
        }
        Ok(())
    }

    /// Applies a changed record and tells watchers.
    pub(crate) async fn converge_changed(
        &self,
        record: &crate::model::InstanceRecord,
    ) -> Result<(), ServiceError> {
        self.apply_if_leading(record).await.map_err(runtime_error)?;
        self.hub.updated(self.view(record));
        Ok(())
    }

    /// The owner's instances that are not being deleted.
    pub(crate) fn owned_records(&self, owner: &str) -> Vec<crate::model::InstanceRecord> {
        self.registry
            .all()
            .into_iter()
            .filter(|record| record.owner == owner && record.deleting.is_none())
            .collect()
    }
}

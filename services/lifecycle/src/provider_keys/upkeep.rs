//! The periodic pass of the leader: lapses past their grace stop their instances, keys
//! of owners with nothing left (and retired keys OpenRouter could not be told about) are
//! deleted, and keys crossing 80 % or 100 % of their
//! limit raise an alert on the owner's instances' watch streams
//! (docs/product/provider-keys.md#upkeep).

use std::{sync::Arc, time::Duration};

use clawfleet_contracts::lifecycle::v1::UsageAlert;
use tokio_util::sync::CancellationToken;

use super::store::OwnerKey;
use crate::{model::now_ms, service::Lifecycle};

/// A key must have been left unused this long before the pass deletes it, so a create
/// that just provisioned it (and has not stored its instance yet) keeps it.
const UNUSED_KEY_AGE: Duration = Duration::from_secs(60);
/// The shares of the limit that raise an alert, highest first.
const ALERT_PERCENTS: [i32; 2] = [100, 80];

/// How often the pass runs: a quarter of the grace, between 1 s and 1 minute.
pub fn upkeep_interval(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Runs [`run_once`] on a schedule until `shutdown`; usage is read every `usage_poll`.
pub fn spawn(
    lifecycle: Arc<Lifecycle>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = lifecycle.provider_keys.config.clone();
        let mut ticker = tokio::time::interval(upkeep_interval(config.lapse_grace));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut usage_read_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let read_usage = usage_read_at.is_none_or(|at| at.elapsed() >= config.usage_poll);
            if read_usage {
                usage_read_at = Some(tokio::time::Instant::now());
            }
            run_once(&lifecycle, read_usage).await;
        }
    })
}

/// One pass (only while leading).
#[tracing::instrument(name = "upkeep", skip_all, parent = None, fields(otel.name = "provider key upkeep"))]
pub async fn run_once(lifecycle: &Lifecycle, read_usage: bool) {
    if !lifecycle.is_leader() {
        return;
    }
    stop_lapsed(lifecycle).await;
    if lifecycle.provider_keys.client().is_none() {
        return;
    }
    delete_unused_keys(lifecycle).await;
    delete_retired_keys(lifecycle).await;
    if read_usage {
        raise_usage_alerts(lifecycle).await;
    }
}

async fn stop_lapsed(lifecycle: &Lifecycle) {
    let grace_ms =
        i64::try_from(lifecycle.provider_keys.config.lapse_grace.as_millis()).unwrap_or(i64::MAX);
    let due = match lifecycle
        .registry
        .store()
        .lapses_due(now_ms().saturating_sub(grace_ms))
        .await
    {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "cannot list lapsed subscriptions; will retry");
            return;
        }
    };
    for subscription in due {
        if let Err(error) = lifecycle.stop_for_lapse(&subscription).await {
            tracing::warn!(owner = %subscription.owner, %error, "cannot stop the instances of a lapsed subscription yet; will retry");
        }
    }
}

async fn delete_unused_keys(lifecycle: &Lifecycle) {
    let age_ms = i64::try_from(UNUSED_KEY_AGE.as_millis()).unwrap_or(i64::MAX);
    let unused = match lifecycle
        .registry
        .store()
        .unused_owner_keys(now_ms().saturating_sub(age_ms))
        .await
    {
        Ok(unused) => unused,
        Err(error) => {
            tracing::warn!(%error, "cannot list unused provider keys; will retry");
            return;
        }
    };
    for key in unused {
        lifecycle.delete_owner_key(&key).await;
    }
}

async fn delete_retired_keys(lifecycle: &Lifecycle) {
    let store = lifecycle.registry.store();
    let retired = match store.retired_keys(100).await {
        Ok(retired) => retired,
        Err(error) => {
            tracing::warn!(%error, "cannot list retired provider keys; will retry");
            return;
        }
    };
    for hash in retired {
        if lifecycle.delete_at_provider(&hash).await
            && let Err(error) = store.forget_retired_key(&hash).await
        {
            tracing::warn!(key_hash = %hash, %error, "cannot forget a deleted retired key yet");
        }
    }
}

async fn raise_usage_alerts(lifecycle: &Lifecycle) {
    let keys = match lifecycle.registry.store().owner_keys(10_000).await {
        Ok(keys) => keys,
        Err(error) => {
            tracing::warn!(%error, "cannot list provider keys for usage; will retry");
            return;
        }
    };
    for key in keys {
        if let Err(error) = lifecycle.check_usage(&key).await {
            tracing::warn!(owner = %key.owner, key_hash = %key.hash, %error, "cannot read a provider key's usage; will retry");
        }
    }
}

impl Lifecycle {
    /// Reads the key's usage and, when it crossed an alert share not yet announced,
    /// announces it on each of the owner's instances.
    pub(crate) async fn check_usage(&self, key: &OwnerKey) -> Result<(), super::ProviderError> {
        let Some(client) = self.provider_keys.client() else {
            return Ok(());
        };
        let info = client.get(&key.hash).await?;
        let Some(limit_usd) = info.limit.filter(|limit| *limit > 0.0) else {
            return Ok(());
        };
        let percent = info.usage / limit_usd * 100.0;
        let reached = ALERT_PERCENTS
            .into_iter()
            .find(|threshold| percent >= f64::from(*threshold))
            .unwrap_or(0);
        if reached == key.alerted_percent {
            return Ok(());
        }
        // Lower after a plan upgrade or a new period: remembered so the next crossing
        // alerts again; never announced.
        if let Err(error) = self
            .registry
            .store()
            .set_owner_key_alert(&key.owner, &key.hash, reached)
            .await
        {
            tracing::warn!(owner = %key.owner, %error, "cannot record a usage alert; it may repeat");
        }
        if reached < key.alerted_percent {
            return Ok(());
        }
        let alert = UsageAlert {
            percent: u32::try_from(reached).unwrap_or(0),
            usage_usd: info.usage,
            limit_usd,
            message: alert_message(reached, info.usage, limit_usd),
        };
        tracing::info!(owner = %key.owner, key_hash = %key.hash, percent = reached, "provider key usage alert");
        for record in self.owned_records(&key.owner) {
            self.hub.usage_alert(self.view(&record), alert.clone());
        }
        Ok(())
    }
}

/// The alert's text for people.
pub fn alert_message(percent: i32, usage_usd: f64, limit_usd: f64) -> String {
    if percent >= 100 {
        format!(
            "You have used all of your AI credit (${usage_usd:.2} of ${limit_usd:.2}); your assistant cannot answer until the limit is raised or renewed."
        )
    } else {
        format!("You have used {percent} % of your AI credit (${usage_usd:.2} of ${limit_usd:.2}).")
    }
}

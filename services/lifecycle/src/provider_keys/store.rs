//! The per-owner rows of provider keys and subscriptions, on the instance store's
//! database (tables `provider_keys` and `owner_subscriptions`, migrations 0010).

use clawfleet_database::on_backend;
use clawfleet_kit::secret::SecretString;

use crate::{
    model::Plan,
    store::{InstanceStore, StoreError},
};

/// One owner's provisioned key.
#[derive(Debug, Clone)]
pub struct OwnerKey {
    pub owner: String,
    /// OpenRouter's identifier of the key (safe to log).
    pub hash: String,
    pub value: SecretString,
    pub limit_usd: f64,
    pub disabled: bool,
    /// The highest usage alert sent (0, 80 or 100).
    pub alerted_percent: i32,
    pub updated_at_ms: i64,
}

/// One owner's plan and subscription state.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub owner: String,
    pub plan: Plan,
    pub active: bool,
    pub lapsed_since_ms: Option<i64>,
    /// Instances the lapse stopped, once the grace ended (`None` while it runs).
    pub stopped_for_lapse: Option<Vec<String>>,
}

type KeyRow = (String, String, String, f64, bool, i32, i64);
const KEY_COLUMNS: &str =
    "owner, key_hash, key_value, limit_usd, disabled, alerted_percent, updated_at_ms";
type SubscriptionRow = (String, String, bool, Option<i64>, Option<String>);
const SUBSCRIPTION_COLUMNS: &str = "owner, plan, active, lapsed_since_ms, stopped_for_lapse";

fn key_from_row(
    (owner, hash, value, limit_usd, disabled, alerted_percent, updated_at_ms): KeyRow,
) -> OwnerKey {
    OwnerKey {
        owner,
        hash,
        value: SecretString::from(value),
        limit_usd,
        disabled,
        alerted_percent,
        updated_at_ms,
    }
}

fn subscription_from_row(
    (owner, plan, active, lapsed_since_ms, stopped): SubscriptionRow,
) -> Result<Subscription, StoreError> {
    let plan = Plan::from_name(&plan)
        .map_err(|error| StoreError::Corrupt(format!("subscription of {owner}: {error}")))?;
    let stopped_for_lapse = stopped
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|error| StoreError::Corrupt(format!("subscription of {owner}: {error}")))?;
    Ok(Subscription {
        owner,
        plan,
        active,
        lapsed_since_ms,
        stopped_for_lapse,
    })
}

impl InstanceStore {
    /// The key of `owner`, if one was provisioned.
    pub async fn owner_key(&self, owner: &str) -> Result<Option<OwnerKey>, StoreError> {
        let select = format!("SELECT {KEY_COLUMNS} FROM provider_keys WHERE owner = $1");
        let row: Option<KeyRow> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(owner)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(key_from_row))
    }

    /// Records `key` unless the owner already has one; false when one was there (a
    /// concurrent create won: the caller deletes its own key and uses the stored one).
    pub async fn insert_owner_key(&self, key: &OwnerKey, now_ms: i64) -> Result<bool, StoreError> {
        use clawfleet_kit::secret::ExposeSecret;
        let inserted = on_backend!(self, |pool, _begin| {
            sqlx::query(
                "INSERT INTO provider_keys (owner, key_hash, key_value, limit_usd, disabled, \
                 alerted_percent, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $6) ON CONFLICT (owner) DO NOTHING",
            )
            .bind(&key.owner)
            .bind(&key.hash)
            .bind(key.value.expose_secret())
            .bind(key.limit_usd)
            .bind(key.disabled)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted == 1)
    }

    /// Records the limit and state OpenRouter now holds for the key `hash` of `owner`.
    pub async fn set_owner_key_limits(
        &self,
        owner: &str,
        hash: &str,
        limit_usd: f64,
        disabled: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = on_backend!(self, |pool, _begin| {
            sqlx::query(
                "UPDATE provider_keys SET limit_usd = $3, disabled = $4, updated_at_ms = $5 \
                 WHERE owner = $1 AND key_hash = $2",
            )
            .bind(owner)
            .bind(hash)
            .bind(limit_usd)
            .bind(disabled)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Replaces the key `old_hash` of `owner` by a rotated one; false when the stored
    /// key is no longer `old_hash`.
    pub async fn replace_owner_key(
        &self,
        owner: &str,
        old_hash: &str,
        new_hash: &str,
        new_value: &SecretString,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        use clawfleet_kit::secret::ExposeSecret;
        let changed = on_backend!(self, |pool, _begin| {
            sqlx::query(
                "UPDATE provider_keys SET key_hash = $3, key_value = $4, alerted_percent = 0, \
                 updated_at_ms = $5 WHERE owner = $1 AND key_hash = $2",
            )
            .bind(owner)
            .bind(old_hash)
            .bind(new_hash)
            .bind(new_value.expose_secret())
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Records the highest usage alert sent for the key `hash`.
    pub async fn set_owner_key_alert(
        &self,
        owner: &str,
        hash: &str,
        alerted_percent: i32,
    ) -> Result<(), StoreError> {
        on_backend!(self, |pool, _begin| {
            sqlx::query(
                "UPDATE provider_keys SET alerted_percent = $3 WHERE owner = $1 AND key_hash = $2",
            )
            .bind(owner)
            .bind(hash)
            .bind(alerted_percent)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Forgets the key `hash` of `owner` (after OpenRouter deleted it).
    pub async fn forget_owner_key(&self, owner: &str, hash: &str) -> Result<bool, StoreError> {
        let gone = on_backend!(self, |pool, _begin| {
            sqlx::query("DELETE FROM provider_keys WHERE owner = $1 AND key_hash = $2")
                .bind(owner)
                .bind(hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(gone == 1)
    }

    /// Keys whose owner has no instance and no kept data, last changed before
    /// `before_ms` (so a create that just provisioned one is left alone).
    pub async fn unused_owner_keys(&self, before_ms: i64) -> Result<Vec<OwnerKey>, StoreError> {
        let select = format!(
            "SELECT {KEY_COLUMNS} FROM provider_keys k WHERE updated_at_ms <= $1 \
             AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.owner = k.owner) \
             AND NOT EXISTS (SELECT 1 FROM kept_data d WHERE d.owner = k.owner) \
             ORDER BY owner LIMIT 100"
        );
        let rows: Vec<KeyRow> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(before_ms)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(key_from_row).collect())
    }

    /// The key of `owner` if they have no instance and no kept data left.
    pub async fn owner_key_if_unused(&self, owner: &str) -> Result<Option<OwnerKey>, StoreError> {
        let select = format!(
            "SELECT {KEY_COLUMNS} FROM provider_keys k WHERE owner = $1 \
             AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.owner = k.owner) \
             AND NOT EXISTS (SELECT 1 FROM kept_data d WHERE d.owner = k.owner)"
        );
        let row: Option<KeyRow> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(owner)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(key_from_row))
    }

    /// Every stored key (for the usage watcher), at most `limit`.
    pub async fn owner_keys(&self, limit: i64) -> Result<Vec<OwnerKey>, StoreError> {
        let select = format!("SELECT {KEY_COLUMNS} FROM provider_keys ORDER BY owner LIMIT $1");
        let rows: Vec<KeyRow> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(key_from_row).collect())
    }

    /// Records a key the platform no longer uses but could not delete at OpenRouter.
    pub async fn retire_key(&self, owner: &str, hash: &str, now_ms: i64) -> Result<(), StoreError> {
        on_backend!(self, |pool, _begin| {
            sqlx::query(
                "INSERT INTO retired_provider_keys (key_hash, owner, retired_at_ms) \
                 VALUES ($1, $2, $3) ON CONFLICT (key_hash) DO NOTHING",
            )
            .bind(hash)
            .bind(owner)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Hashes of retired keys still to delete at OpenRouter, oldest first.
    pub async fn retired_keys(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(
                "SELECT key_hash FROM retired_provider_keys ORDER BY retired_at_ms LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(hash,)| hash).collect())
    }

    /// Forgets a retired key once OpenRouter deleted it.
    pub async fn forget_retired_key(&self, hash: &str) -> Result<(), StoreError> {
        on_backend!(self, |pool, _begin| {
            sqlx::query("DELETE FROM retired_provider_keys WHERE key_hash = $1")
                .bind(hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// The subscription state of `owner`, if SetOwnerPlan ever set one.
    pub async fn subscription(&self, owner: &str) -> Result<Option<Subscription>, StoreError> {
        let select =
            format!("SELECT {SUBSCRIPTION_COLUMNS} FROM owner_subscriptions WHERE owner = $1");
        let row: Option<SubscriptionRow> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(owner)
                .fetch_optional(pool)
                .await?
        });
        row.map(subscription_from_row).transpose()
    }

    /// Writes the subscription state of `subscription.owner`.
    pub async fn put_subscription(
        &self,
        subscription: &Subscription,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let stopped = subscription
            .stopped_for_lapse
            .as_ref()
            .map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned()));
        on_backend!(self, |pool, _begin| {
            sqlx::query(
                "INSERT INTO owner_subscriptions (owner, plan, active, lapsed_since_ms, \
                 stopped_for_lapse, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (owner) DO UPDATE SET plan = excluded.plan, \
                 active = excluded.active, lapsed_since_ms = excluded.lapsed_since_ms, \
                 stopped_for_lapse = excluded.stopped_for_lapse, \
                 updated_at_ms = excluded.updated_at_ms",
            )
            .bind(&subscription.owner)
            .bind(subscription.plan.as_str())
            .bind(subscription.active)
            .bind(subscription.lapsed_since_ms)
            .bind(stopped)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Lapsed subscriptions whose grace ended (lapsed at or before `cutoff_ms`) and whose
    /// instances were not stopped yet.
    pub async fn lapses_due(&self, cutoff_ms: i64) -> Result<Vec<Subscription>, StoreError> {
        let select = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM owner_subscriptions \
             WHERE lapsed_since_ms IS NOT NULL AND lapsed_since_ms <= $1 \
             AND stopped_for_lapse IS NULL ORDER BY lapsed_since_ms LIMIT 100"
        );
        let rows: Vec<SubscriptionRow> = on_backend!(self, |pool, _begin| {
            sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(cutoff_ms)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(subscription_from_row).collect()
    }
}

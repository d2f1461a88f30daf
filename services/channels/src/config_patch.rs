//! Changing a gateway's config the safe way: `config.get` for the base hash, then
//! `config.patch` with it (merge semantics). A concurrent change makes the hash stale;
//! the patch is then retried once on a fresh hash, so two racing setups both land.

use std::time::Duration;

use clawfleet_kit::{error::ServiceError, identity::Caller};
use serde_json::{Value, json};

use crate::upstream::{Upstream, gateway_failure};

const CONFIG_CALL_DEADLINE: Duration = Duration::from_secs(30);
/// Attempts in all: the first, and one retry on a stale hash.
const PATCH_ATTEMPTS: usize = 2;

/// True when the gateway refused a patch because its config changed since `config.get`.
fn is_stale_hash(error: &clawfleet_contracts::bridge::v1::GatewayError) -> bool {
    error.code == "INVALID_REQUEST" && error.message.contains("config changed since last load")
}

/// True when the gateway saved a patch but applied a newer config that supersedes it.
fn is_persisted_but_superseded(error: &clawfleet_contracts::bridge::v1::GatewayError) -> bool {
    error.code == "UNAVAILABLE"
        && error.message.contains("persisted but was not applied")
        && error.message.contains("superseded")
}

/// `config.get`: the config with its hash.
async fn config_get(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
) -> Result<Value, ServiceError> {
    upstream
        .call_ok(
            caller,
            instance_id,
            "config.get",
            json!({}),
            CONFIG_CALL_DEADLINE,
        )
        .await
}

/// Applies `patch` (a JSON object merged into the config); returns `config.patch`'s result.
pub async fn patch_config(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    patch: &Value,
) -> Result<Value, ServiceError> {
    let raw = patch.to_string();
    let mut last_error = None;
    for _ in 0..PATCH_ATTEMPTS {
        let current = config_get(upstream, caller, instance_id).await?;
        let base_hash = current
            .get("hash")
            .and_then(Value::as_str)
            .ok_or_else(|| ServiceError::internal("config.get answered without a hash"))?
            .to_owned();
        let params = json!({"raw": raw, "baseHash": base_hash, "note": "clawfleet"});
        match upstream
            .call(
                caller,
                instance_id,
                "config.patch",
                params,
                CONFIG_CALL_DEADLINE,
            )
            .await?
        {
            Ok(result) => return Ok(result),
            Err(error) if is_persisted_but_superseded(&error) => {
                // Saved, and a newer change that contains it was applied instead: it landed.
                let config = config_get(upstream, caller, instance_id).await?;
                return Ok(
                    json!({"ok": true, "config": config.get("config").cloned().unwrap_or_else(|| json!({}))}),
                );
            }
            Err(error) if is_stale_hash(&error) => {
                tracing::info!(
                    instance = instance_id,
                    "config changed under a patch; retrying on a fresh hash"
                );
                last_error = Some(error);
            }
            Err(error) => return Err(gateway_failure("config.patch", &error)),
        }
    }
    let detail = last_error.map(|error| error.message).unwrap_or_default();
    Err(ServiceError::new(
        clawfleet_kit::error::ErrorCode::Conflict,
        format!("the gateway config kept changing during the update; retry ({detail})"),
    )
    .with_retry_after(1))
}

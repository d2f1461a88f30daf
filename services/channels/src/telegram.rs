//! Telegram: set the bot token, read the channel status, log out (docs/product/gateways.md#telegram).

use std::time::Duration;

use clawfleet_kit::{error::ServiceError, identity::Caller};
use serde_json::{Map, Value, json};

use crate::{
    config_patch::patch_config,
    upstream::Upstream,
    validation::{validate_account_id, validate_bot_token},
};

const STATUS_DEADLINE: Duration = Duration::from_secs(30);
const LOGOUT_DEADLINE: Duration = Duration::from_secs(30);
/// What the gateway writes in place of secrets in the config it returns.
const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// The `channels.telegram` patch that sets a bot token, for the default account or a named one.
pub fn setup_patch(bot_token: &str, account_id: &str, api_root: Option<&str>) -> Value {
    let mut account = Map::new();
    account.insert("enabled".into(), json!(true));
    account.insert("botToken".into(), json!(bot_token));
    if let Some(api_root) = api_root {
        account.insert("apiRoot".into(), json!(api_root));
    }
    let telegram = if account_id.is_empty() || account_id == "default" {
        Value::Object(account)
    } else {
        json!({"enabled": true, "accounts": {account_id: Value::Object(account)}})
    };
    json!({"channels": {"telegram": telegram}})
}

/// Sets the bot token; returns the resulting `channels.telegram` config with secrets redacted.
pub async fn setup(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    bot_token: &str,
    account_id: &str,
    api_root: Option<&str>,
) -> Result<Value, ServiceError> {
    validate_bot_token(bot_token)?;
    validate_account_id(account_id)?;
    let patch = setup_patch(bot_token, account_id, api_root);
    let result = patch_config(upstream, caller, instance_id, &patch).await?;
    let mut telegram = result
        .pointer("/config/channels/telegram")
        .cloned()
        .unwrap_or_else(|| json!({}));
    redact(&mut telegram, bot_token);
    tracing::info!(
        instance = instance_id,
        account = account_id,
        "telegram bot token set"
    );
    Ok(telegram)
}

/// `channels.status` for Telegram: the channel summary and its accounts.
pub async fn status(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    probe: bool,
) -> Result<(Value, Value), ServiceError> {
    channel_status_of(upstream, caller, instance_id, "telegram", probe).await
}

/// `channels.status` for one channel. A channel whose plugin is not loaded (never
/// configured, or disabled) is reported as not configured rather than as an error.
pub async fn channel_status_of(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    channel: &str,
    probe: bool,
) -> Result<(Value, Value), ServiceError> {
    let params = json!({"probe": probe, "channel": channel});
    match upstream
        .call(
            caller,
            instance_id,
            "channels.status",
            params,
            STATUS_DEADLINE,
        )
        .await?
    {
        Ok(result) => Ok(channel_status(&result, channel)),
        Err(error)
            if error.code == "INVALID_REQUEST" && error.message.contains("unknown channel") =>
        {
            Ok((json!({"configured": false, "running": false}), json!([])))
        }
        Err(error) => Err(crate::upstream::gateway_failure("channels.status", &error)),
    }
}

/// The summary and accounts of one channel in a `channels.status` result.
pub fn channel_status(result: &Value, channel: &str) -> (Value, Value) {
    let summary = result
        .pointer(&format!("/channels/{channel}"))
        .cloned()
        .unwrap_or_else(|| json!({"configured": false, "running": false}));
    let accounts = result
        .pointer(&format!("/channelAccounts/{channel}"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    (summary, accounts)
}

/// Disconnects the bot and removes its stored token, so it stays gone after a restart.
pub async fn logout(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    account_id: &str,
) -> Result<(bool, bool), ServiceError> {
    validate_account_id(account_id)?;
    let mut params = json!({"channel": "telegram"});
    if !account_id.is_empty() {
        params["accountId"] = json!(account_id);
    }
    let result = upstream
        .call_ok(
            caller,
            instance_id,
            "channels.logout",
            params,
            LOGOUT_DEADLINE,
        )
        .await?;
    let cleared = result
        .get("cleared")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let logged_out = result
        .get("loggedOut")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    remove_stored_credentials(upstream, caller, instance_id, account_id).await?;
    tracing::info!(
        instance = instance_id,
        cleared,
        logged_out,
        "telegram logged out"
    );
    Ok((cleared, logged_out))
}

/// Removes the token from the config so the channel does not come back on restart.
async fn remove_stored_credentials(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    account_id: &str,
) -> Result<(), ServiceError> {
    let patch = if account_id.is_empty() || account_id == "default" {
        json!({"channels": {"telegram": {"botToken": null}}})
    } else {
        json!({"channels": {"telegram": {"accounts": {account_id: null}}}})
    };
    patch_config(upstream, caller, instance_id, &patch)
        .await
        .map(|_| ())
}

/// Replaces the token wherever it appears, and every secret-named field, so no response
/// echoes a credential (whether the gateway redacted it already or not).
pub fn redact(value: &mut Value, secret: &str) {
    match value {
        Value::String(text) if !secret.is_empty() && text.contains(secret) => {
            *text = REDACTED.to_owned()
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact(item, secret)),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let lowered = key.to_ascii_lowercase();
                let secret_named = lowered.ends_with("token")
                    || lowered.contains("secret")
                    || lowered.ends_with("apikey");
                if secret_named && item.is_string() {
                    *item = Value::String(REDACTED.to_owned());
                } else {
                    redact(item, secret);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_patches_the_default_or_a_named_account() {
        let default = setup_patch("1:abc", "", Some("http://127.0.0.1:9"));
        assert_eq!(
            default,
            json!({"channels": {"telegram": {"enabled": true, "botToken": "1:abc", "apiRoot": "http://127.0.0.1:9"}}})
        );
        let named = setup_patch("1:abc", "work", None);
        assert_eq!(
            named["channels"]["telegram"]["accounts"]["work"]["botToken"],
            "1:abc"
        );
    }

    #[test]
    fn the_token_never_survives_redaction() {
        let mut config = json!({"botToken": "1:secret", "accounts": {"a": {"botToken": "x 1:secret y", "webhookSecret": "w"}}, "other": "1:secret", "n": 3});
        redact(&mut config, "1:secret");
        assert!(!config.to_string().contains("1:secret"));
        assert_eq!(config["accounts"]["a"]["webhookSecret"], REDACTED);
        assert_eq!(config["n"], 3);
    }

    #[test]
    fn missing_channels_read_as_not_configured() {
        let (summary, accounts) = channel_status(&json!({"channels": {}}), "telegram");
        assert_eq!(summary["configured"], false);
        assert_eq!(accounts, json!([]));
    }
}

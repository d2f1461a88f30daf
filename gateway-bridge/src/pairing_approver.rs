//! The instance-side pairing helper: runs next to a gateway (in its pod, or as a local
//! process), connects over loopback — where a token-authenticated backend keeps its
//! scopes without pairing — and approves device-pairing requests from exactly the
//! platform's device id. Requests from any other device are left alone: they are never
//! approved here.

use std::{collections::HashSet, sync::Arc, time::Duration};

use clawfleet_kit::secret::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::connection::{ConnectOptions, Connection};

/// How often pending requests are listed (a request lives 5 minutes on the gateway).
const POLL_INTERVAL: Duration = Duration::from_millis(500);
const CALL_DEADLINE: Duration = Duration::from_secs(10);
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// What the helper approves, and where.
#[derive(Clone, Debug)]
pub struct ApproverConfig {
    /// `ws://127.0.0.1:<port>` of the gateway beside the helper.
    pub gateway_url: String,
    pub gateway_token: SecretString,
    /// The only device id ever approved: the platform bridge's.
    pub platform_device_id: String,
}

/// A pending device-pairing request as `device.pair.list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDevice {
    pub request_id: String,
    pub device_id: String,
    pub role: String,
}

/// The pending requests in a `device.pair.list` result.
pub fn pending_devices(list: &Value) -> Vec<PendingDevice> {
    let Some(pending) = list.get("pending").and_then(Value::as_array) else {
        return Vec::new();
    };
    pending
        .iter()
        .filter_map(|item| {
            Some(PendingDevice {
                request_id: item.get("requestId")?.as_str()?.to_owned(),
                device_id: item.get("deviceId")?.as_str()?.to_owned(),
                role: item
                    .get("role")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .collect()
}

/// The requests the helper approves: the platform's device asking for the operator role.
pub fn approvable<'a>(
    pending: &'a [PendingDevice],
    platform_device_id: &str,
) -> Vec<&'a PendingDevice> {
    pending
        .iter()
        .filter(|request| request.device_id == platform_device_id && request.role == "operator")
        .collect()
}

/// Runs until `shutdown`, reconnecting whenever the gateway restarts.
pub async fn run(config: ApproverConfig, shutdown: CancellationToken) {
    let options = ConnectOptions {
        url: config.gateway_url.clone(),
        token: config.gateway_token.clone(),
        identity: None,
        device_token: None,
        max_in_flight: 16,
        connect_timeout: Duration::from_secs(10),
        extra_headers: Vec::new(),
    };
    let mut reported = HashSet::new();
    while !shutdown.is_cancelled() {
        match Connection::open(&options).await {
            Ok((connection, _hello)) => {
                tracing::info!(gateway = %config.gateway_url, device_id = %config.platform_device_id, "pairing approver connected");
                approve_until_closed(&Arc::new(connection), &config, &mut reported, &shutdown)
                    .await;
            }
            Err(error) => {
                tracing::debug!(gateway = %config.gateway_url, error = %error, "pairing approver cannot connect yet")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn approve_until_closed(
    connection: &Arc<Connection>,
    config: &ApproverConfig,
    reported: &mut HashSet<String>,
    shutdown: &CancellationToken,
) {
    loop {
        let list = match connection
            .call("device.pair.list", json!({}), CALL_DEADLINE)
            .await
        {
            Ok(list) => list,
            Err(error) => {
                tracing::debug!(error = %error, "device.pair.list failed; reconnecting");
                return;
            }
        };
        let pending = pending_devices(&list);
        for request in approvable(&pending, &config.platform_device_id) {
            match connection
                .call(
                    "device.pair.approve",
                    json!({"requestId": request.request_id}),
                    CALL_DEADLINE,
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(request_id = %request.request_id, "approved the platform device")
                }
                Err(error) => {
                    tracing::warn!(request_id = %request.request_id, error = %error, "could not approve the platform device")
                }
            }
        }
        for other in pending
            .iter()
            .filter(|request| request.device_id != config.platform_device_id)
        {
            if reported.insert(other.request_id.clone()) {
                tracing::info!(request_id = %other.request_id, device_id = %other.device_id, "left a pairing request from another device unapproved");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = connection.closed() => return,
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_platform_device_asking_for_operator_is_approvable() {
        let list = json!({"pending": [
            {"requestId": "r1", "deviceId": "platform", "role": "operator"},
            {"requestId": "r2", "deviceId": "stranger", "role": "operator"},
            {"requestId": "r3", "deviceId": "platform", "role": "node"},
            {"requestId": "r4"}
        ], "paired": []});
        let pending = pending_devices(&list);
        assert_eq!(pending.len(), 3);
        let chosen: Vec<&str> = approvable(&pending, "platform")
            .iter()
            .map(|request| request.request_id.as_str())
            .collect();
        assert_eq!(chosen, vec!["r1"]);
        assert!(approvable(&pending, "").is_empty());
    }
}

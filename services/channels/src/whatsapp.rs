//! WhatsApp: start a link (QR as a data URL), wait for it, read the status (docs/product/gateways.md#whatsapp).
//! The waits are bounded by `timeoutMs`, so a gateway with no route to WhatsApp answers
//! with a clear error in time instead of hanging.

use std::time::Duration;

use clawfleet_kit::{
    error::{ErrorCode, ServiceError},
    identity::Caller,
};
use serde_json::{Value, json};

use crate::{telegram::channel_status_of, upstream::Upstream, validation::bounded_timeout_ms};

/// Defaults of the original Control UI.
const DEFAULT_START_TIMEOUT_MS: u32 = 30_000;
const DEFAULT_WAIT_TIMEOUT_MS: u32 = 120_000;
/// Extra time the bridge call gets beyond the gateway's own timeout.
const CALL_SLACK: Duration = Duration::from_secs(10);

/// What a login step answered.
#[derive(Debug, Default, PartialEq)]
pub struct LoginStep {
    pub qr_data_url: String,
    pub message: String,
    pub connected: bool,
}

fn login_step(result: &Value) -> LoginStep {
    let text = |key: &str| {
        result
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    LoginStep {
        qr_data_url: text("qrDataUrl"),
        message: text("message"),
        connected: result
            .get("connected")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

pub async fn start_login(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    force: bool,
    timeout_ms: u32,
) -> Result<LoginStep, ServiceError> {
    let timeout_ms = bounded_timeout_ms(timeout_ms, DEFAULT_START_TIMEOUT_MS);
    let params = json!({"channel": "whatsapp", "force": force, "timeoutMs": timeout_ms});
    let deadline = Duration::from_millis(u64::from(timeout_ms)) + CALL_SLACK;
    let result = upstream
        .call_ok(caller, instance_id, "web.login.start", params, deadline)
        .await?;
    let step = login_step(&result);
    // A login that could not start (no route to WhatsApp, QR timeout) is answered as a
    // success carrying only a message: report it as the failure it is.
    if step.qr_data_url.is_empty() && !step.connected {
        let reason = if step.message.is_empty() {
            "no qr code was produced".to_owned()
        } else {
            step.message
        };
        return Err(ServiceError::new(
            ErrorCode::Unavailable,
            format!("whatsapp login could not start: {reason}"),
        )
        .with_retry_after(5));
    }
    Ok(step)
}

pub async fn wait_login(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    timeout_ms: u32,
    current_qr_data_url: &str,
) -> Result<LoginStep, ServiceError> {
    let timeout_ms = bounded_timeout_ms(timeout_ms, DEFAULT_WAIT_TIMEOUT_MS);
    let mut params = json!({"channel": "whatsapp", "timeoutMs": timeout_ms});
    if !current_qr_data_url.is_empty() {
        params["currentQrDataUrl"] = json!(current_qr_data_url);
    }
    let deadline = Duration::from_millis(u64::from(timeout_ms)) + CALL_SLACK;
    let result = upstream
        .call_ok(caller, instance_id, "web.login.wait", params, deadline)
        .await?;
    Ok(login_step(&result))
}

pub async fn status(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    probe: bool,
) -> Result<(Value, Value), ServiceError> {
    channel_status_of(upstream, caller, instance_id, "whatsapp", probe).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_steps_read_the_gateway_answer() {
        let step = login_step(
            &json!({"qrDataUrl": "data:image/png;base64,AA", "message": "scan", "connected": false}),
        );
        assert_eq!(step.qr_data_url, "data:image/png;base64,AA");
        assert!(!step.connected);
        assert_eq!(login_step(&json!({})), LoginStep::default());
    }
}

//! DM pairing (docs/product/gateways.md#dm-pairing). The gateway's RPC lists requests by an opaque `requestId` and
//! never shows the 8-letter code people type; its CLI shows the code. List joins the
//! two by sender; approve takes a code (the CLI inside the instance) or a request id
//! (`channels.pairing.approve`).

use std::{collections::HashMap, time::Duration};

use clawfleet_contracts::{channels::v1::PairingRequest, json::json_to_struct};
use clawfleet_kit::{
    error::{ErrorCode, ServiceError},
    identity::Caller,
};
use serde_json::{Value, json};

use crate::{
    upstream::{Upstream, gateway_failure},
    validation::{validate_account_id, validate_channel, validate_pairing_code},
};

const RPC_DEADLINE: Duration = Duration::from_secs(30);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Pending requests of `channel`, each with its code.
pub async fn list(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    channel: &str,
    account_id: &str,
) -> Result<Vec<PairingRequest>, ServiceError> {
    validate_channel(channel)?;
    validate_account_id(account_id)?;
    let mut params = json!({"channel": channel});
    if !account_id.is_empty() {
        params["accountId"] = json!(account_id);
    }
    let listed = upstream
        .call(
            caller,
            instance_id,
            "channels.pairing.list",
            params,
            RPC_DEADLINE,
        )
        .await?
        .map_err(|error| match not_set_up(channel, &error.message) {
            Some(refusal) => refusal,
            None => gateway_failure("channels.pairing.list", &error),
        })?;
    let codes = match upstream
        .exec(instance_id, cli_list_argv(channel, account_id), CLI_TIMEOUT)
        .await
    {
        Ok(output) if output.exit_code == 0 => {
            codes_by_sender(&String::from_utf8_lossy(&output.stdout))
        }
        Ok(output) => {
            tracing::warn!(instance = instance_id, exit_code = output.exit_code, stderr = %first_line(&output.stderr), "pairing list cli failed");
            HashMap::new()
        }
        Err(error) => {
            tracing::warn!(instance = instance_id, %error, "pairing list cli could not run");
            HashMap::new()
        }
    };
    Ok(merge(&listed, &codes, channel))
}

/// The gateway knows a channel's pairing only once the channel is set up; until then it
/// answers "unknown pairing channel". A caller is told which step comes first instead.
fn not_set_up(channel: &str, gateway_message: &str) -> Option<ServiceError> {
    if !gateway_message.contains("unknown pairing channel") {
        return None;
    }
    let step = match channel {
        "telegram" => "connect a bot first with telegram/setup",
        "whatsapp" => "link a phone first with whatsapp/qr and whatsapp/wait",
        _ => "set the channel up first",
    };
    Some(ServiceError::new(
        ErrorCode::FailedPrecondition,
        format!("{channel} is not set up on this instance, so it has no pairing requests; {step}"),
    ))
}

/// Options first, then `--`, then the positional arguments: whatever a value holds, the
/// CLI never reads it as an option (ids are also refused when they start with `-`).
fn cli_list_argv(channel: &str, account_id: &str) -> Vec<String> {
    let mut argv: Vec<String> = ["openclaw", "pairing", "list", "--json"]
        .map(String::from)
        .to_vec();
    if !account_id.is_empty() {
        argv.push(format!("--account={account_id}"));
    }
    argv.extend(["--".to_owned(), channel.to_owned()]);
    argv
}

/// `openclaw pairing approve [options] -- <channel> <code>` (see [`cli_list_argv`]).
fn cli_approve_argv(channel: &str, code: &str, account_id: &str, notify: bool) -> Vec<String> {
    let mut argv: Vec<String> = ["openclaw", "pairing", "approve"]
        .map(String::from)
        .to_vec();
    if !account_id.is_empty() {
        argv.push(format!("--account={account_id}"));
    }
    if notify {
        argv.push("--notify".to_owned());
    }
    argv.extend(["--".to_owned(), channel.to_owned(), code.to_owned()]);
    argv
}

/// Sender id -> code, from `openclaw pairing list <channel> --json` (an array of
/// requests, or an object holding one under `requests`/`pending`).
pub fn codes_by_sender(cli_json: &str) -> HashMap<String, String> {
    let Ok(value) = serde_json::from_str::<Value>(cli_json) else {
        return HashMap::new();
    };
    let items = match &value {
        Value::Array(items) => items.clone(),
        Value::Object(map) => ["requests", "pending"]
            .iter()
            .find_map(|key| map.get(*key).and_then(Value::as_array).cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    items
        .iter()
        .filter_map(|item| {
            let code = item.get("code")?.as_str()?.to_owned();
            let sender = ["senderId", "id", "userId"]
                .iter()
                .find_map(|key| item.get(*key).and_then(scalar_text))?;
            Some((sender, code))
        })
        .collect()
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The RPC's requests with the CLI's codes.
fn merge(listed: &Value, codes: &HashMap<String, String>, channel: &str) -> Vec<PairingRequest> {
    let Some(requests) = listed.get("requests").and_then(Value::as_array) else {
        return Vec::new();
    };
    requests
        .iter()
        .filter_map(|request| {
            let id = request.get("requestId")?.as_str()?.to_owned();
            let sender_id = request
                .get("senderId")
                .and_then(scalar_text)
                .unwrap_or_default();
            Some(PairingRequest {
                code: codes.get(&sender_id).cloned().unwrap_or_default(),
                channel: request
                    .get("channel")
                    .and_then(Value::as_str)
                    .unwrap_or(channel)
                    .to_owned(),
                account_id: request
                    .get("accountId")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_owned(),
                metadata: request.get("metadata").cloned().map(json_to_struct),
                created_at: timestamp_text(request.get("createdAt")),
                expires_at: timestamp_text(request.get("expiresAt")),
                sender_id,
                id,
            })
        })
        .collect()
}

/// Milliseconds since the epoch (or text) as RFC 3339.
fn timestamp_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::Number(number)) => number
            .as_i64()
            .and_then(|ms| {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
            })
            .and_then(|moment| {
                moment
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default(),
        Some(Value::String(text)) => text.clone(),
        _ => String::new(),
    }
}

/// What an approval did.
#[derive(Debug, Default)]
pub struct Approval {
    pub request_id: String,
    pub sender_id: String,
    pub notification: String,
}

/// Approves by the code the bot sent, with the gateway's CLI inside the instance.
pub async fn approve_by_code(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    channel: &str,
    account_id: &str,
    code: &str,
    notify: bool,
) -> Result<Approval, ServiceError> {
    validate_channel(channel)?;
    validate_account_id(account_id)?;
    // The gateway matches codes ignoring case; people type them either way.
    let code = code.trim().to_ascii_uppercase();
    validate_pairing_code(&code)?;
    upstream.check_access(caller, instance_id).await?;
    let argv = cli_approve_argv(channel, &code, account_id, notify);
    let output = upstream.exec(instance_id, argv, CLI_TIMEOUT).await?;
    if output.timed_out {
        return Err(ServiceError::new(
            ErrorCode::DeadlineExceeded,
            "the pairing cli did not finish in time",
        ));
    }
    if output.exit_code != 0 {
        let reason = cli_failure_reason(&output.stderr, &output.stdout);
        let lowered = reason.to_lowercase();
        let error_code = if lowered.contains("no pending")
            || lowered.contains("not found")
            || lowered.contains("unknown")
        {
            ErrorCode::NotFound
        } else {
            ErrorCode::BadGateway
        };
        return Err(ServiceError::new(
            error_code,
            format!("pairing code {code} was not approved: {reason}"),
        ));
    }
    tracing::info!(
        instance = instance_id,
        channel,
        notify,
        "pairing approved by code"
    );
    Ok(Approval {
        sender_id: approved_sender(&String::from_utf8_lossy(&output.stdout)).unwrap_or_default(),
        notification: if notify {
            "requested".into()
        } else {
            "not-requested".into()
        },
        ..Approval::default()
    })
}

/// The sender the CLI reports: `Approved telegram sender 4242.`
fn approved_sender(stdout: &str) -> Option<String> {
    stdout.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Approved ")?;
        let (_, after) = rest.split_once(" sender ")?;
        Some(after.trim_end_matches('.').trim().to_owned())
    })
}

/// Approves by the gateway's request id (`channels.pairing.approve`).
pub async fn approve_by_request_id(
    upstream: &Upstream,
    caller: &Caller,
    instance_id: &str,
    channel: &str,
    account_id: &str,
    request_id: &str,
    notify: bool,
) -> Result<Approval, ServiceError> {
    validate_channel(channel)?;
    validate_account_id(account_id)?;
    if request_id.is_empty()
        || request_id.len() > 128
        || !request_id.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(ServiceError::invalid_argument(
            "request id must be the id pairing/list returned",
        ));
    }
    let account = if account_id.is_empty() {
        "default"
    } else {
        account_id
    };
    let params = json!({"channel": channel, "accountId": account, "requestId": request_id, "notify": notify});
    let result = upstream
        .call(
            caller,
            instance_id,
            "channels.pairing.approve",
            params,
            RPC_DEADLINE,
        )
        .await?;
    let result = match result {
        Ok(result) => result,
        Err(error) if error.message.contains("no longer exists") => {
            return Err(ServiceError::not_found(format!(
                "pairing request {request_id} is not pending: {}",
                error.message
            )));
        }
        Err(error) => {
            return Err(crate::upstream::gateway_failure(
                "channels.pairing.approve",
                &error,
            ));
        }
    };
    let text = |key: &str| result.get(key).and_then(scalar_text).unwrap_or_default();
    Ok(Approval {
        request_id: text("requestId"),
        sender_id: text("senderId"),
        notification: text("notification"),
    })
}

/// Why the CLI failed: its `Reason:` line when it printed one, else its first line.
fn cli_failure_reason(stderr: &[u8], stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let reason = text.lines().find_map(|line| {
        line.split_once("Reason:")
            .map(|(_, reason)| reason.trim().to_owned())
    });
    match reason {
        Some(reason) if !reason.is_empty() => reason.chars().take(300).collect(),
        _ if !text.trim().is_empty() => first_line(stderr),
        _ => first_line(stdout),
    }
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_arguments_follow_the_end_of_options() {
        assert_eq!(
            cli_list_argv("telegram", ""),
            ["openclaw", "pairing", "list", "--json", "--", "telegram"]
        );
        assert_eq!(
            cli_list_argv("telegram", "work"),
            [
                "openclaw",
                "pairing",
                "list",
                "--json",
                "--account=work",
                "--",
                "telegram"
            ]
        );
        assert_eq!(
            cli_approve_argv("telegram", "ABCDEFGH", "work", true),
            [
                "openclaw",
                "pairing",
                "approve",
                "--account=work",
                "--notify",
                "--",
                "telegram",
                "ABCDEFGH"
            ]
        );
        assert_eq!(
            cli_approve_argv("telegram", "ABCDEFGH", "", false),
            [
                "openclaw", "pairing", "approve", "--", "telegram", "ABCDEFGH"
            ]
        );
    }

    #[test]
    fn a_channel_not_set_up_yet_is_a_precondition_naming_the_step() {
        let refusal = not_set_up("telegram", "unknown pairing channel: telegram").unwrap();
        assert_eq!(refusal.code, ErrorCode::FailedPrecondition);
        assert!(
            refusal.message.contains("telegram/setup"),
            "{}",
            refusal.message
        );
        let refusal = not_set_up("whatsapp", "unknown pairing channel: whatsapp").unwrap();
        assert!(
            refusal.message.contains("whatsapp/qr"),
            "{}",
            refusal.message
        );
        assert!(not_set_up("telegram", "gateway restarting").is_none());
    }

    #[test]
    fn codes_are_read_from_the_cli_in_either_shape() {
        let array = r#"[{"id":"4242","code":"LUPWVTYQ","meta":{"username":"x"}}]"#;
        assert_eq!(
            codes_by_sender(array).get("4242").map(String::as_str),
            Some("LUPWVTYQ")
        );
        let object = r#"{"channel":"telegram","requests":[{"senderId":4242,"code":"ABCDEFGH"}]}"#;
        assert_eq!(
            codes_by_sender(object).get("4242").map(String::as_str),
            Some("ABCDEFGH")
        );
        assert!(codes_by_sender("not json").is_empty());
    }

    #[test]
    fn cli_failures_give_their_reason() {
        let stderr = b"[openclaw] The CLI command failed.\n[openclaw] Reason: No pending pairing request found for code \"ZZ\".\n";
        assert!(cli_failure_reason(stderr, b"").starts_with("No pending pairing request"));
        assert_eq!(cli_failure_reason(b"", b"boom\n"), "boom");
    }

    #[test]
    fn the_cli_names_the_approved_sender() {
        let stdout = "Approved telegram sender 4242.\nCommand owner configured telegram:4242\n";
        assert_eq!(approved_sender(stdout).as_deref(), Some("4242"));
        assert_eq!(approved_sender("nothing"), None);
    }

    #[test]
    fn rpc_requests_get_their_codes() {
        let listed = json!({"requests": [{"requestId": "r1", "channel": "telegram", "accountId": "default", "senderId": "4242", "metadata": {"username": "bob"}, "createdAt": 0}]});
        let codes = HashMap::from([("4242".to_owned(), "LUPWVTYQ".to_owned())]);
        let merged = merge(&listed, &codes, "telegram");
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].id, "r1");
        assert_eq!(merged[0].code, "LUPWVTYQ");
        assert_eq!(merged[0].created_at, "1970-01-01T00:00:00Z");
    }
}

//! The gateway's wire protocol: JSON text frames (`req`, `res`, `event`), the `connect`
//! handshake params and the parts of `hello-ok` the bridge relies on (docs/reference/openclaw-gateway.md#frames, #handshake).

use std::{borrow::Cow, fmt, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::device_identity::SignedDevice;

/// The only protocol version the bridge speaks (`minProtocol` = `maxProtocol`).
pub const PROTOCOL_VERSION: u32 = 4;
/// `client.id`: the reserved backend client id.
pub const CLIENT_ID: &str = "gateway-client";
/// `client.mode`.
pub const CLIENT_MODE: &str = "backend";
/// `client.platform`.
pub const CLIENT_PLATFORM: &str = "linux";
/// `client.version`: this crate's version.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The role the bridge connects as.
pub const OPERATOR_ROLE: &str = "operator";
/// The scopes the bridge requests, and requires in `hello-ok.auth.scopes`.
pub const REQUIRED_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.pairing",
    "operator.approvals",
];
/// The event the gateway sends first, carrying the nonce to sign.
pub const CHALLENGE_EVENT: &str = "connect.challenge";
/// The gateway's keepalive event.
pub const TICK_EVENT: &str = "tick";

/// The tick interval assumed when `hello-ok` does not state one.
const DEFAULT_TICK_INTERVAL: Duration = Duration::from_secs(30);
/// The post-handshake frame limit assumed when `hello-ok` does not state one (25 MiB).
const DEFAULT_MAX_PAYLOAD: usize = 25 * 1024 * 1024;

/// A request frame, borrowed so that a call serialises straight into one string.
#[derive(Serialize)]
pub struct RequestFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    method: &'a str,
    params: &'a Value,
}

impl<'a> RequestFrame<'a> {
    /// `{"type":"req","id":..,"method":..,"params":..}`.
    pub fn new(id: &'a str, method: &'a str, params: &'a Value) -> Self {
        Self {
            kind: "req",
            id,
            method,
            params,
        }
    }
}

/// The gateway's error object, kept as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayError {
    /// Top-level code: `INVALID_REQUEST`, `FORBIDDEN`, `NOT_PAIRED`, `UNAVAILABLE`, ...
    pub code: String,
    /// Human-readable text.
    #[serde(default)]
    pub message: String,
    /// Structured details; `details.code` refines `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Whether the same request may succeed later.
    #[serde(default)]
    pub retryable: bool,
    /// How long to wait before retrying, when the gateway says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl GatewayError {
    /// `details.code`, when present.
    pub fn detail_code(&self) -> Option<&str> {
        self.details.as_ref()?.get("code")?.as_str()
    }

    /// The gateway turned the request away before dispatch because its operator request queue
    /// was full: the request was not executed and may be sent again.
    pub fn is_busy(&self) -> bool {
        self.code == "UNAVAILABLE"
            && self.retryable
            && self.details.is_none()
            && self.message.starts_with("The server is busy")
    }

    /// A string field of `details`, when present.
    pub fn detail_str(&self, key: &str) -> Option<&str> {
        self.details.as_ref()?.get(key)?.as_str()
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for GatewayError {}

/// An `event` frame.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayEvent {
    /// Event name, e.g. `tick`, `config.changed`.
    pub event: String,
    /// Event payload (`null` when absent).
    pub payload: Value,
    /// Sequence number, when the gateway numbers the event.
    pub seq: Option<u64>,
}

/// A `res` frame.
#[derive(Debug, PartialEq)]
pub struct ResponseFrame<'a> {
    /// The id of the request this answers.
    pub id: Cow<'a, str>,
    /// `payload` when `ok`, else `error`.
    pub result: Result<Value, GatewayError>,
}

/// A parsed incoming frame.
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    /// A response to one of our requests.
    Response(ResponseFrame<'a>),
    /// A server-pushed event.
    Event(GatewayEvent),
    /// A frame of another or unknown type (servers do not send requests to operators).
    Other,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum FrameKind {
    Res,
    Event,
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type")]
    kind: FrameKind,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    error: Option<GatewayError>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
}

impl<'a> Frame<'a> {
    /// Parses one text frame.
    pub fn parse(text: &'a str) -> Result<Self, FrameError> {
        let raw: RawFrame<'a> =
            serde_json::from_str(text).map_err(|error| FrameError(error.to_string()))?;
        match raw.kind {
            FrameKind::Res => {
                let id = raw
                    .id
                    .ok_or_else(|| FrameError("response without id".to_owned()))?;
                let result = if raw.ok == Some(true) {
                    Ok(raw.payload.unwrap_or(Value::Null))
                } else {
                    Err(raw.error.unwrap_or_else(|| GatewayError {
                        code: "UNKNOWN".to_owned(),
                        message: "response not ok and without error".to_owned(),
                        details: None,
                        retryable: false,
                        retry_after_ms: None,
                    }))
                };
                Ok(Frame::Response(ResponseFrame { id, result }))
            }
            FrameKind::Event => Ok(Frame::Event(GatewayEvent {
                event: raw
                    .event
                    .ok_or_else(|| FrameError("event without name".to_owned()))?,
                payload: raw.payload.unwrap_or(Value::Null),
                seq: raw.seq,
            })),
            FrameKind::Unknown => Ok(Frame::Other),
        }
    }
}

/// A frame that is not valid JSON of the expected shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct FrameError(pub String);

/// The payload of `connect.challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ConnectChallenge {
    /// The nonce to sign and echo.
    pub nonce: String,
    /// The server time (ms since the epoch) to use as `signedAt`.
    pub ts: u64,
}

/// The `auth` object of `connect`. The shared token is omitted when empty, so a device may
/// authenticate with its `deviceToken` alone.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAuth<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_token: Option<&'a str>,
}

impl<'a> ConnectAuth<'a> {
    /// Auth with the shared gateway token and, when granted earlier, the device token.
    pub fn new(token: &'a str, device_token: Option<&'a str>) -> Self {
        Self {
            token: Some(token).filter(|token| !token.is_empty()),
            device_token: device_token.filter(|token| !token.is_empty()),
        }
    }

    /// The token the device signature covers: `auth.token`, else `auth.deviceToken`, else "".
    pub fn signed_token(&self) -> &'a str {
        self.token.or(self.device_token).unwrap_or("")
    }
}

#[derive(Serialize)]
struct ClientInfo {
    id: &'static str,
    version: &'static str,
    platform: &'static str,
    mode: &'static str,
}

/// The params of the `connect` request. Deliberately not `Debug`: it holds credentials.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectParams<'a> {
    min_protocol: u32,
    max_protocol: u32,
    client: ClientInfo,
    role: &'static str,
    scopes: &'static [&'static str],
    caps: [&'static str; 0],
    auth: ConnectAuth<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<SignedDevice>,
}

impl<'a> ConnectParams<'a> {
    /// Operator connect params requesting [`REQUIRED_SCOPES`].
    pub fn new(auth: ConnectAuth<'a>, device: Option<SignedDevice>) -> Self {
        Self {
            min_protocol: PROTOCOL_VERSION,
            max_protocol: PROTOCOL_VERSION,
            client: ClientInfo {
                id: CLIENT_ID,
                version: CLIENT_VERSION,
                platform: CLIENT_PLATFORM,
                mode: CLIENT_MODE,
            },
            role: OPERATOR_ROLE,
            scopes: REQUIRED_SCOPES,
            caps: [],
            auth,
            device,
        }
    }
}

/// What the bridge keeps from `hello-ok`.
#[derive(Clone, PartialEq)]
pub struct HelloOk {
    /// `auth.scopes`: the scopes actually granted.
    pub scopes: Vec<String>,
    /// `auth.deviceToken`: a reusable credential for this device and role, when granted.
    pub device_token: Option<String>,
    /// `policy.tickIntervalMs`.
    pub tick_interval: Duration,
    /// `policy.maxPayload`: the largest frame the gateway accepts.
    pub max_payload: usize,
    /// `server.version`.
    pub server_version: String,
    /// `features.methods` (a discovery list, not a complete one).
    pub methods: Vec<String>,
}

impl HelloOk {
    /// Reads the `hello-ok` payload of a successful `connect` response.
    pub fn from_payload(payload: &Value) -> Result<Self, FrameError> {
        if payload.get("type").and_then(Value::as_str) != Some("hello-ok") {
            return Err(FrameError("connect response is not hello-ok".to_owned()));
        }
        let strings = |value: Option<&Value>| -> Vec<String> {
            value
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let auth = payload.get("auth");
        let policy = payload.get("policy");
        let tick_interval = policy
            .and_then(|policy| policy.get("tickIntervalMs"))
            .and_then(Value::as_u64)
            .filter(|millis| *millis > 0)
            .map_or(DEFAULT_TICK_INTERVAL, Duration::from_millis);
        let max_payload = policy
            .and_then(|policy| policy.get("maxPayload"))
            .and_then(Value::as_u64)
            .and_then(|bytes| usize::try_from(bytes).ok())
            .filter(|bytes| *bytes > 0)
            .unwrap_or(DEFAULT_MAX_PAYLOAD);
        Ok(Self {
            scopes: strings(auth.and_then(|auth| auth.get("scopes"))),
            device_token: auth
                .and_then(|auth| auth.get("deviceToken"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            tick_interval,
            max_payload,
            server_version: payload
                .pointer("/server/version")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            methods: strings(payload.pointer("/features/methods")),
        })
    }

    /// The entries of [`REQUIRED_SCOPES`] that were not granted.
    pub fn missing_scopes(&self) -> Vec<String> {
        REQUIRED_SCOPES
            .iter()
            .filter(|required| !self.scopes.iter().any(|granted| granted == *required))
            .map(|missing| (*missing).to_owned())
            .collect()
    }
}

impl fmt::Debug for HelloOk {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("HelloOk")
            .field("scopes", &self.scopes)
            .field(
                "device_token",
                &self.device_token.as_ref().map(|_| "<redacted>"),
            )
            .field("tick_interval", &self.tick_interval)
            .field("max_payload", &self.max_payload)
            .field("server_version", &self.server_version)
            .field("methods", &self.methods.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn request_frame_serialises_in_wire_shape() {
        let params = json!({"probe": true});
        let text = serde_json::to_string(&RequestFrame::new("17", "health", &params)).unwrap();
        assert_eq!(
            text,
            r#"{"type":"req","id":"17","method":"health","params":{"probe":true}}"#
        );
    }

    #[test]
    fn ok_response_parses_with_payload() {
        let frame = Frame::parse(r#"{"type":"res","id":"r1","ok":true,"payload":{"a":1}}"#);
        assert_eq!(
            frame.unwrap(),
            Frame::Response(ResponseFrame {
                id: Cow::Borrowed("r1"),
                result: Ok(json!({"a": 1})),
            })
        );
    }

    #[test]
    fn error_response_keeps_the_gateway_error_as_sent() {
        let text = r#"{"type":"res","id":"9","ok":false,"error":{"code":"FORBIDDEN",
            "message":"missing scope: operator.read","details":{"code":"MISSING_SCOPE"},
            "retryable":true,"retryAfterMs":1500}}"#;
        let Frame::Response(response) = Frame::parse(text).unwrap() else {
            panic!("not a response");
        };
        let error = response.result.unwrap_err();
        assert_eq!(error.code, "FORBIDDEN");
        assert_eq!(error.message, "missing scope: operator.read");
        assert_eq!(error.detail_code(), Some("MISSING_SCOPE"));
        assert!(error.retryable);
        assert_eq!(error.retry_after_ms, Some(1500));
        assert_eq!(error.to_string(), "FORBIDDEN: missing scope: operator.read");
        assert!(!error.is_busy());
    }

    #[test]
    fn a_full_operator_queue_is_recognised_as_busy() {
        let busy: GatewayError = serde_json::from_value(json!({"code": "UNAVAILABLE",
            "message": "The server is busy. Please try again in a moment.", "retryable": true}))
        .unwrap();
        assert!(busy.is_busy());
        let backend: GatewayError = serde_json::from_value(json!({"code": "UNAVAILABLE",
            "message": "No supported browser found", "details": {"reason": "browser"}}))
        .unwrap();
        assert!(!backend.is_busy());
    }

    #[test]
    fn event_frame_parses_with_sequence() {
        let text =
            r#"{"type":"event","event":"tick","payload":{"ts":5},"seq":42,"stateVersion":{}}"#;
        assert_eq!(
            Frame::parse(text).unwrap(),
            Frame::Event(GatewayEvent {
                event: "tick".to_owned(),
                payload: json!({"ts": 5}),
                seq: Some(42),
            })
        );
    }

    #[test]
    fn unknown_frame_types_and_garbage_are_told_apart() {
        assert_eq!(
            Frame::parse(r#"{"type":"req","id":"1","method":"x"}"#).unwrap(),
            Frame::Other
        );
        assert!(Frame::parse("not json").is_err());
        assert!(Frame::parse(r#"{"type":"res","ok":true}"#).is_err());
    }

    #[test]
    fn challenge_payload_parses() {
        let challenge: ConnectChallenge = serde_json::from_value(
            json!({"nonce":"n-1","ts":1795247514358u64,"capabilities":["model-catalog-snapshot"]}),
        )
        .unwrap();
        assert_eq!(challenge.nonce, "n-1");
        assert_eq!(challenge.ts, 1_795_247_514_358);
    }

    #[test]
    fn connect_params_match_the_verified_frame() {
        let params = ConnectParams::new(ConnectAuth::new("shared", None), None);
        let wire = serde_json::to_value(&params).unwrap();
        assert_eq!(
            wire,
            json!({
                "minProtocol": 4, "maxProtocol": 4,
                "client": {"id": "gateway-client", "version": CLIENT_VERSION,
                           "platform": "linux", "mode": "backend"},
                "role": "operator",
                "scopes": ["operator.admin","operator.read","operator.write",
                           "operator.pairing","operator.approvals"],
                "caps": [],
                "auth": {"token": "shared"}
            })
        );
    }

    #[test]
    fn signed_token_prefers_the_shared_token() {
        let both = ConnectAuth::new("shared", Some("device"));
        assert_eq!(both.signed_token(), "shared");
        assert_eq!(
            serde_json::to_value(&both).unwrap(),
            json!({"token": "shared", "deviceToken": "device"})
        );
        let device_only = ConnectAuth::new("", Some("device"));
        assert_eq!(device_only.signed_token(), "device");
        assert_eq!(
            serde_json::to_value(&device_only).unwrap(),
            json!({"deviceToken": "device"})
        );
        assert_eq!(ConnectAuth::new("", None).signed_token(), "");
    }

    fn hello_payload() -> Value {
        json!({"type":"hello-ok","protocol":4,
            "server":{"version":"2026.9.6","connId":"c"},
            "features":{"methods":["health","status"],"events":["tick"]},
            "auth":{"method":"token","role":"operator",
                    "scopes":["operator.admin","operator.read"],
                    "deviceToken":"device-secret-123"},
            "policy":{"maxPayload":26214400,"maxBufferedBytes":52428800,"tickIntervalMs":30000}})
    }

    #[test]
    fn hello_ok_reads_scopes_token_and_policy() {
        let hello = HelloOk::from_payload(&hello_payload()).unwrap();
        assert_eq!(hello.scopes, ["operator.admin", "operator.read"]);
        assert_eq!(hello.device_token.as_deref(), Some("device-secret-123"));
        assert_eq!(hello.tick_interval, Duration::from_secs(30));
        assert_eq!(hello.max_payload, 26_214_400);
        assert_eq!(hello.server_version, "2026.9.6");
        assert_eq!(hello.methods, ["health", "status"]);
        assert_eq!(
            hello.missing_scopes(),
            ["operator.write", "operator.pairing", "operator.approvals"]
        );
    }

    #[test]
    fn hello_ok_debug_hides_the_device_token() {
        let hello = HelloOk::from_payload(&hello_payload()).unwrap();
        let printed = format!("{hello:?}");
        assert!(!printed.contains("device-secret-123"), "{printed}");
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn a_non_hello_payload_is_rejected() {
        assert!(HelloOk::from_payload(&json!({"type": "other"})).is_err());
    }
}

//! The `connect` handshake: the challenge, the `connect` params with their credentials,
//! and what the bridge keeps of `hello-ok` (docs/reference/openclaw-gateway.md#handshake).

use std::time::Duration;

use clawfleet_kit::secret::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    CLIENT_ID, CLIENT_MODE, CLIENT_PLATFORM, CLIENT_VERSION, OPERATOR_ROLE, PROTOCOL_VERSION,
    REQUIRED_SCOPES, frames::FrameError,
};
use crate::device_identity::SignedDevice;

/// The tick interval assumed when `hello-ok` does not state one.
const DEFAULT_TICK_INTERVAL: Duration = Duration::from_secs(30);
/// The post-handshake frame limit assumed when `hello-ok` does not state one (25 MiB).
const DEFAULT_MAX_PAYLOAD: usize = 25 * 1024 * 1024;

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
#[derive(Clone, Debug)]
pub struct HelloOk {
    /// `auth.scopes`: the scopes actually granted.
    pub scopes: Vec<String>,
    /// `auth.deviceToken`: a reusable credential for this device and role, when granted.
    pub device_token: Option<SecretString>,
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
                .map(SecretString::from),
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

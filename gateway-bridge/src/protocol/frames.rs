//! The JSON text frames after the handshake: `req` out, `res` and `event` in, and the
//! gateway's error object (docs/reference/openclaw-gateway.md#frames).

use std::{borrow::Cow, fmt};

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

impl Frame<'_> {
    /// The same frame, owning what it borrowed from the text.
    pub fn into_owned(self) -> Frame<'static> {
        match self {
            Frame::Response(response) => Frame::Response(ResponseFrame {
                id: Cow::Owned(response.id.into_owned()),
                result: response.result,
            }),
            Frame::Event(event) => Frame::Event(event),
            Frame::Other => Frame::Other,
        }
    }
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

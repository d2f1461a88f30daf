use std::{borrow::Cow, time::Duration};

use clawfleet_kit::secret::ExposeSecret;
use serde_json::{Value, json};

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
    let text = r#"{"type":"event","event":"tick","payload":{"ts":5},"seq":42,"stateVersion":{}}"#;
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
    assert_eq!(
        hello.device_token.as_ref().map(ExposeSecret::expose_secret),
        Some("device-secret-123")
    );
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
    assert!(printed.to_lowercase().contains("redacted"));
}

#[test]
fn a_non_hello_payload_is_rejected() {
    assert!(HelloOk::from_payload(&json!({"type": "other"})).is_err());
}

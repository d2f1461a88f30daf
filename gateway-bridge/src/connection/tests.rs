use serde_json::{Value, json};
use tokio::time::Instant;

use super::{handshake::classify_connect_error, *};
use crate::{device_identity::DeviceIdentity, protocol::GatewayError};

fn gateway_error(value: Value) -> GatewayError {
    serde_json::from_value(value).unwrap()
}

#[test]
fn pairing_required_carries_the_request_id() {
    let error = gateway_error(json!({
        "code": "NOT_PAIRED",
        "message": "pairing required: device is not approved yet",
        "details": {"code": "PAIRING_REQUIRED", "reason": "not-paired",
                    "requestId": "a3a2352f", "deviceId": "fbb9"}
    }));
    match classify_connect_error(error) {
        ConnectError::PairingRequired {
            request_id,
            device_id,
        } => {
            assert_eq!(request_id, "a3a2352f");
            assert_eq!(device_id, "fbb9");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn startup_sidecars_are_unavailable_with_retry_after() {
    let error = gateway_error(json!({
        "code": "UNAVAILABLE", "message": "starting",
        "details": {"reason": "startup-sidecars"}, "retryable": true, "retryAfterMs": 500
    }));
    match classify_connect_error(error) {
        ConnectError::Unavailable {
            message,
            retry_after,
        } => {
            assert_eq!(message, "starting");
            assert_eq!(retry_after, Some(Duration::from_millis(500)));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn token_mismatch_is_an_auth_error() {
    let error = gateway_error(json!({
        "code": "INVALID_REQUEST",
        "message": "unauthorized: gateway token mismatch (provide gateway auth token)",
        "details": {"code": "AUTH_TOKEN_MISMATCH"}
    }));
    assert!(matches!(
        classify_connect_error(error),
        ConnectError::Auth(error) if error.detail_code() == Some("AUTH_TOKEN_MISMATCH")
    ));
}

#[test]
fn connect_options_debug_hides_both_tokens() {
    let options = ConnectOptions {
        url: "ws://127.0.0.1:1".to_owned(),
        token: "shared-secret-token".into(),
        identity: Some(Arc::new(DeviceIdentity::generate())),
        device_token: Some("device-secret-token".into()),
        max_in_flight: 4,
        connect_timeout: Duration::from_secs(1),
        extra_headers: vec![],
    };
    let printed = format!("{options:?}");
    assert!(!printed.contains("shared-secret-token"), "{printed}");
    assert!(!printed.contains("device-secret-token"), "{printed}");
    assert!(printed.contains("127.0.0.1"));
}

use crate::fake_gateway::{FakeGateway, Script};

pub(super) fn options_for(fake: &FakeGateway) -> ConnectOptions {
    ConnectOptions {
        url: fake.url.clone(),
        token: "fake-token".into(),
        identity: Some(Arc::new(DeviceIdentity::generate())),
        device_token: None,
        max_in_flight: 8,
        connect_timeout: Duration::from_secs(5),
        extra_headers: vec![],
    }
}

async fn open(fake: &FakeGateway) -> Connection {
    Connection::open(&options_for(fake)).await.unwrap().0
}

#[tokio::test]
async fn connect_sends_the_signed_device_for_the_challenge() {
    let fake = FakeGateway::start(Script::default()).await;
    let options = options_for(&fake);
    let (_connection, hello) = Connection::open(&options).await.unwrap();
    assert_eq!(hello.server_version, "fake");
    let connect = &fake.connects()[0];
    assert_eq!(connect["auth"], json!({"token": "fake-token"}));
    assert_eq!(connect["client"]["id"], "gateway-client");
    let identity = options.identity.as_ref().unwrap();
    assert_eq!(connect["device"]["id"], identity.device_id());
    assert_eq!(connect["device"]["publicKey"], identity.public_key());
    assert_eq!(connect["device"]["nonce"], "fake-nonce");
    assert_eq!(connect["device"]["signedAt"], 1_700_000_000_000u64);
}

#[tokio::test]
async fn responses_out_of_order_reach_their_own_callers() {
    let fake = FakeGateway::start(Script::default()).await;
    let connection = open(&fake).await;
    let slow = connection.call(
        "echo",
        json!({"n": 1, "delayMs": 300}),
        Duration::from_secs(5),
    );
    let fast = async {
        let result = connection
            .call("echo", json!({"n": 2}), Duration::from_secs(5))
            .await;
        (result, Instant::now())
    };
    let (slow, (fast, fast_done)) = tokio::join!(slow, fast);
    let slow_done = Instant::now();
    assert_eq!(slow.unwrap()["params"]["n"], 1);
    assert_eq!(fast.unwrap()["params"]["n"], 2);
    assert!(fast_done + Duration::from_millis(200) < slow_done);
}

#[tokio::test]
async fn an_expired_deadline_removes_the_pending_call() {
    let fake = FakeGateway::start(Script {
        answer: false,
        ..Script::default()
    })
    .await;
    let connection = open(&fake).await;
    let started = Instant::now();
    let error = connection
        .call("echo", json!({}), Duration::from_millis(150))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::DeadlineExceeded), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(connection.pending_calls(), 0);
}

#[tokio::test]
async fn calls_beyond_the_in_flight_bound_are_overloaded_at_once() {
    let fake = FakeGateway::start(Script {
        answer: false,
        ..Script::default()
    })
    .await;
    let connection = Arc::new(
        Connection::open(&ConnectOptions {
            max_in_flight: 2,
            ..options_for(&fake)
        })
        .await
        .unwrap()
        .0,
    );
    let hanging: Vec<_> = (0..2)
        .map(|_| {
            let connection = connection.clone();
            tokio::spawn(async move {
                connection
                    .call("echo", json!({}), Duration::from_secs(30))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let error = connection
        .call("echo", json!({}), Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Overloaded), "{error:?}");
    connection.close().await;
    for call in hanging {
        let error = call.await.unwrap().unwrap_err();
        assert!(matches!(error, CallError::Unavailable(_)), "{error:?}");
    }
}

#[tokio::test]
async fn a_burst_beyond_the_wire_window_waits_instead_of_flooding_the_gateway() {
    let fake = FakeGateway::start(Script::default()).await;
    let connection = Connection::open(&ConnectOptions {
        max_in_flight: 400,
        ..options_for(&fake)
    })
    .await
    .unwrap()
    .0;
    let calls = (0..400).map(|n| {
        connection.call(
            "echo",
            json!({"n": n, "delayMs": 20}),
            Duration::from_secs(10),
        )
    });
    let results = futures_util::future::join_all(calls).await;
    for (n, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap()["params"]["n"], n);
    }
    let most = fake.most_outstanding();
    assert!(
        (WIRE_WINDOW / 2..=WIRE_WINDOW).contains(&most),
        "{most} on the wire at once"
    );
}

#[tokio::test]
async fn a_request_above_max_payload_is_refused_before_sending() {
    let fake = FakeGateway::start(Script {
        max_payload: 200,
        ..Script::default()
    })
    .await;
    let connection = open(&fake).await;
    let error = connection
        .call(
            "echo",
            json!({"blob": "x".repeat(300)}),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::PayloadTooLarge), "{error:?}");
    connection
        .call("echo", json!({"small": true}), Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_busy_gateway_is_asked_again_until_it_admits_the_request() {
    let fake = FakeGateway::start(Script {
        busy_rejections: 3,
        ..Script::default()
    })
    .await;
    let connection = open(&fake).await;
    let admitted = connection
        .call("busy", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(admitted, json!({"admitted": true}));
}

#[tokio::test]
async fn silence_beyond_two_ticks_closes_with_tick_timeout_and_fails_pending_calls() {
    let fake = FakeGateway::start(Script {
        tick_interval_ms: 100,
        answer: false,
        ..Script::default()
    })
    .await;
    let connection = open(&fake).await;
    let started = Instant::now();
    let error = connection
        .call("echo", json!({}), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Unavailable(_)), "{error:?}");
    assert_eq!(connection.closed().await, CloseReason::TickTimeout);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(!connection.is_open());
}

#[tokio::test]
async fn events_and_pings_count_as_liveness() {
    let fake = FakeGateway::start(Script {
        tick_interval_ms: 150,
        ..Script::default()
    })
    .await;
    let connection = open(&fake).await;
    let mut events = connection.subscribe();
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if round % 2 == 0 {
            fake.emit("tick", json!({"round": round}));
        } else {
            fake.ping_all();
        }
    }
    assert!(connection.is_open(), "{:?}", connection.close_reason());
    assert!(fake.pong_seen(), "the ping was not answered");
    let first = events.recv().await.unwrap();
    assert_eq!(first.event, "tick");
    assert_eq!(first.payload, json!({"round": 0}));
}

#[tokio::test]
async fn a_remote_close_ends_every_waiter_with_its_code() {
    let fake = FakeGateway::start(Script {
        answer: false,
        ..Script::default()
    })
    .await;
    let connection = Arc::new(open(&fake).await);
    let pending = tokio::spawn({
        let connection = connection.clone();
        async move {
            connection
                .call("echo", json!({}), Duration::from_secs(30))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    fake.close_all(4001, "gateway auth changed");
    let expected = CloseReason::Remote {
        code: 4001,
        reason: "gateway auth changed".to_owned(),
    };
    let waiters = futures_util::future::join3(
        connection.closed(),
        connection.closed(),
        timeout(Duration::from_secs(2), pending),
    )
    .await;
    assert_eq!(waiters.0, expected);
    assert_eq!(waiters.1, expected);
    let error = waiters.2.unwrap().unwrap().unwrap_err();
    assert!(
        matches!(&error, CallError::Unavailable(message) if message.contains("4001")),
        "{error:?}"
    );
    let error = connection
        .call("echo", json!({}), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn a_wrong_token_and_short_scopes_are_refused() {
    let fake = FakeGateway::start(Script::default()).await;
    let error = Connection::open(&ConnectOptions {
        token: "wrong".into(),
        ..options_for(&fake)
    })
    .await
    .unwrap_err();
    assert!(
        matches!(error, ConnectError::Auth(ref error) if error.code == "INVALID_REQUEST"),
        "{error:?}"
    );

    fake.set_script(Script {
        scopes: vec!["operator.read".to_owned(), "operator.admin".to_owned()],
        ..Script::default()
    });
    let error = Connection::open(&options_for(&fake)).await.unwrap_err();
    match error {
        ConnectError::ScopesMissing { missing } => assert_eq!(
            missing,
            ["operator.write", "operator.pairing", "operator.approvals"]
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_server_times_the_handshake_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let _server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        // Upgrade, then never send the challenge.
        let _socket = tokio_tungstenite::accept_async(stream).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let error = Connection::open(&ConnectOptions {
        url,
        token: "t".into(),
        identity: None,
        device_token: None,
        max_in_flight: 1,
        connect_timeout: Duration::from_millis(300),
        extra_headers: vec![],
    })
    .await
    .unwrap_err();
    assert!(matches!(error, ConnectError::Timeout), "{error:?}");
}

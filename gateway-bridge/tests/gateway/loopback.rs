//! Against one real gateway over loopback: the handshake with token and device, the methods the
//! platform uses, config writes with a base hash, 1,000 concurrent calls on one connection, a
//! wrong token, and throughput compared with a bare WebSocket client.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::support::{Gateway, GatewaySettings, identity};
use clawfleet_gateway_bridge::{
    CallError, ConnectError, ConnectOptions, Connection, REQUIRED_SCOPES,
    protocol::{ConnectAuth, ConnectParams, Frame, RequestFrame},
};
use futures_util::{SinkExt, StreamExt, future::join_all};
use serde_json::{Value, json};
use tokio_tungstenite::{connect_async_with_config, tungstenite::Message};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_gateway_scenarios() {
    let gateway = Gateway::start(GatewaySettings::default()).await;

    handshake_with_token_and_device_grants_every_required_scope(&gateway).await;
    platform_methods_answer_and_unknown_methods_are_invalid_requests(&gateway).await;
    config_patch_with_a_stale_base_hash_is_rejected(&gateway).await;
    a_thousand_concurrent_calls_are_each_answered_by_their_own_response(&gateway).await;
    a_wrong_token_is_an_auth_error_not_a_hang(&gateway).await;
    multiplexed_throughput_is_close_to_a_bare_websocket_client(&gateway).await;
}

async fn device_connection(gateway: &Gateway) -> Connection {
    let options = ConnectOptions {
        identity: Some(identity()),
        ..gateway.connect_options()
    };
    let (connection, hello) = Connection::open(&options).await.expect("connect");
    assert!(hello.missing_scopes().is_empty());
    connection
}

async fn handshake_with_token_and_device_grants_every_required_scope(gateway: &Gateway) {
    let options = ConnectOptions {
        identity: Some(identity()),
        ..gateway.connect_options()
    };
    let started = Instant::now();
    let (connection, hello) = Connection::open(&options).await.expect("connect");
    eprintln!(
        "handshake with device took {:?}; server {}, {} methods, tick {:?}, device token granted: {}",
        started.elapsed(),
        hello.server_version,
        hello.methods.len(),
        hello.tick_interval,
        hello.device_token.is_some()
    );
    for scope in REQUIRED_SCOPES {
        assert!(
            hello.scopes.iter().any(|granted| granted == scope),
            "{scope} missing from {:?}",
            hello.scopes
        );
    }
    assert!(hello.methods.iter().any(|method| method == "health"));
    assert!(hello.max_payload > 1024 * 1024);
    assert!(connection.is_open());
    connection.close().await;
    assert!(!connection.is_open());
    assert_eq!(
        connection.closed().await,
        clawfleet_gateway_bridge::CloseReason::Local
    );
}

async fn platform_methods_answer_and_unknown_methods_are_invalid_requests(gateway: &Gateway) {
    let connection = device_connection(gateway).await;
    let status = connection
        .call("status", json!({}), CALL_TIMEOUT)
        .await
        .expect("status");
    assert!(status.get("runtimeVersion").is_some(), "{status}");
    let health = connection
        .call("health", json!({}), CALL_TIMEOUT)
        .await
        .expect("health");
    assert!(health.get("ok").is_some(), "{health}");
    let config = connection
        .call("config.get", json!({}), CALL_TIMEOUT)
        .await
        .expect("config.get");
    assert!(config["hash"].as_str().is_some_and(|hash| !hash.is_empty()));
    let channels = connection
        .call("channels.status", json!({}), CALL_TIMEOUT)
        .await
        .expect("channels.status");
    assert!(channels.get("channels").is_some(), "{channels}");

    let error = connection
        .call("nonexistent.method", json!({}), CALL_TIMEOUT)
        .await
        .unwrap_err();
    match error {
        CallError::Gateway(error) => {
            assert_eq!(error.code, "INVALID_REQUEST");
            assert!(error.message.contains("unknown method"), "{error}");
        }
        other => panic!("unexpected {other:?}"),
    }
    connection.close().await;
}

async fn config_patch_with_a_stale_base_hash_is_rejected(gateway: &Gateway) {
    let connection = device_connection(gateway).await;
    let config = connection
        .call("config.get", json!({}), CALL_TIMEOUT)
        .await
        .expect("config.get");
    let old_hash = config["hash"].as_str().expect("hash").to_owned();
    let patch = |base_hash: &str| {
        json!({
            "raw": r#"{"agents":{"defaults":{"model":"anthropic/claude-sonnet-4-5"}}}"#,
            "baseHash": base_hash,
        })
    };
    let patched = connection
        .call("config.patch", patch(&old_hash), CALL_TIMEOUT)
        .await
        .expect("config.patch");
    assert_eq!(patched["ok"], json!(true), "{patched}");
    assert_ne!(patched["hash"].as_str(), Some(old_hash.as_str()));

    let error = connection
        .call("config.patch", patch(&old_hash), CALL_TIMEOUT)
        .await
        .unwrap_err();
    match error {
        CallError::Gateway(error) => {
            assert_eq!(error.code, "INVALID_REQUEST");
            assert!(error.message.contains("config changed"), "{error}");
        }
        other => panic!("unexpected {other:?}"),
    }
    connection.close().await;
}

async fn a_thousand_concurrent_calls_are_each_answered_by_their_own_response(gateway: &Gateway) {
    let connection = Arc::new(device_connection(gateway).await);
    let started = Instant::now();
    let calls = (0..1000).map(|index| {
        let connection = connection.clone();
        async move {
            // Alternate methods whose results differ in shape, so a mixed-up response shows.
            let method = if index % 2 == 0 { "health" } else { "status" };
            let result = connection
                .call(method, json!({}), Duration::from_secs(60))
                .await
                .unwrap_or_else(|error| panic!("call {index} ({method}) failed: {error}"));
            (method, result)
        }
    });
    let results = join_all(calls).await;
    let elapsed = started.elapsed();
    for (method, result) in &results {
        match *method {
            "health" => assert!(
                result.get("ok").is_some() && result.get("runtimeVersion").is_none(),
                "health got {result}"
            ),
            _ => assert!(
                result.get("runtimeVersion").is_some() && result.get("durationMs").is_none(),
                "status got {result}"
            ),
        }
    }
    eprintln!(
        "1,000 concurrent health/status calls on one connection: {:?} ({:.0} calls/s)",
        elapsed,
        1000.0 / elapsed.as_secs_f64()
    );

    // The same burst of `health` only (cheap on the gateway, unlike `status`).
    let started = Instant::now();
    let health_calls = (0..1000).map(|_| {
        let connection = connection.clone();
        async move {
            connection
                .call("health", json!({}), Duration::from_secs(60))
                .await
                .expect("health")
        }
    });
    join_all(health_calls).await;
    let elapsed = started.elapsed();
    eprintln!(
        "1,000 concurrent health calls on one connection: {:?} ({:.0} calls/s)",
        elapsed,
        1000.0 / elapsed.as_secs_f64()
    );
    connection.close().await;
}

async fn a_wrong_token_is_an_auth_error_not_a_hang(gateway: &Gateway) {
    let options = ConnectOptions {
        token: "not-the-token".into(),
        identity: Some(identity()),
        connect_timeout: Duration::from_secs(15),
        ..gateway.connect_options()
    };
    let started = Instant::now();
    let error = Connection::open(&options).await.unwrap_err();
    match &error {
        ConnectError::Auth(error) => {
            assert_eq!(error.code, "INVALID_REQUEST", "{error:?}");
            assert!(error.message.contains("unauthorized"), "{error}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!format!("{error:?} {error}").contains(&gateway.token));
}

/// Calls per second with `in_flight` `health` requests always outstanding, for `duration`.
async fn bridge_calls_per_second(
    connection: Arc<Connection>,
    in_flight: usize,
    duration: Duration,
) -> f64 {
    let stop_at = Instant::now() + duration;
    let workers = (0..in_flight).map(|_| {
        let connection = connection.clone();
        async move {
            let mut done = 0u64;
            while Instant::now() < stop_at {
                connection
                    .call("health", json!({}), CALL_TIMEOUT)
                    .await
                    .expect("health");
                done += 1;
            }
            done
        }
    });
    let started = Instant::now();
    let total: u64 = join_all(workers.map(tokio::spawn))
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    total as f64 / started.elapsed().as_secs_f64()
}

/// The same load from a bare tokio-tungstenite client that pipelines requests by hand.
async fn raw_calls_per_second(gateway: &Gateway, in_flight: usize, duration: Duration) -> f64 {
    let (mut socket, _) = connect_async_with_config(gateway.url(), None, true)
        .await
        .expect("raw connect");
    // Challenge, then connect as the loopback backend client with the token.
    loop {
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            panic!("no challenge");
        };
        if matches!(Frame::parse(text.as_str()), Ok(Frame::Event(event)) if event.event == "connect.challenge")
        {
            break;
        }
    }
    let params = serde_json::to_value(ConnectParams::new(
        ConnectAuth::new(&gateway.token, None),
        None,
    ))
    .unwrap();
    let connect = serde_json::to_string(&RequestFrame::new("c", "connect", &params)).unwrap();
    socket.send(Message::text(connect)).await.unwrap();
    loop {
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            panic!("no hello");
        };
        if let Ok(Frame::Response(response)) = Frame::parse(text.as_str()) {
            response.result.expect("hello-ok");
            break;
        }
    }
    let empty = json!({});
    let mut next_id = 0u64;
    let send_one = |next_id: &mut u64| {
        *next_id += 1;
        let id = next_id.to_string();
        Message::text(serde_json::to_string(&RequestFrame::new(&id, "health", &empty)).unwrap())
    };
    for _ in 0..in_flight {
        socket.feed(send_one(&mut next_id)).await.unwrap();
    }
    socket.flush().await.unwrap();
    let started = Instant::now();
    let stop_at = started + duration;
    let mut completed = 0u64;
    let mut outstanding = in_flight;
    while outstanding > 0 {
        let Some(Ok(message)) = socket.next().await else {
            panic!("raw socket ended");
        };
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(Frame::Response(response)) = Frame::parse(text.as_str()) else {
            continue;
        };
        let _: Value = response.result.expect("health");
        completed += 1;
        outstanding -= 1;
        if Instant::now() < stop_at {
            socket.send(send_one(&mut next_id)).await.unwrap();
            outstanding += 1;
        }
    }
    let rate = completed as f64 / started.elapsed().as_secs_f64();
    let _ = socket.close(None).await;
    rate
}

async fn multiplexed_throughput_is_close_to_a_bare_websocket_client(gateway: &Gateway) {
    const IN_FLIGHT: usize = 64;
    const DURATION: Duration = Duration::from_secs(3);
    let connection = Arc::new(device_connection(gateway).await);
    // Warm both paths up (the gateway's first calls are slower).
    bridge_calls_per_second(connection.clone(), IN_FLIGHT, Duration::from_millis(500)).await;
    raw_calls_per_second(gateway, IN_FLIGHT, Duration::from_millis(500)).await;

    let raw = raw_calls_per_second(gateway, IN_FLIGHT, DURATION).await;
    let bridge = bridge_calls_per_second(connection.clone(), IN_FLIGHT, DURATION).await;
    let raw_again = raw_calls_per_second(gateway, IN_FLIGHT, DURATION).await;
    let raw_mean = (raw + raw_again) / 2.0;
    eprintln!(
        "health at {IN_FLIGHT} in flight: bare client {raw:.0} and {raw_again:.0} calls/s, \
         bridge connection {bridge:.0} calls/s ({:.0} % of the bare mean)",
        100.0 * bridge / raw_mean
    );
    // Lenient bound: the machine is shared with other builds; the figures above are the
    // measurement, this only catches a gross regression.
    assert!(
        bridge >= 0.5 * raw_mean,
        "bridge {bridge:.0} calls/s vs bare {raw_mean:.0} calls/s"
    );
    connection.close().await;
}

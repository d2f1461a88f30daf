//! Gateway calls through the whole platform (edge → bridge → real gateway): the
//! operator RPC route, typed gateway errors, a stale config hash, a gateway killed
//! under load, and a rotated gateway token picked up from lifecycle.

use clawfleet_kit::principal::Principal;
use std::time::{Duration, Instant};

use clawfleet_contracts::{
    bridge::v1::{CallRequest, SubscribeRequest, call_response::Outcome},
    json::{json_to_struct, value_to_json},
    lifecycle::v1::{ResolveGatewayRequest, RotateGatewayTokenRequest},
};
use clawfleet_gateway_bridge::{ConnectError, ConnectOptions, Connection};
use clawfleet_tests::{
    grpc::{bridge_client, lifecycle_client},
    platform::{Platform, PlatformOptions},
    scenario::{GATEWAY_READY_TIMEOUT, Operator},
};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::json;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

async fn rpc(
    operator: &Operator<'_>,
    id: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let reply = operator
        .post(&format!("/api/instances/{id}/rpc"), body)
        .await;
    let status = reply.status;
    (status, reply.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_calls_go_through_the_bridge_and_survive_gateway_faults() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 26000)).unwrap();
    let operator = Operator::new(&platform);
    assert_eq!(
        operator
            .post("/api/instances", json!({"userId": "gw"}))
            .await
            .status,
        StatusCode::CREATED
    );
    operator.wait_running("gw").await;

    // Reads.
    let (status, body) = rpc(&operator, "gw", json!({"method": "status"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("runtimeVersion").is_some(), "{body}");
    let (status, body) = rpc(&operator, "gw", json!({"method": "health", "params": {}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true);
    let (status, body) = rpc(
        &operator,
        "gw",
        json!({"method": "channels.status", "params": {"probe": false}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("channels").is_some(), "{body}");

    // config.get then config.patch with its hash; the old hash is then stale.
    let (status, config) = rpc(
        &operator,
        "gw",
        json!({"method": "config.get", "params": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{config}");
    let base_hash = config["hash"].as_str().expect("config hash").to_owned();
    let patch =
        json!({"agents": {"defaults": {"model": "anthropic/claude-sonnet-4-5"}}}).to_string();
    let (status, patched) = rpc(
        &operator,
        "gw",
        json!({"method": "config.patch", "params": {"raw": patch, "baseHash": base_hash}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_ne!(patched["hash"], base_hash);
    let (status, stale) = rpc(
        &operator,
        "gw",
        json!({"method": "config.patch", "params": {"raw": patch, "baseHash": base_hash}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{stale}");
    assert_eq!(stale["gatewayCode"], "INVALID_REQUEST");
    assert!(
        stale["error"].as_str().unwrap().contains("config changed"),
        "{stale}"
    );

    // Gateway errors keep their code; platform errors have theirs.
    let (status, unknown) = rpc(&operator, "gw", json!({"method": "no.such.method"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{unknown}");
    assert_eq!(unknown["code"], "invalid_request");
    let (status, missing) = rpc(&operator, "nobody", json!({"method": "status"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    let (status, bad) = rpc(&operator, "gw", json!({"params": {}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    // The same through the bridge's gRPC, as a grpcurl user would call it.
    let mut bridge = bridge_client(&platform.bridge_address, &platform.options.api_key)
        .await
        .unwrap();
    let response = bridge
        .call(CallRequest {
            instance_id: "gw".into(),
            method: "health".into(),
            params: Some(json_to_struct(json!({}))),
        })
        .await
        .unwrap()
        .into_inner();
    match response.outcome {
        Some(Outcome::Result(value)) => assert_eq!(value_to_json(value)["ok"], true),
        other => panic!("unexpected outcome {other:?}"),
    }

    // Events stream from the gateway: a config change is announced.
    let mut events = bridge
        .subscribe(SubscribeRequest {
            instance_id: "gw".into(),
            events: vec!["config.*".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let (_, config) = rpc(&operator, "gw", json!({"method": "config.get"})).await;
    let patch = json!({"agents": {"defaults": {"model": "anthropic/claude-opus-4-1"}}}).to_string();
    let (status, _) = rpc(
        &operator,
        "gw",
        json!({"method": "config.patch", "params": {"raw": patch, "baseHash": config["hash"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let event = tokio::time::timeout(Duration::from_secs(30), events.message())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    assert!(event.event.starts_with("config."), "{}", event.event);
    drop(events);

    // VNC: the RFB handshake of the instance's virtual display arrives through
    // edge -> bridge -> websockify -> x11vnc. The key is checked before the upgrade.
    let mut as_service = lifecycle_client(
        &platform.lifecycle_address,
        &platform.options.service_token(Principal::Bridge),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let endpoint = as_service
            .resolve_gateway(ResolveGatewayRequest {
                instance_id: "gw".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if !endpoint.vnc_url.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the instance never got a virtual display (are xvfb, x11vnc and websockify installed?)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let vnc_url = format!(
        "{}/api/instances/gw/vnc?token=",
        platform.edge_url.replace("http://", "ws://")
    );
    let refused = tokio_tungstenite::connect_async(format!("{vnc_url}wrong-key")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED)
        }
        other => panic!("a wrong key must be refused before the upgrade: {other:?}"),
    }
    let mut request = format!("{vnc_url}{}", platform.options.api_key)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
    let (mut vnc, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("vnc websocket");
    let banner = tokio::time::timeout(Duration::from_secs(10), vnc.next())
        .await
        .expect("rfb banner in time")
        .unwrap()
        .unwrap();
    let banner = banner.into_data();
    assert!(
        banner.starts_with(b"RFB 003."),
        "not an RFB banner: {:?}",
        String::from_utf8_lossy(&banner)
    );
    // Answer with the client's version; the server then lists its security types.
    vnc.send(Message::binary(banner.clone())).await.unwrap();
    let security = tokio::time::timeout(Duration::from_secs(10), vnc.next())
        .await
        .expect("security types")
        .unwrap()
        .unwrap();
    assert!(!security.into_data().is_empty());
    vnc.close(None).await.ok();

    // A gateway killed under load: calls in flight fail fast, none waits for its deadline.
    let pid = platform.gateway_pid("gw").unwrap();
    let mut callers = Vec::new();
    for _ in 0..16 {
        let bridge = bridge.clone();
        callers.push(tokio::spawn(async move {
            let mut bridge = bridge;
            let mut slowest = Duration::ZERO;
            let mut failures = 0;
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                let started = Instant::now();
                let result = bridge
                    .call(CallRequest {
                        instance_id: "gw".into(),
                        method: "health".into(),
                        params: None,
                    })
                    .await;
                slowest = slowest.max(started.elapsed());
                if result.is_err() {
                    failures += 1;
                }
            }
            (slowest, failures)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let mut total_failures = 0;
    for caller in callers {
        let (slowest, failures) = caller.await.unwrap();
        assert!(
            slowest < Duration::from_secs(5),
            "a call hung for {slowest:?}"
        );
        total_failures += failures;
    }
    assert!(total_failures > 0, "no call noticed the dead gateway");

    // After the supervisor restarts it, the next call succeeds with no manual step.
    operator.wait_running("gw").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = rpc(&operator, "gw", json!({"method": "health"})).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "calls still fail after the restart: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A rotated token: the gateway drops the old connection (4001) and the bridge
    // picks the new token up from lifecycle by itself.
    let mut lifecycle = lifecycle_client(&platform.lifecycle_address, &platform.options.api_key)
        .await
        .unwrap();
    let mut as_service = lifecycle_client(
        &platform.lifecycle_address,
        &platform.options.service_token(Principal::Bridge),
    )
    .await
    .unwrap();
    let before = as_service
        .resolve_gateway(ResolveGatewayRequest {
            instance_id: "gw".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let gateway_pid = platform.gateway_pid("gw").unwrap();
    let rotated = lifecycle
        .rotate_gateway_token(RotateGatewayTokenRequest {
            instance_id: "gw".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let after = as_service
        .resolve_gateway(ResolveGatewayRequest {
            instance_id: "gw".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(before.gateway_token, after.gateway_token);
    assert_eq!(rotated.endpoint_revision, after.endpoint_revision);
    assert_ne!(before.endpoint_revision, after.endpoint_revision);
    // The gateway itself switched: the old token is refused, the new one accepted.
    let options = |token: &str| ConnectOptions {
        url: after.gateway_url.clone(),
        token: token.to_owned().into(),
        identity: None,
        device_token: None,
        max_in_flight: 8,
        connect_timeout: Duration::from_secs(10),
        extra_headers: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Connection::open(&options(&before.gateway_token)).await {
            Err(ConnectError::Auth(_)) => break,
            Ok((connection, _)) => connection.close().await,
            Err(other) => panic!("unexpected error with the old token: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the gateway still accepts the old token"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (connection, _) = Connection::open(&options(&after.gateway_token))
        .await
        .expect("the new token works");
    connection.close().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut succeeded_after_rotation = 0;
    while succeeded_after_rotation < 3 {
        let (status, body) = rpc(&operator, "gw", json!({"method": "status"})).await;
        if status == StatusCode::OK {
            succeeded_after_rotation += 1;
        }
        assert!(
            Instant::now() < deadline,
            "calls fail after token rotation: {status} {body}\n{}",
            platform.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        platform.gateway_pid("gw"),
        Some(gateway_pid),
        "rotation must not restart the gateway"
    );
    let _ = GATEWAY_READY_TIMEOUT;

    // A stopped instance's gateway cannot answer until someone starts it: a quick 412
    // that says so (not a 5xx: nothing failed on the server's side).
    assert_eq!(
        operator
            .post("/api/instances/gw/stop", json!({}))
            .await
            .status,
        StatusCode::OK
    );
    operator
        .wait_for("gw", Duration::from_secs(60), "stopped", |i| {
            i["phase"] == "stopped"
        })
        .await;
    let started = Instant::now();
    let (status, body) = rpc(&operator, "gw", json!({"method": "status"})).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("start it"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

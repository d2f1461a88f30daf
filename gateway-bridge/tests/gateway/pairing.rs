//! A remote client against a real gateway (docs/reference/openclaw-gateway.md#pairing-required): the gateway trusts 127.0.0.1 as a
//! proxy and the client sends `X-Forwarded-For: 10.1.2.3`, so it is treated as a pod or LAN
//! client. Its device is held for pairing until a loopback operator approves it.

use std::time::Duration;

use crate::support::{Gateway, GatewaySettings, identity};
use clawfleet_gateway_bridge::{
    ClientError, ClientOptions, ConnectError, ConnectOptions, Connection, GatewayClient,
    REQUIRED_SCOPES,
    pairing_approver::{self, ApproverConfig},
};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

const CALL_TIMEOUT: Duration = Duration::from_secs(20);

fn remote_headers() -> Vec<(String, String)> {
    vec![("X-Forwarded-For".to_owned(), "10.1.2.3".to_owned())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_device_scenarios() {
    let gateway = Gateway::start(GatewaySettings {
        trust_loopback_proxy: true,
    })
    .await;
    let admin = gateway.admin_connection().await;

    a_remote_device_is_paired_after_approval_and_gets_a_device_token(&gateway, &admin).await;
    a_client_retries_pairing_in_the_background_until_approved(&gateway, &admin).await;
    the_approval_helper_approves_the_platform_device_and_nobody_else(&gateway, &admin).await;
    admin.close().await;
}

async fn approve(admin: &Connection, request_id: &str) {
    let pending = admin
        .call("device.pair.list", json!({}), CALL_TIMEOUT)
        .await
        .expect("device.pair.list");
    let listed = pending["pending"].as_array().is_some_and(|requests| {
        requests
            .iter()
            .any(|request| request["requestId"] == request_id)
    });
    assert!(listed, "{request_id} not pending in {pending}");
    let approved = admin
        .call(
            "device.pair.approve",
            json!({"requestId": request_id}),
            CALL_TIMEOUT,
        )
        .await
        .expect("device.pair.approve");
    assert!(approved.get("device").is_some(), "{approved}");
}

async fn a_remote_device_is_paired_after_approval_and_gets_a_device_token(
    gateway: &Gateway,
    admin: &Connection,
) {
    let device = identity();
    let remote = ConnectOptions {
        identity: Some(device.clone()),
        extra_headers: remote_headers(),
        ..gateway.connect_options()
    };

    let error = Connection::open(&remote).await.unwrap_err();
    let ConnectError::PairingRequired {
        request_id,
        device_id,
    } = error
    else {
        panic!("expected pairing required, got {error:?}");
    };
    assert!(!request_id.is_empty());
    assert_eq!(device_id, device.device_id());

    approve(admin, &request_id).await;

    let (connection, hello) = Connection::open(&remote).await.expect("paired connect");
    for scope in REQUIRED_SCOPES {
        assert!(
            hello.scopes.iter().any(|granted| granted == scope),
            "{hello:?}"
        );
    }
    let device_token = hello
        .device_token
        .clone()
        .expect("a device token is granted");
    let status: Value = connection
        .call("status", json!({}), CALL_TIMEOUT)
        .await
        .expect("status with full scopes");
    assert!(status.get("runtimeVersion").is_some());
    connection.close().await;

    // The shared token plus the granted device token, as the client reconnects.
    let with_device_token = ConnectOptions {
        device_token: Some(device_token.clone()),
        ..remote.clone()
    };
    let (connection, hello) = Connection::open(&with_device_token)
        .await
        .expect("reconnect with token and device token");
    assert!(hello.missing_scopes().is_empty(), "{hello:?}");
    connection
        .call("health", json!({}), CALL_TIMEOUT)
        .await
        .expect("health");
    connection.close().await;

    // The device token alone (no shared token) authenticates the paired device too.
    let device_token_only = ConnectOptions {
        token: String::new().into(),
        device_token: Some(device_token),
        ..remote
    };
    match Connection::open(&device_token_only).await {
        Ok((connection, hello)) => {
            assert!(hello.missing_scopes().is_empty(), "{hello:?}");
            eprintln!("device token alone: accepted with full scopes");
            connection.close().await;
        }
        Err(error) => panic!("device token alone was refused: {error:?}"),
    }
}

async fn a_client_retries_pairing_in_the_background_until_approved(
    gateway: &Gateway,
    admin: &Connection,
) {
    let client = GatewayClient::new(
        "bob".to_owned(),
        gateway.endpoint_source(),
        identity(),
        ClientOptions {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            extra_headers: remote_headers(),
            ..ClientOptions::default()
        },
    );
    let error = client
        .call("health", json!({}), CALL_TIMEOUT)
        .await
        .unwrap_err();
    let ClientError::PairingRequired { request_id } = error else {
        panic!("expected pairing required, got {error:?}");
    };
    assert!(!client.is_connected());

    approve(admin, &request_id).await;

    // Nobody calls: the client's own background retry completes the connection.
    let approved_at = Instant::now();
    while !client.is_connected() {
        assert!(
            approved_at.elapsed() < Duration::from_secs(15),
            "the client did not reconnect after approval"
        );
        sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "client connected {:?} after the approval",
        approved_at.elapsed()
    );
    client
        .call("status", json!({}), CALL_TIMEOUT)
        .await
        .expect("status after approval");
    client.shutdown().await;
}

/// The instance-side approver (a task of `clawfleet instance run`) approves the platform's device
/// by itself, so the bridge reconnects with full scopes with no manual step, while a
/// request from any other device stays pending.
async fn the_approval_helper_approves_the_platform_device_and_nobody_else(
    gateway: &Gateway,
    admin: &Connection,
) {
    let platform_device = identity();
    let stranger = identity();
    let stop_helper = CancellationToken::new();
    let helper = tokio::spawn(pairing_approver::run(
        ApproverConfig {
            gateway_url: gateway.url(),
            gateway_token: gateway.token.clone().into(),
            platform_device_id: platform_device.device_id().to_owned(),
        },
        stop_helper.clone(),
    ));

    // The stranger asks first and is held for pairing.
    let stranger_options = ConnectOptions {
        identity: Some(stranger.clone()),
        extra_headers: remote_headers(),
        ..gateway.connect_options()
    };
    let error = Connection::open(&stranger_options).await.unwrap_err();
    let ConnectError::PairingRequired {
        request_id: stranger_request,
        ..
    } = error
    else {
        panic!("expected pairing required for the stranger, got {error:?}");
    };

    // The platform's bridge connects as a remote client: the helper approves it and the
    // client's background retry finishes the connection with full scopes.
    let client = GatewayClient::new(
        "platform".to_owned(),
        gateway.endpoint_source(),
        platform_device,
        ClientOptions {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            extra_headers: remote_headers(),
            ..ClientOptions::default()
        },
    );
    let started = Instant::now();
    loop {
        match client.call("status", json!({}), CALL_TIMEOUT).await {
            Ok(status) => {
                assert!(status.get("runtimeVersion").is_some(), "{status}");
                break;
            }
            Err(ClientError::PairingRequired { .. }) => {}
            Err(other) => panic!("unexpected error while waiting for approval: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the helper never approved the platform device"
        );
        sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "platform device approved by the helper after {:?}",
        started.elapsed()
    );

    // Several helper polls later the stranger is still pending and still refused.
    sleep(Duration::from_secs(2)).await;
    let pending = admin
        .call("device.pair.list", json!({}), CALL_TIMEOUT)
        .await
        .expect("device.pair.list");
    let stranger_pending = pending["pending"].as_array().is_some_and(|requests| {
        requests
            .iter()
            .any(|request| request["deviceId"] == stranger.device_id())
    });
    let stranger_paired = pending["paired"].as_array().is_some_and(|devices| {
        devices
            .iter()
            .any(|device| device["deviceId"] == stranger.device_id())
    });
    assert!(
        stranger_pending,
        "the stranger's request {stranger_request} vanished: {pending}"
    );
    assert!(!stranger_paired, "the stranger was paired: {pending}");
    assert!(matches!(
        Connection::open(&stranger_options).await,
        Err(ConnectError::PairingRequired { .. })
    ));

    client.shutdown().await;
    stop_helper.cancel();
    helper.await.expect("helper task");
}

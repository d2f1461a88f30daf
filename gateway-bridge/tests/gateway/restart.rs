//! Killing a real gateway mid-call and starting it again: the pending call fails at once, calls
//! while it is down fail fast, and after the restart the same client works with no manual step
//! and its event subscribers keep receiving events.

use std::time::Duration;

use crate::support::{Gateway, GatewaySettings, identity};
use clawfleet_gateway_bridge::{ClientError, ClientOptions, GatewayClient};
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::time::{Instant, sleep, timeout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_fails_pending_calls_and_is_reconnected_after_restart() {
    let mut gateway = Gateway::start(GatewaySettings::default()).await;
    let client = GatewayClient::new(
        "alice".to_owned(),
        gateway.endpoint_source(),
        identity(),
        ClientOptions {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            ..ClientOptions::default()
        },
    );
    client
        .call("health", json!({}), Duration::from_secs(20))
        .await
        .expect("first call connects");
    let mut events = client.subscribe().await.expect("subscribe");

    // Freeze the gateway so the next call stays pending, then kill it.
    gateway.signal(Signal::SIGSTOP);
    let pending = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .call("health", json!({}), Duration::from_secs(60))
                .await
        }
    });
    sleep(Duration::from_millis(500)).await;
    assert!(!pending.is_finished(), "the call should be pending");
    let killed_at = Instant::now();
    gateway.kill();
    let outcome = timeout(Duration::from_secs(5), pending)
        .await
        .expect("the pending call must not hang")
        .unwrap();
    let failed_after = killed_at.elapsed();
    eprintln!("pending call failed {failed_after:?} after the kill: {outcome:?}");
    assert!(
        matches!(outcome, Err(ClientError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(
        failed_after < Duration::from_millis(1500),
        "{failed_after:?}"
    );

    // While the gateway is down a call makes one attempt and fails fast, whatever the backoff.
    for _ in 0..2 {
        let started = Instant::now();
        let error = client
            .call("health", json!({}), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Unavailable(_)), "{error:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    gateway.restart().await;
    let started = Instant::now();
    let health = client
        .call("health", json!({}), Duration::from_secs(20))
        .await
        .expect("the first call after the restart succeeds");
    assert!(health.get("ok").is_some(), "{health}");
    eprintln!("first call after restart took {:?}", started.elapsed());

    // The subscription made before the kill now carries events of the new connection.
    let config = client
        .call("config.get", json!({}), Duration::from_secs(20))
        .await
        .expect("config.get");
    client
        .call(
            "config.patch",
            json!({
                "raw": r#"{"agents":{"defaults":{"model":"anthropic/claude-sonnet-4-5"}}}"#,
                "baseHash": config["hash"],
            }),
            Duration::from_secs(20),
        )
        .await
        .expect("config.patch");
    let changed = timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(event) if event.event == "config.changed" => return event,
                Ok(_) => {}
                Err(error) => panic!("event stream ended: {error}"),
            }
        }
    })
    .await
    .expect("config.changed event after the restart");
    assert!(changed.payload.get("hash").is_some(), "{:?}", changed);

    client.shutdown().await;
}

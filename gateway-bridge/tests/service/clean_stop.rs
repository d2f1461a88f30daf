//! Stopping the bridge: open Subscribe streams end at once with a status that says to
//! subscribe again (so a subscriber moves to another replica), while unary calls in flight
//! finish; the server does not wait for streams that would only end after it stopped.

use std::time::Duration;

use clawfleet_contracts::bridge::v1::{CallRequest, SubscribeRequest, call_response::Outcome};
use serde_json::json;
use tokio::time::{Instant, timeout};
use tonic::Code;

use crate::support::Harness;

/// How soon an open stream must end once the stop begins.
const PROMPTLY: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_subscribe_stream_ends_unavailable_when_the_bridge_stops_while_calls_finish() {
    let harness = Harness::start().await;
    let mut events = harness
        .bridge
        .clone()
        .subscribe(harness.request(SubscribeRequest {
            instance_id: "alice".to_owned(),
            events: Vec::new(),
        }))
        .await
        .expect("subscribe")
        .into_inner();
    harness
        .gateway
        .emit("config.changed", json!({"generation": 1}));
    let first = timeout(Duration::from_secs(5), events.message())
        .await
        .expect("an event before the stop")
        .expect("a live stream")
        .expect("one event");
    assert_eq!(first.event, "config.changed");

    // A unary call the gateway answers only after the stop has begun.
    let call = tokio::spawn({
        let mut bridge = harness.bridge.clone();
        let request = harness.request(CallRequest {
            instance_id: "alice".to_owned(),
            method: "echo".to_owned(),
            params: Some(clawfleet_contracts::json::json_to_struct(
                json!({"delayMs": 1000}),
            )),
        });
        async move { bridge.call(request).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stop_began = Instant::now();
    harness.shutdown.cancel();
    let ended = timeout(Duration::from_secs(5), events.message())
        .await
        .expect("the subscribe stream stayed open after the stop began")
        .expect_err("the stream ends with a status");
    let waited = stop_began.elapsed();
    eprintln!("the subscribe stream ended {waited:?} after the stop began");
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert_eq!(
        ended.message(),
        "the gateway bridge is shutting down; subscribe again"
    );
    assert!(
        waited < PROMPTLY,
        "the stream ended {waited:?} after the stop"
    );

    let answered = timeout(Duration::from_secs(5), call)
        .await
        .expect("the call in flight was answered")
        .unwrap()
        .expect("the call in flight finishes");
    assert!(
        matches!(answered.into_inner().outcome, Some(Outcome::Result(_))),
        "the gateway's answer reaches the caller"
    );
    let mut harness = harness;
    timeout(Duration::from_secs(5), &mut harness.served)
        .await
        .expect("the bridge stopped")
        .unwrap()
        .expect("the bridge stopped cleanly");
}

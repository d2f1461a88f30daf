//! A SIGTERM stops the platform promptly even while clients hold watch streams open:
//! the streams end with a status that says why, and the process exits cleanly.

use std::time::{Duration, Instant};

use clawfleet_contracts::lifecycle::v1::WatchInstancesRequest;
use clawfleet_tests::{
    grpc::lifecycle_client,
    http::{client, send},
    platform::{Platform, PlatformOptions},
};
use http::Method;
use tonic::Code;

/// How long a stop may take with streams open (nothing else runs: no gateways).
const STOP_BOUND: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_watch_streams_do_not_hold_up_a_stop() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start_binary(PlatformOptions::new(data.path(), 23700)).unwrap();
    let key = platform.options.api_key.clone();

    let mut lifecycle = lifecycle_client(&platform.lifecycle_address, &key)
        .await
        .unwrap();
    let mut grpc_watch = lifecycle
        .watch_instances(WatchInstancesRequest { id: String::new() })
        .await
        .unwrap()
        .into_inner();
    // The opening snapshot of an empty platform is a single bookmark.
    assert!(grpc_watch.message().await.unwrap().is_some());

    let sse_url = format!("{}/api/watch", platform.edge_url);
    let sse =
        tokio::spawn(
            async move { send(&client(), Method::GET, &sse_url, Some(&key), None, "").await },
        );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sse.is_finished(), "the event stream stays open");

    let stopping = Instant::now();
    let status = tokio::task::spawn_blocking(move || platform.stop())
        .await
        .unwrap()
        .unwrap();
    let took = stopping.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(took < STOP_BOUND, "the stop took {took:?}");

    // The gRPC stream ended with a status naming the reason, not a silent hang-up.
    let ended = tokio::time::timeout(Duration::from_secs(5), grpc_watch.message())
        .await
        .expect("the stream ended");
    let status = ended.expect_err("the stream ends with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    // The event stream ended too.
    tokio::time::timeout(Duration::from_secs(5), sse)
        .await
        .expect("the event stream ended")
        .unwrap()
        .ok();
}

//! A network path that silently dies between the edge and the lifecycle: the edge stops
//! serving what may be stale (a clear 503 once its bound passes) and, once the path
//! heals, serves the current state again within the bound — without anyone restarting.

use clawfleet_kit::principal::Principal;
use std::time::{Duration, Instant};

use clawfleet_kit::{
    config::{EnvMap, keys},
    shutdown::ShutdownToken,
};
use clawfleet_tests::{
    blackhole::BlackholeProxy,
    http::{Reply, client, send},
    platform::{Platform, PlatformOptions, TEST_JWT_SECRET},
    scenario::Operator,
};
use http::{Method, StatusCode};
use serde_json::json;

/// The second edge's bound, and the lifecycle's bookmark interval well inside it.
const STALENESS_SECONDS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_lifecycle_turns_reads_into_503_until_the_path_heals() {
    let data = tempfile::tempdir().unwrap();
    let gateway = never_ready_gateway(data.path());
    let mut options = PlatformOptions::new(data.path(), 23800);
    options.extra_env = vec![
        ("CLAWFLEET_WATCH_BOOKMARK_SECONDS".into(), "1".into()),
        ("OPENCLAW_BIN".into(), gateway.display().to_string()),
    ];
    let platform = Platform::start(options).unwrap();
    let operator = Operator::new(&platform);
    assert_eq!(
        operator
            .post("/api/instances", json!({"userId": "alice"}))
            .await
            .status,
        StatusCode::CREATED
    );

    // A second edge whose only path to the lifecycle goes through the proxy.
    let proxy = BlackholeProxy::start(platform.lifecycle_address.parse().unwrap())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let far_edge = format!("http://{}", listener.local_addr().unwrap());
    let config = clawfleet_edge::EdgeConfig::from_env(&EnvMap::from_pairs([
        (
            keys::OPENCLAW_MANAGER_API_KEY,
            platform.options.api_key.clone(),
        ),
        (
            keys::CLAWFLEET_SERVICE_TOKEN,
            platform.options.service_token(Principal::Edge),
        ),
        (keys::CLAWFLEET_LIFECYCLE_ADDR, proxy.address.to_string()),
        (keys::CLAWFLEET_BRIDGE_ADDR, platform.bridge_address.clone()),
        (
            keys::CLAWFLEET_CHANNELS_ADDR,
            platform.channels_address.clone(),
        ),
        (keys::CLAWFLEET_AUTH_ADDR, platform.auth_address.clone()),
        (keys::JWT_SECRET, TEST_JWT_SECRET.to_owned()),
        (
            keys::EDGE_INSTANCE_STALENESS_SECONDS,
            STALENESS_SECONDS.to_string(),
        ),
    ]))
    .unwrap();
    let stop_far_edge = ShutdownToken::new();
    let far_edge_task = tokio::spawn(clawfleet_edge::serve(
        listener,
        config,
        stop_far_edge.clone(),
    ));
    let read = |key: String| {
        let url = format!("{far_edge}/api/instances/alice");
        async move {
            send(&client(), Method::GET, &url, Some(&key), None, "")
                .await
                .unwrap()
        }
    };
    let key = platform.options.api_key.clone();
    let first = until(
        Duration::from_secs(20),
        || read(key.clone()),
        |reply| reply.status == StatusCode::OK,
    )
    .await;
    assert_eq!(first.json()["userId"], "alice");

    // The path dies silently; meanwhile alice is stopped through the other edge.
    proxy.black_hole();
    assert_eq!(
        operator
            .post("/api/instances/alice/stop", json!({}))
            .await
            .status,
        StatusCode::OK
    );
    let refused = until(
        Duration::from_secs(STALENESS_SECONDS * 5),
        || read(key.clone()),
        |reply| reply.status == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let body = refused.json();
    assert_eq!(body["code"], "unavailable", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("may be stale"),
        "{body}"
    );
    assert!(refused.headers.contains_key("retry-after"));

    // The path heals: the far edge reconnects and serves alice as she is now.
    proxy.heal();
    let current = until(
        Duration::from_secs(45),
        || read(key.clone()),
        |reply| reply.status == StatusCode::OK && reply.json()["desiredState"] == "stopped",
    )
    .await;
    assert_eq!(current.json()["phase"], "stopped");

    stop_far_edge.cancel();
    far_edge_task.await.unwrap().unwrap();
}

/// Calls `read` until `done` accepts its reply, failing the test after `bound`.
async fn until<F, Fut>(bound: Duration, read: F, done: impl Fn(&Reply) -> bool) -> Reply
where
    F: Fn() -> Fut,
    Fut: Future<Output = Reply>,
{
    let deadline = Instant::now() + bound;
    loop {
        let reply = read().await;
        if done(&reply) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after {bound:?}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A stand-in `openclaw` that starts and never answers: the instance exists without a
/// real gateway's cost, which this test does not need.
fn never_ready_gateway(folder: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = folder.join("never-ready-openclaw");
    std::fs::write(&path, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

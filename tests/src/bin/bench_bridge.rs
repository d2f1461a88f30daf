//! The same `health` call to one real gateway, four ways, side by side in one run:
//!
//! (a) straight over one multiplexed WebSocket to the gateway (the floor);
//! (b) through the bridge's gRPC `Call` (pooled connection);
//! (c) through the edge REST `/api/instances/:id/rpc` (edge → bridge → gateway);
//! (d) a new WebSocket and handshake per call, as the original manager did.
//!
//! p50/p99 at concurrency 1 and 64, calls/s, and ratios to (a). Targets: (b) adds
//! ≤ 1 ms at p50 and keeps ≥ 70 % of (a)'s calls/s at concurrency 64.
//!
//! Build and run: `cargo build --release -p clawfleet -p clawfleet-tests && target/release/bench-bridge`

use clawfleet_kit::principal::Principal;
use std::{sync::Arc, time::Duration};

use clawfleet_contracts::{bridge::v1::CallRequest, lifecycle::v1::ResolveGatewayRequest};
use clawfleet_gateway_bridge::{ConnectOptions, Connection};
use clawfleet_tests::{
    grpc::{bridge_client, lifecycle_client},
    http::{client, send},
    load::{self, Summary},
    platform::{Platform, PlatformOptions},
    scenario::Operator,
};
use http::{Method, StatusCode};
use serde_json::json;

const CALL_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let platform = Platform::start_binary(PlatformOptions::new(data.path(), 27000))?;
    let operator = Operator::new(&platform);
    let created = operator
        .post("/api/instances", json!({"userId": "bench"}))
        .await;
    anyhow::ensure!(created.status == StatusCode::CREATED, "create failed");
    operator.wait_running("bench").await;

    let mut as_service = lifecycle_client(
        &platform.lifecycle_address,
        &platform.options.service_token(Principal::Bridge),
    )
    .await?;
    let endpoint = as_service
        .resolve_gateway(ResolveGatewayRequest {
            instance_id: "bench".into(),
        })
        .await?
        .into_inner();
    let options = Arc::new(ConnectOptions {
        url: endpoint.gateway_url.clone(),
        token: endpoint.gateway_token.clone().into(),
        identity: None,
        device_token: None,
        max_in_flight: 1024,
        connect_timeout: Duration::from_secs(10),
        extra_headers: Vec::new(),
    });
    let (direct, _) = Connection::open(&options).await?;
    let direct = Arc::new(direct);
    let bridge = bridge_client(&platform.bridge_address, &platform.options.api_key).await?;
    let http = client();
    let rpc_url: Arc<str> = format!("{}/api/instances/bench/rpc", platform.edge_url).into();
    let key: Arc<str> = platform.options.api_key.clone().into();

    let over_one_socket = {
        let direct = direct.clone();
        move || {
            let direct = direct.clone();
            async move {
                direct
                    .call("health", json!({}), CALL_DEADLINE)
                    .await
                    .is_ok()
            }
        }
    };
    let through_bridge = {
        let bridge = bridge.clone();
        move || {
            let mut bridge = bridge.clone();
            async move {
                bridge
                    .call(CallRequest {
                        instance_id: "bench".into(),
                        method: "health".into(),
                        params: None,
                    })
                    .await
                    .is_ok_and(|response| {
                        matches!(
                            response.into_inner().outcome,
                            Some(
                                clawfleet_contracts::bridge::v1::call_response::Outcome::Result(_)
                            )
                        )
                    })
            }
        }
    };
    let through_edge = {
        let (http, rpc_url, key) = (http.clone(), rpc_url.clone(), key.clone());
        move || {
            let (http, rpc_url, key) = (http.clone(), rpc_url.clone(), key.clone());
            async move {
                send(
                    &http,
                    Method::POST,
                    &rpc_url,
                    Some(&key),
                    Some("application/json"),
                    r#"{"method":"health"}"#,
                )
                .await
                .is_ok_and(|reply| reply.status == StatusCode::OK)
            }
        }
    };
    let socket_per_call = {
        let options = options.clone();
        move || {
            let options = options.clone();
            async move {
                match Connection::open(&options).await {
                    Ok((connection, _)) => {
                        let ok = connection
                            .call("health", json!({}), CALL_DEADLINE)
                            .await
                            .is_ok();
                        connection.close().await;
                        ok
                    }
                    Err(_) => false,
                }
            }
        }
    };

    println!(
        "\n== `health` on one real gateway, four ways (ratios are to (a) at the same concurrency)"
    );
    Summary::header();
    for (concurrency, calls, fresh_calls) in [(1usize, 2_000usize, 200usize), (64, 10_000, 640)] {
        load::run(concurrency, calls / 10, over_one_socket.clone()).await;
        load::run(concurrency, calls / 10, through_bridge.clone()).await;
        let a = load::run(concurrency, calls, over_one_socket.clone()).await;
        let b = load::run(concurrency, calls, through_bridge.clone()).await;
        let c = load::run(concurrency, calls, through_edge.clone()).await;
        let d = load::run(concurrency, fresh_calls, socket_per_call.clone()).await;
        a.print("(a) one websocket, direct", concurrency);
        b.print("(b) bridge grpc", concurrency);
        c.print("(c) edge rest", concurrency);
        d.print("(d) new websocket per call", concurrency);
        for (label, row) in [("(b)", b), ("(c)", c), ("(d)", d)] {
            println!(
                "    {label} vs (a) at {concurrency:>2}: p50 +{:.3} ms ({:.2}x), p99 {:.2}x, calls/s {:.0} %",
                row.p50_ms - a.p50_ms,
                row.p50_ms / a.p50_ms,
                row.p99_ms / a.p99_ms,
                100.0 * row.per_second / a.per_second
            );
        }
    }
    println!(
        "\ntargets: (b) adds <= 1 ms at p50 and keeps >= 70 % of (a)'s calls/s at 64; (d) shows what pooling saves"
    );
    direct.close().await;
    drop(platform);
    Ok(())
}

//! Benchmark of the walking skeleton, run against the real `clawfleet up`:
//!
//! 1. idle RSS of `clawfleet up` with no gateways;
//! 2. GET /api/instances/:id through the edge (REST → gRPC → lifecycle) vs the same
//!    GetInstance straight over gRPC, side by side at concurrency 1 and 64;
//! 3. platform overhead from POST to the gateway process spawned, and time to running.
//!
//! Build and run: `cargo build --release -p clawfleet -p clawfleet-tests && target/release/bench-skeleton`

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clawfleet_contracts::{
    common::v1::Phase,
    lifecycle::v1::{DeleteInstanceRequest, GetInstanceRequest, WatchInstancesRequest},
};
use clawfleet_tests::{
    grpc::lifecycle_client,
    http::{client, send},
    load::{self, Summary, rss_mb},
    platform::{Platform, PlatformOptions},
    raw_http::RawGet,
    scenario::Operator,
};
use http::{Method, StatusCode};
use serde_json::json;

const REQUESTS_PER_LEVEL: usize = 20_000;
const WARMUP_REQUESTS: usize = 2_000;
const SPAWN_RUNS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let platform = Platform::start_binary(PlatformOptions::new(data.path(), 25000))?;
    println!(
        "clawfleet up: pid {}, edge {}, lifecycle {}",
        platform.pid(),
        platform.edge_url,
        platform.lifecycle_address
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "\n== idle RSS of clawfleet up without gateways: {:.1} MB (target < 60 MB)",
        rss_mb(platform.pid())
    );

    let operator = Operator::new(&platform);
    // A stopped instance: GETs exercise the whole path without a gateway eating CPU.
    let created = operator
        .post("/api/instances", json!({"userId": "bench"}))
        .await;
    anyhow::ensure!(
        created.status == StatusCode::CREATED,
        "create failed: {:?}",
        created
    );
    operator.post("/api/instances/bench/stop", json!({})).await;
    operator
        .wait_for("bench", Duration::from_secs(60), "stopped", |i| {
            i["phase"] == "stopped"
        })
        .await;

    let grpc = lifecycle_client(&platform.lifecycle_address, &platform.options.api_key).await?;
    let http = client();
    let url: Arc<str> = format!("{}/api/instances/bench", platform.edge_url).into();
    let key: Arc<str> = platform.options.api_key.clone().into();
    let rest_get = {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        move || {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move {
                send(&http, Method::GET, &url, Some(&key), None, "")
                    .await
                    .is_ok_and(|reply| reply.status == StatusCode::OK)
            }
        }
    };
    // The same GET with the lightest client, and the edge's cheapest route with it: what
    // the edge costs apart from the HTTP client library.
    let edge_address = platform.edge_url.trim_start_matches("http://").parse()?;
    let raw_get = {
        let raw = Arc::new(RawGet::new(
            edge_address,
            "/api/instances/bench",
            Some(&key),
        ));
        move || {
            let raw = raw.clone();
            async move { raw.get_ok().await }
        }
    };
    let raw_health = {
        let raw = Arc::new(RawGet::new(edge_address, "/health", None));
        move || {
            let raw = raw.clone();
            async move { raw.get_ok().await }
        }
    };
    let grpc_get = {
        let grpc = grpc.clone();
        move || {
            let mut grpc = grpc.clone();
            async move {
                grpc.get_instance(GetInstanceRequest { id: "bench".into() })
                    .await
                    .is_ok()
            }
        }
    };

    println!(
        "\n== GET one instance: REST via edge vs gRPC direct ({REQUESTS_PER_LEVEL} requests per row)"
    );
    Summary::header();
    for concurrency in [1usize, 64] {
        load::run(concurrency, WARMUP_REQUESTS, rest_get.clone()).await;
        load::run(concurrency, WARMUP_REQUESTS, raw_get.clone()).await;
        load::run(concurrency, WARMUP_REQUESTS, grpc_get.clone()).await;
        let rest = load::run(concurrency, REQUESTS_PER_LEVEL, rest_get.clone()).await;
        let raw = load::run(concurrency, REQUESTS_PER_LEVEL, raw_get.clone()).await;
        let health = load::run(concurrency, REQUESTS_PER_LEVEL, raw_health.clone()).await;
        let direct = load::run(concurrency, REQUESTS_PER_LEVEL, grpc_get.clone()).await;
        rest.print("rest via edge (hyper client)", concurrency);
        raw.print("rest via edge (raw client)", concurrency);
        health.print("/health (raw client)", concurrency);
        direct.print("grpc direct", concurrency);
        println!(
            "ratio rest/grpc at {concurrency:>2}: hyper client p50 {:.2} p99 {:.2} throughput {:.2}; raw client p50 {:.2} p99 {:.2} throughput {:.2}   (target: p50 <= 1.3)",
            rest.p50_ms / direct.p50_ms,
            rest.p99_ms / direct.p99_ms,
            rest.per_second / direct.per_second,
            raw.p50_ms / direct.p50_ms,
            raw.p99_ms / direct.p99_ms,
            raw.per_second / direct.per_second
        );
    }
    println!("RSS after load: {:.1} MB", rss_mb(platform.pid()));
    operator
        .delete("/api/instances/bench?preservePvc=false")
        .await;

    println!(
        "\n== create: platform overhead POST -> gateway process spawned, and time to running ({SPAWN_RUNS} runs)"
    );
    let mut watch_client = grpc.clone();
    for run in 0..SPAWN_RUNS {
        let id = format!("spawn-{run}");
        let mut watch = watch_client
            .watch_instances(WatchInstancesRequest { id: String::new() })
            .await?
            .into_inner();
        let posted = Instant::now();
        let reply = operator.post("/api/instances", json!({"userId": id})).await;
        let answered = posted.elapsed();
        anyhow::ensure!(reply.status == StatusCode::CREATED, "create failed");
        let mut spawned = None;
        let running;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(300), watch.message())
                .await??
                .expect("stream open");
            // Bookmarks carry no instance.
            let Some(instance) = message.instance else {
                continue;
            };
            if instance.id != id {
                continue;
            }
            let phase = Phase::try_from(instance.phase)?;
            if phase == Phase::Starting && spawned.is_none() {
                spawned = Some(posted.elapsed());
            }
            if phase == Phase::Running {
                running = posted.elapsed();
                break;
            }
        }
        println!(
            "run {run}: POST answered {:.2} ms, gateway process spawned after {:.2} ms, running after {:.1} s",
            answered.as_secs_f64() * 1e3,
            spawned.unwrap_or_default().as_secs_f64() * 1e3,
            running.as_secs_f64()
        );
        watch_client
            .delete_instance(DeleteInstanceRequest {
                id,
                preserve_data: Some(false),
            })
            .await?;
    }
    drop(platform);
    Ok(())
}

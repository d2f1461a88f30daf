//! Benchmark (not a test) of what tracing costs, side by side in one run: two
//! `clawfleet up`, one exporting every span (the default sampler keeps every new trace)
//! over OTLP/gRPC to a receiver on loopback, one with export off; `GET
//! /api/instances/{userId}` on each at concurrency 1 and 64, in interleaved rounds whose
//! median throughput cost is reported (target: at most 5 %).
//!
//! Run: `cargo build --release -p clawfleet -p clawfleet-tests && target/release/bench-traces`

use std::sync::Arc;

use clawfleet_tests::{
    http::{client, send},
    load::{self, Side, Summary},
    otlp_receiver::OtlpReceiver,
    platform::{Platform, PlatformOptions},
    scenario::Operator,
};
use http::{Method, StatusCode};
use serde_json::json;

/// Rounds of about a second each: shorter ones mostly measure the machine's jitter.
const ROUNDS: usize = 9;
const WARMUP_REQUESTS: usize = 2_000;
const INSTANCE: &str = "bench";

/// A platform with one stopped instance (no gateway competes for the CPU).
async fn platform_with_an_instance(
    data: &std::path::Path,
    gateway_port_base: u16,
    extra_env: Vec<(String, String)>,
) -> anyhow::Result<Platform> {
    let mut options = PlatformOptions::new(data, gateway_port_base);
    options.extra_env = extra_env;
    let platform = Platform::start_binary(options)?;
    let operator = Operator::new(&platform);
    let created = operator
        .post("/api/instances", json!({"userId": INSTANCE}))
        .await;
    anyhow::ensure!(created.status == 201, "create failed: {}", created.status);
    let stopped = operator
        .post(&format!("/api/instances/{INSTANCE}/stop"), json!({}))
        .await;
    anyhow::ensure!(stopped.status == 200, "stop failed: {}", stopped.status);
    Ok(platform)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (receiver, address) = OtlpReceiver::serve_counting().await;
    let traced_data = tempfile::tempdir()?;
    let untraced_data = tempfile::tempdir()?;
    let traced = platform_with_an_instance(
        traced_data.path(),
        25700,
        vec![(
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            format!("http://{address}"),
        )],
    )
    .await?;
    let untraced = platform_with_an_instance(untraced_data.path(), 25800, Vec::new()).await?;

    let http = client();
    let get = |platform: &Platform| {
        let (http, url, key) = (
            http.clone(),
            Arc::<str>::from(format!("{}/api/instances/{INSTANCE}", platform.edge_url)),
            Arc::<str>::from(platform.options.api_key.as_str()),
        );
        move || {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move {
                send(&http, Method::GET, &url, Some(&key), None, "")
                    .await
                    .is_ok_and(|reply| reply.status == StatusCode::OK)
            }
        }
    };
    let with_traces = get(&traced);
    let without = get(&untraced);
    println!(
        "\n== GET /api/instances/{{userId}}: spans exported to a loopback OTLP receiver vs export off, {ROUNDS} interleaved rounds per concurrency"
    );
    Summary::header();
    for (concurrency, requests_per_round) in [(1usize, 4_000), (64, 16_000)] {
        load::print_interleaved_cost(
            concurrency,
            requests_per_round,
            WARMUP_REQUESTS,
            ROUNDS,
            Side {
                label: "traced",
                operation: with_traces.clone(),
            },
            Side {
                label: "not traced",
                operation: without.clone(),
            },
            "<= 5 %",
        )
        .await;
    }
    // The batch exporter sends every few seconds: wait for it before counting.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    println!(
        "spans received by the OTLP receiver: {}",
        receiver.received()
    );
    drop((traced, untraced));
    Ok(())
}

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
    grpc::{LifecycleClient, lifecycle_client},
    http::{HttpClient, client, send},
    platform::{Platform, PlatformOptions},
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
    let platform = Platform::start(PlatformOptions::new(data.path(), 25000))?;
    println!(
        "clawfleet up: pid {}, edge {}, lifecycle {}",
        platform.pid(),
        platform.edge_url,
        platform.lifecycle_address
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss_mb = rss_mb(platform.pid());
    println!(
        "\n== idle RSS of clawfleet up without gateways: {idle_rss_mb:.1} MB (target < 60 MB)"
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

    println!(
        "\n== GET one instance: REST via edge vs gRPC direct ({REQUESTS_PER_LEVEL} requests per row)"
    );
    println!(
        "{:<6} {:>5} {:>10} {:>10} {:>10}",
        "path", "conc", "p50 ms", "p99 ms", "req/s"
    );
    for concurrency in [1usize, 64] {
        run_rest(&http, &url, &key, concurrency, WARMUP_REQUESTS).await;
        run_grpc(&grpc, concurrency, WARMUP_REQUESTS).await;
        let rest = run_rest(&http, &url, &key, concurrency, REQUESTS_PER_LEVEL).await;
        let direct = run_grpc(&grpc, concurrency, REQUESTS_PER_LEVEL).await;
        rest.print("rest", concurrency);
        direct.print("grpc", concurrency);
        println!(
            "ratio  {concurrency:>5} {:>10.2} {:>10.2} {:>10.2}   (rest / grpc; target p50 <= 1.3, rest >= 5000 req/s at 64)",
            rest.p50_ms / direct.p50_ms,
            rest.p99_ms / direct.p99_ms,
            rest.per_second / direct.per_second
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
            let instance = message.instance.expect("instance");
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
            "run {run}: POST answered {:.2} ms, process spawned after {:.2} ms, running after {:.1} s",
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

struct Level {
    p50_ms: f64,
    p99_ms: f64,
    per_second: f64,
}

impl Level {
    fn print(&self, path: &str, concurrency: usize) {
        println!(
            "{path:<6} {concurrency:>5} {:>10.3} {:>10.3} {:>10.0}",
            self.p50_ms, self.p99_ms, self.per_second
        );
    }
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> Level {
    latencies.sort_unstable();
    let at = |fraction: f64| {
        latencies[((latencies.len() as f64 * fraction) as usize).min(latencies.len() - 1)]
    };
    Level {
        p50_ms: at(0.50).as_secs_f64() * 1e3,
        p99_ms: at(0.99).as_secs_f64() * 1e3,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
    }
}

async fn run_rest(
    http: &HttpClient,
    url: &Arc<str>,
    key: &Arc<str>,
    concurrency: usize,
    total: usize,
) -> Level {
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        let share = total / concurrency + usize::from(worker < total % concurrency);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for _ in 0..share {
                let sent = Instant::now();
                let reply = send(&http, Method::GET, &url, Some(&key), None, "")
                    .await
                    .expect("rest get");
                assert_eq!(reply.status, StatusCode::OK);
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    summarize(latencies, started.elapsed())
}

async fn run_grpc(grpc: &LifecycleClient, concurrency: usize, total: usize) -> Level {
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let mut grpc = grpc.clone();
        let share = total / concurrency + usize::from(worker < total % concurrency);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            for _ in 0..share {
                let sent = Instant::now();
                grpc.get_instance(GetInstanceRequest { id: "bench".into() })
                    .await
                    .expect("grpc get");
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    summarize(latencies, started.elapsed())
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

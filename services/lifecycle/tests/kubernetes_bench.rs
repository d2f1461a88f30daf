//! Benchmark of the Kubernetes runtime against the loopback API server (ignored by
//! default; run in release):
//!
//! ```text
//! cargo test --release -p clawfleet-lifecycle --test kubernetes_bench -- --ignored --nocapture
//! BENCH_INSTANCES=10000 cargo test --release -p clawfleet-lifecycle --test kubernetes_bench -- --ignored --nocapture
//! ```
//!
//! Reports: create (all objects applied) p50/p99 and objects applied per second for the
//! first 1,000 instances; Get (one instance) and List (every instance) from the cache.

mod kubernetes_support;

use std::time::{Duration, Instant};

use clawfleet_lifecycle::{
    model::DesiredState,
    runtime::{Runtime, kubernetes::manifests::desired_objects},
};
use kubernetes_support::*;

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
    samples[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with --ignored --nocapture in release"]
async fn create_get_and_list() {
    let instances: usize = std::env::var("BENCH_INSTANCES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1000);
    let server = server().await;
    // No pods: this measures the platform and the API, not a scheduler.
    server.set_default_pod_script(clawfleet_kube_apiserver::PodScript::stays(
        clawfleet_kube_apiserver::PodState::Pending,
    ));
    let runtime = runtime(&server, config()).await;
    let specs: Vec<_> = (0..instances)
        .map(|index| spec(&format!("bench-{index}"), DesiredState::Running))
        .collect();
    let objects_per_instance = desired_objects(&config(), &specs[0]).len();

    let mut creates = Vec::with_capacity(instances);
    let started = Instant::now();
    let mut first_thousand = None;
    for (index, spec) in specs.iter().enumerate() {
        let begin = Instant::now();
        runtime.apply(spec).await.unwrap();
        creates.push(begin.elapsed());
        if index + 1 == instances.min(1000) {
            first_thousand = Some(started.elapsed());
        }
    }
    let first_thousand = first_thousand.unwrap();
    let created = instances.min(1000);
    println!(
        "create: p50 {:?}, p99 {:?}; {} objects applied per second over the first {created} instances",
        percentile(&mut creates, 0.50),
        percentile(&mut creates, 0.99),
        (created * objects_per_instance) as f64 / first_thousand.as_secs_f64()
    );

    eventually("the cache to see every deployment", || {
        runtime.known_instances().len().eq(&instances).then_some(())
    })
    .await;
    let mut gets = Vec::new();
    for spec in specs.iter().cycle().take(10_000) {
        let begin = Instant::now();
        let observed = runtime.observe(&spec.id);
        gets.push(begin.elapsed());
        std::hint::black_box(observed);
    }
    let mut lists = Vec::new();
    for _ in 0..20 {
        let begin = Instant::now();
        let all: Vec<_> = specs.iter().map(|spec| runtime.observe(&spec.id)).collect();
        lists.push(begin.elapsed());
        std::hint::black_box(all);
    }
    println!(
        "get: p50 {:?}, p99 {:?}; list of {instances}: p50 {:?}, p99 {:?}",
        percentile(&mut gets, 0.50),
        percentile(&mut gets, 0.99),
        percentile(&mut lists, 0.50),
        percentile(&mut lists, 0.99),
    );
    // Re-applying everything (the periodic reconcile) is answered from the cache.
    server.clear_request_log();
    let begin = Instant::now();
    for spec in &specs {
        runtime.apply(spec).await.unwrap();
    }
    println!(
        "reconcile of {instances} unchanged instances: {:?}, {} requests",
        begin.elapsed(),
        server.request_log().len()
    );
    runtime.shutdown().await;
}

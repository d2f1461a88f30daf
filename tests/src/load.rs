//! Closed-loop load for benchmarks: `concurrency` workers share `total` requests; each
//! latency is recorded; the summary is p50, p99 and requests per second.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

/// One benchmark row.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub per_second: f64,
    pub failures: usize,
}

impl Summary {
    pub fn print(&self, label: &str, concurrency: usize) {
        println!(
            "{label:<28} {concurrency:>5} {:>10.3} {:>10.3} {:>10.0} {:>8}",
            self.p50_ms, self.p99_ms, self.per_second, self.failures
        );
    }

    pub fn header() {
        println!(
            "{:<28} {:>5} {:>10} {:>10} {:>10} {:>8}",
            "path", "conc", "p50 ms", "p99 ms", "per s", "failed"
        );
    }
}

/// Runs `operation` `total` times from `concurrency` workers.
pub async fn run<F, Fut>(concurrency: usize, total: usize, operation: F) -> Summary
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let operation = Arc::new(operation);
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let operation = operation.clone();
        let share = total / concurrency + usize::from(worker < total % concurrency);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            let mut failures = 0;
            for _ in 0..share {
                let sent = Instant::now();
                if !operation().await {
                    failures += 1;
                }
                latencies.push(sent.elapsed());
            }
            (latencies, failures)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(total);
    let mut failures = 0;
    for worker in workers {
        let (worker_latencies, worker_failures) = worker.await.expect("load worker");
        latencies.extend(worker_latencies);
        failures += worker_failures;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |fraction: f64| {
        latencies[((latencies.len() as f64 * fraction) as usize).min(latencies.len() - 1)]
    };
    Summary {
        p50_ms: at(0.50).as_secs_f64() * 1e3,
        p99_ms: at(0.99).as_secs_f64() * 1e3,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        failures,
    }
}

/// Resident memory of a process, in MiB.
pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// One side of an interleaved comparison: a label and the operation it runs.
pub struct Side<'a, F> {
    pub label: &'a str,
    pub operation: F,
}

/// Runs `measured` and `baseline` for `rounds` rounds of `requests` each at
/// `concurrency`, after a warm-up of each, alternating which goes first so that load
/// drifting during the run (other processes, CPU frequency) falls on both alike; prints
/// every round and then the median throughput cost of `measured` against `baseline` in
/// percent, with every round's cost and the `target`.
pub async fn print_interleaved_cost<A, FutA, B, FutB>(
    concurrency: usize,
    requests: usize,
    warmup: usize,
    rounds: usize,
    measured: Side<'_, A>,
    baseline: Side<'_, B>,
    target: &str,
) where
    A: Fn() -> FutA + Clone + Send + Sync + 'static,
    FutA: Future<Output = bool> + Send,
    B: Fn() -> FutB + Clone + Send + Sync + 'static,
    FutB: Future<Output = bool> + Send,
{
    run(concurrency, warmup, measured.operation.clone()).await;
    run(concurrency, warmup, baseline.operation.clone()).await;
    let mut costs = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (with, without) = if round % 2 == 0 {
            let with = run(concurrency, requests, measured.operation.clone()).await;
            (
                with,
                run(concurrency, requests, baseline.operation.clone()).await,
            )
        } else {
            let without = run(concurrency, requests, baseline.operation.clone()).await;
            (
                run(concurrency, requests, measured.operation.clone()).await,
                without,
            )
        };
        with.print(measured.label, concurrency);
        without.print(baseline.label, concurrency);
        costs.push((1.0 - with.per_second / without.per_second) * 100.0);
    }
    costs.sort_by(f64::total_cmp);
    println!(
        "{} cost at {concurrency:>2}: median {:+.1} % of throughput (rounds: {})   (target: {target})",
        measured.label,
        costs[rounds / 2],
        costs
            .iter()
            .map(|cost| format!("{cost:+.1}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
}

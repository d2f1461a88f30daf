//! The lifecycle on the Kubernetes runtime exports what it does: every request of its kube
//! client counted by verb and code, and its instances by phase under `runtime="kubernetes"`.

use std::time::Duration;

use clawfleet_kit::metrics::exposition::{Format, encode};

use crate::support::*;

fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_clients_requests_and_the_fleet_by_phase_are_exported() {
    let server = server().await;
    let data = tempfile::tempdir().unwrap();
    let lifecycle = lifecycle_server(&server, data.path(), Duration::from_secs(3600)).await;
    let text = encode(Format::PrometheusText).unwrap();
    // Starting lists and watches every managed kind and takes the lease.
    let answered = sum(
        &text,
        "clawfleet_kubernetes_api_requests_total{verb=\"get\",code=\"200\"}",
    ) + sum(
        &text,
        "clawfleet_kubernetes_api_requests_total{verb=\"watch\",code=\"200\"}",
    );
    assert!(answered >= 1.0, "{text}");
    assert!(
        text.contains("clawfleet_instances{phase=\"running\",runtime=\"kubernetes\"}"),
        "{text}"
    );
    lifecycle.stop().await;
}

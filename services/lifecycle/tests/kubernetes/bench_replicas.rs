//! Benchmark of replicated lifecycles on the loopback API server and PostgreSQL
//! (ignored by default; run in release with the PostgreSQL of `scripts/postgres`):
//!
//! ```text
//! cargo test --release -p clawfleet-lifecycle --test kubernetes -- --ignored --nocapture --test-threads=1 bench_replicas::
//! ```
//!
//! Create → Deployment applied, p50/p99 (`BENCH_CREATES`, default 200 per row), through
//! one replica alone (the baseline), the leader of two, the follower of two, and the new
//! leader after a failover; then Get and a full List (pages of 1,000) from a follower's
//! cache at `BENCH_CACHED` (default 10,000) instances, against the same reads straight
//! from the database.

use std::time::{Duration, Instant};

use clawfleet_contracts::common::v1::PageRequest;
use clawfleet_contracts::lifecycle::v1::{
    GetInstanceRequest, ListInstancesRequest, instance_service_server::InstanceService,
};
use clawfleet_database::testing::{Backend, TestDatabase};
use clawfleet_kit::identity::Caller;
use clawfleet_lifecycle::{
    LifecycleServer, instance_id::InstanceId, runtime::kubernetes::lease::LEASE_NAME,
    store::InstanceStore,
};

use crate::{
    bench::percentile,
    leader::{FAST, applied_after},
    support::{
        lifecycle::{record, replica, request},
        *,
    },
};

fn count(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// p50 and p99 of creating `creates` instances through `through`, named `prefix-N`.
async fn creates(
    server: &clawfleet_kube_apiserver::KubeApiServer,
    through: &LifecycleServer,
    prefix: &str,
    creates: usize,
) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(creates);
    for index in 0..creates {
        samples.push(applied_after(server, through, &format!("{prefix}-{index}")).await);
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

fn row(name: &str, (p50, p99): (Duration, Duration), baseline: (Duration, Duration)) {
    println!(
        "{name:<34} p50 {p50:>10.2?} ({:.2}x)  p99 {p99:>10.2?} ({:.2}x)",
        p50.as_secs_f64() / baseline.0.as_secs_f64(),
        p99.as_secs_f64() / baseline.1.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with --ignored --nocapture in release"]
async fn create_through_each_replica_and_read_a_followers_cache() {
    let per_row = count("BENCH_CREATES", 200);
    let server = server().await;
    server.set_default_pod_script(clawfleet_kube_apiserver::PodScript::stays(
        clawfleet_kube_apiserver::PodState::Pending,
    ));
    println!("create -> Deployment applied, {per_row} creates per row");

    let alone_db = TestDatabase::create(Backend::Postgres).await;
    let alone_dir = tempfile::tempdir().unwrap();
    let alone = replica(&server, alone_dir.path(), &alone_db.url, FAST).await;
    let baseline = creates(&server, &alone, "alone", per_row).await;
    row("one replica (baseline)", baseline, baseline);
    alone.stop().await;
    // The next pair elects afresh.
    tokio::time::sleep(FAST.duration).await;

    let database = TestDatabase::create(Backend::Postgres).await;
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = replica(&server, first_dir.path(), &database.url, FAST).await;
    let second = replica(&server, second_dir.path(), &database.url, FAST).await;
    assert!(first.is_leader() && !second.is_leader());
    row(
        "two replicas, through the leader",
        creates(&server, &first, "leader", per_row).await,
        baseline,
    );
    row(
        "two replicas, through the follower",
        creates(&server, &second, "follower", per_row).await,
        baseline,
    );
    first.stop().await;
    while !second.is_leader() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    row(
        "after a failover, the new leader",
        creates(&server, &second, "failover", per_row).await,
        baseline,
    );
    second.stop().await;

    // A follower's cache at scale, on an API server of its own: someone else holds the
    // Lease for the whole run, so the replica measured only follows (and writes nothing
    // to the cluster).
    drop(server);
    let server = crate::support::server().await;
    let cached = count("BENCH_CACHED", 10_000);
    let cache_db = TestDatabase::create(Backend::Postgres).await;
    let store = InstanceStore::open(&cache_db.url).await.unwrap();
    for index in 0..cached {
        store
            .insert(&record(&format!("cached-{index}")))
            .await
            .unwrap();
    }
    server
        .create(serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": NAMESPACE},
            "spec": {"holderIdentity": "elsewhere", "leaseDurationSeconds": 3600,
                     "renewTime": "2099-01-01T00:00:00.000000Z"}
        }))
        .ok();
    let follower_dir = tempfile::tempdir().unwrap();
    let follower = replica(&server, follower_dir.path(), &cache_db.url, FAST).await;
    assert!(!follower.is_leader());
    let handler = follower.handler();
    let ids: Vec<InstanceId> = (0..cached)
        .step_by((cached / 1000).max(1))
        .map(|index| InstanceId::parse(&format!("cached-{index}")).unwrap())
        .collect();

    let mut from_cache = Vec::new();
    for id in &ids {
        let begin = Instant::now();
        handler
            .get_instance(request(
                Caller::operator(),
                GetInstanceRequest { id: id.to_string() },
            ))
            .await
            .unwrap();
        from_cache.push(begin.elapsed());
    }
    let mut from_database = Vec::new();
    for id in &ids {
        let begin = Instant::now();
        store.get(id).await.unwrap().unwrap();
        from_database.push(begin.elapsed());
    }
    let cache_p50 = percentile(&mut from_cache, 0.5);
    let database_p50 = percentile(&mut from_database, 0.5);
    println!(
        "Get at {cached} instances: follower cache p50 {cache_p50:.2?}, database p50 {database_p50:.2?} ({:.3}x)",
        cache_p50.as_secs_f64() / database_p50.as_secs_f64()
    );

    let begin = Instant::now();
    let mut listed = 0;
    let mut page_token = String::new();
    loop {
        let page = handler
            .list_instances(request(
                Caller::operator(),
                ListInstancesRequest {
                    page: Some(PageRequest {
                        page_size: 1000,
                        page_token: page_token.clone(),
                    }),
                    ..ListInstancesRequest::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        listed += page.instances.len();
        page_token = page
            .page
            .map(|info| info.next_page_token)
            .unwrap_or_default();
        if page_token.is_empty() {
            break;
        }
    }
    let list_cache = begin.elapsed();
    assert_eq!(listed, cached);
    let begin = Instant::now();
    assert_eq!(store.load_all().await.unwrap().len(), cached);
    let list_database = begin.elapsed();
    println!(
        "List of {cached}: follower cache {list_cache:.2?}, database {list_database:.2?} ({:.3}x)",
        list_cache.as_secs_f64() / list_database.as_secs_f64()
    );
    follower.stop().await;
    store.close().await;
}

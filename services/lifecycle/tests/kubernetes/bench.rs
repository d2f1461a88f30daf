//! Benchmark of the Kubernetes runtime against the loopback API server (ignored by
//! default; run in release):
//!
//! ```text
//! cargo test --release -p clawfleet-lifecycle --test kubernetes -- --ignored --nocapture --test-threads=1 bench::
//! BENCH_INSTANCES=10000 cargo test --release -p clawfleet-lifecycle --test kubernetes -- --ignored --nocapture --test-threads=1 bench::
//! ```
//!
//! Reports, once on the runtime alone and once through the lifecycle service's gRPC API
//! (store, handler and runtime, as a `POST /api/instances` reaches them): create (all
//! objects applied) p50/p99 and objects applied per second for the first 1,000
//! instances; Get (one instance) and List (every instance) answered from the cache.

use std::time::{Duration, Instant};

use crate::support::*;
use clawfleet_lifecycle::{
    model::DesiredState,
    runtime::{Runtime, kubernetes::manifests::desired_objects},
};

pub fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
    samples[index]
}

/// How many instances to create (`BENCH_INSTANCES`, default 1000), and the API server,
/// whose pods stay pending: this measures the platform and the API, not a scheduler.
async fn instances_and_server() -> (usize, clawfleet_kube_apiserver::KubeApiServer) {
    let instances = std::env::var("BENCH_INSTANCES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1000);
    let server = server().await;
    server.set_default_pod_script(clawfleet_kube_apiserver::PodScript::stays(
        clawfleet_kube_apiserver::PodState::Pending,
    ));
    (instances, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with --ignored --nocapture in release"]
async fn create_get_and_list() {
    let (instances, server) = instances_and_server().await;
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

/// The same measures as a caller sees them: the lifecycle service on the Kubernetes
/// runtime served over gRPC on loopback, with its SQLite store. CreateInstance returns
/// once the runtime applied every object, so its latency is the platform's share of a
/// `POST /api/instances` (the edge adds its REST hop on top).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with --ignored --nocapture in release"]
async fn create_get_and_list_through_the_instance_service() {
    use clawfleet_contracts::{
        common::v1::{PageRequest, Plan},
        lifecycle::v1::{
            CreateInstanceRequest, GetInstanceRequest, ListInstancesRequest,
            instance_service_client::InstanceServiceClient,
        },
    };
    use clawfleet_kit::{identity::Credentials, shutdown::ShutdownToken};

    const API_KEY: &str = "bench-operator-key";
    let (instances, server) = instances_and_server().await;
    let data = tempfile::tempdir().unwrap();
    // No periodic reconcile during the measurement.
    let lifecycle = lifecycle_server(&server, data.path(), Duration::from_secs(3600)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = ShutdownToken::new();
    let serving = tokio::spawn(lifecycle.serve(
        listener,
        Credentials {
            platform_api_key: API_KEY.into(),
            service_digests: Default::default(),
            tls: None,
        },
        shutdown.clone(),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let authorization: tonic::metadata::MetadataValue<_> =
        format!("Bearer {API_KEY}").parse().unwrap();
    let mut client =
        InstanceServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
            Ok(request)
        });
    let objects_per_instance =
        desired_objects(&config(), &spec("bench-0", DesiredState::Running)).len();

    let mut creates = Vec::with_capacity(instances);
    let started = Instant::now();
    let mut first_thousand = None;
    for index in 0..instances {
        let begin = Instant::now();
        client
            .create_instance(CreateInstanceRequest {
                id: format!("bench-{index}"),
                owner: format!("usr_{}", index % 100),
                plan: Plan::Free as i32,
                secrets: [("ANTHROPIC_API_KEY".to_owned(), "sk-ant-bench".to_owned())].into(),
                model: String::new(),
            })
            .await
            .unwrap();
        creates.push(begin.elapsed());
        if index + 1 == instances.min(1000) {
            first_thousand = Some(started.elapsed());
        }
    }
    let created = instances.min(1000);
    println!(
        "grpc create (all objects applied): p50 {:?}, p99 {:?}; {:.0} objects applied per second over the first {created} instances",
        percentile(&mut creates, 0.50),
        percentile(&mut creates, 0.99),
        (created * objects_per_instance) as f64 / first_thousand.unwrap().as_secs_f64()
    );
    eventually("every instance's Deployment", || {
        server
            .get(
                "Deployment",
                NAMESPACE,
                &format!("bench-{}-openclaw", instances - 1),
            )
            .map(|_| ())
    })
    .await;

    let mut gets = Vec::new();
    for index in (0..instances).cycle().take(5_000) {
        let begin = Instant::now();
        client
            .get_instance(GetInstanceRequest {
                id: format!("bench-{index}"),
            })
            .await
            .unwrap();
        gets.push(begin.elapsed());
    }
    let list_page = |page_size: u32, page_token: String| ListInstancesRequest {
        owner: String::new(),
        page: Some(PageRequest {
            page_size,
            page_token,
        }),
    };
    let mut first_pages = Vec::new();
    let mut full_lists = Vec::new();
    for _ in 0..20 {
        let begin = Instant::now();
        client
            .list_instances(list_page(0, String::new()))
            .await
            .unwrap();
        first_pages.push(begin.elapsed());
        let begin = Instant::now();
        let (mut token, mut seen) = (String::new(), 0);
        loop {
            let page = client
                .list_instances(list_page(1000, token))
                .await
                .unwrap()
                .into_inner();
            seen += page.instances.len();
            token = page
                .page
                .map(|page| page.next_page_token)
                .unwrap_or_default();
            if token.is_empty() {
                break;
            }
        }
        full_lists.push(begin.elapsed());
        assert_eq!(seen, instances);
    }
    println!(
        "grpc get: p50 {:?}, p99 {:?}; list first page (100): p50 {:?}; list all {instances} (pages of 1000): p50 {:?}, p99 {:?}",
        percentile(&mut gets, 0.50),
        percentile(&mut gets, 0.99),
        percentile(&mut first_pages, 0.50),
        percentile(&mut full_lists, 0.50),
        percentile(&mut full_lists, 0.99),
    );
    shutdown.cancel();
    serving.await.unwrap().unwrap();
}

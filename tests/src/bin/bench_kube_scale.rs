//! Benchmark of the Kubernetes runtime at scale (docs/capacity.md), against the real
//! `clawfleet lifecycle` process on the loopback Kubernetes API server, whose objects
//! carry managedFields and status like a real apiserver's and whose pods run:
//!
//! 1. lifecycle RSS idle, and with 1,000 and 10,000 instances and their pods (VmRSS);
//! 2. CreateInstance accept latency p50/p99 and accepted creates/s at 64 callers;
//! 3. time until every accepted create is applied, and API writes per create;
//! 4. GetInstance and ListInstances latency (answered from the cache);
//! 5. a restart (SIGTERM, then start) with nothing changed: time until serving, and
//!    writes besides the leader Lease's (must be 0).
//!
//! Printed next to the figures issue 19 measured before (a real control plane, whole
//! objects cached, creates waiting on the apiserver).
//!
//! Build and run (debug is fine; say which in docs/capacity.md):
//! `cargo build -p clawfleet -p clawfleet-tests --bin bench-kube-scale && target/debug/bench-kube-scale`
//! `BENCH_SIZES=1000` limits the sizes.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use clawfleet_contracts::{
    common::v1::PageRequest,
    lifecycle::v1::{CreateInstanceRequest, GetInstanceRequest, ListInstancesRequest},
};
use clawfleet_kube_apiserver::{KubeApiServer, Options, PodScript, PodState};
use clawfleet_tests::{
    grpc::{LifecycleClient, lifecycle_client},
    load::{self, rss_mb},
    tools::clawfleet_bin,
};

const NAMESPACE: &str = "openclaw";
const KEY: &str = "bench-operator-key";
/// The lifecycle's gRPC port (not used by any test).
const PORT: u16 = 25_191;
const CONCURRENCY: usize = 64;

/// Before (issue 19, a real v1.36 control plane on 2 cores): ≈ 350 KB of RSS per
/// instance, creates at 64 callers 7.5–15/s with p50 4.1–8.4 s, 8 objects per instance.
const BEFORE_KB_PER_INSTANCE: f64 = 350.0;
const BEFORE_CREATES_PER_SECOND: f64 = 15.0;
const BEFORE_OBJECTS_PER_INSTANCE: f64 = 8.0;

struct Lifecycle {
    child: Child,
}

impl Lifecycle {
    fn start(dir: &Path, kubeconfig: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let log = std::fs::File::create(dir.join("lifecycle.log"))?;
        let child = Command::new(clawfleet_bin())
            .arg("lifecycle")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OPENCLAW_MANAGER_API_KEY", KEY)
            .env(
                "CLAWFLEET_SERVICE_TOKEN_DIGESTS",
                format!("edge={}", "0".repeat(64)),
            )
            .env("CLAWFLEET_LISTEN_HOST", "127.0.0.1")
            .env("CLAWFLEET_LIFECYCLE_PORT", PORT.to_string())
            .env("CLAWFLEET_DATA_DIR", dir)
            .env("CLAWFLEET_RUNTIME", "kubernetes")
            .env("KUBECONFIG", kubeconfig)
            .env("OPENCLAW_NAMESPACE", NAMESPACE)
            .env("OPENCLAW_IMAGE_REPO", "registry.example/openclaw")
            .env("CLAWFLEET_LOG_FORMAT", "text")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Self { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait: the process releases its leader Lease, as in a rolling update.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// A client once the process answers.
    async fn client(&self) -> anyhow::Result<(LifecycleClient, Duration)> {
        let started = Instant::now();
        loop {
            if let Ok(mut client) = lifecycle_client(&format!("127.0.0.1:{PORT}"), KEY).await
                && client
                    .list_instances(ListInstancesRequest::default())
                    .await
                    .is_ok()
            {
                return Ok((client, started.elapsed()));
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "the lifecycle did not answer"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn writes(server: &KubeApiServer) -> usize {
    server
        .request_log()
        .iter()
        .filter(|request| !matches!(request.verb.as_str(), "list" | "watch" | "get"))
        .filter(|request| request.resource != "leases")
        .count()
}

/// Creates instances `from..to` from 64 callers; returns the accept summary.
async fn create_burst(client: &LifecycleClient, from: usize, to: usize) -> load::Summary {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(from));
    let client = client.clone();
    load::run(CONCURRENCY, to - from, move || {
        let mut client = client.clone();
        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            client
                .create_instance(CreateInstanceRequest {
                    id: format!("tenant-{index}"),
                    // A thousand owners with a few instances each.
                    owner: format!("owner-{}", index % 1000),
                    model: "anthropic/claude-sonnet-4-5".into(),
                    ..CreateInstanceRequest::default()
                })
                .await
                .is_ok()
        }
    })
    .await
}

async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            println!("   (gave up waiting for {what} after {limit:?})");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// CPU seconds (user + system) a process has used: a cost that does not depend on how
/// busy the machine is, unlike latencies on a shared 2-core box.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn running_pods(server: &KubeApiServer) -> usize {
    server
        .objects("Pod", NAMESPACE)
        .iter()
        .filter(|pod| pod["status"]["phase"] == "Running")
        .count()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let dir = tempfile::tempdir()?;
    let server = KubeApiServer::start(Options {
        namespace: NAMESPACE.into(),
        ..Options::default()
    })
    .await?;
    server.set_default_pod_script(PodScript::stays(PodState::Running { ready: true }));
    let kubeconfig: PathBuf = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig)?;
    let lifecycle_dir = dir.path().join("lifecycle");
    let mut lifecycle = Lifecycle::start(&lifecycle_dir, &kubeconfig)?;
    let (mut client, _) = lifecycle.client().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_mb = rss_mb(lifecycle.pid());
    println!(
        "lifecycle (pid {}) idle: {idle_mb:.1} MB RSS",
        lifecycle.pid()
    );

    let mut created = 0;
    for size in sizes {
        server.clear_request_log();
        let cpu_before = cpu_seconds(lifecycle.pid());
        let burst = create_burst(&client, created, size).await;
        let cpu_accepting = cpu_seconds(lifecycle.pid()) - cpu_before;
        let accepted = size - created;
        let applied = until("every deployment", Duration::from_secs(3600), || {
            server.objects("Deployment", NAMESPACE).len() >= size
        })
        .await;
        let cpu_applied = cpu_seconds(lifecycle.pid()) - cpu_before;
        let writes_per_create = writes(&server) as f64 / accepted as f64;
        until("every pod running", Duration::from_secs(3600), || {
            running_pods(&server) >= size
        })
        .await;
        // Let the watch events of the last pods reach the cache.
        tokio::time::sleep(Duration::from_secs(3)).await;
        created = size;
        let rss = rss_mb(lifecycle.pid());
        let kb_per_instance = (rss - idle_mb) * 1024.0 / size as f64;
        println!("\n== {size} instances ({accepted} created now, {CONCURRENCY} callers)");
        println!(
            "accept: p50 {:.2} ms, p99 {:.2} ms, {:.0} creates/s accepted ({} failed); before: p50 4.1-8.4 s, {BEFORE_CREATES_PER_SECOND} creates/s => {:.0}x",
            burst.p50_ms,
            burst.p99_ms,
            burst.per_second,
            burst.failures,
            burst.per_second / BEFORE_CREATES_PER_SECOND
        );
        println!(
            "all applied {:.1} s after the burst ended; API writes per create {writes_per_create:.2} (before: {BEFORE_OBJECTS_PER_INSTANCE})",
            applied.as_secs_f64()
        );
        println!(
            "lifecycle CPU per create: {:.2} ms during the accept burst, {:.2} ms until applied (load average {})",
            cpu_accepting * 1e3 / accepted as f64,
            cpu_applied * 1e3 / accepted as f64,
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
        println!(
            "lifecycle RSS {rss:.1} MB = {kb_per_instance:.1} KB per instance above idle (before: {BEFORE_KB_PER_INSTANCE} KB => {:.1}x less)",
            BEFORE_KB_PER_INSTANCE / kb_per_instance
        );
        let get = load::run(CONCURRENCY, 20_000, {
            let client = client.clone();
            move || {
                let mut client = client.clone();
                let id = format!("tenant-{}", rand_index(size));
                async move { client.get_instance(GetInstanceRequest { id }).await.is_ok() }
            }
        })
        .await;
        let list = load::run(4, 200, {
            let client = client.clone();
            move || {
                let mut client = client.clone();
                async move {
                    client
                        .list_instances(ListInstancesRequest {
                            page: Some(PageRequest {
                                page_size: 1000,
                                ..PageRequest::default()
                            }),
                            ..ListInstancesRequest::default()
                        })
                        .await
                        .is_ok()
                }
            }
        })
        .await;
        print_object_sizes(&server, size);
        load::Summary::header();
        get.print("GetInstance", CONCURRENCY);
        list.print("ListInstances (1000/page)", 4);
    }

    // A restart with nothing changed: ready to serve when, and writes nothing.
    drop(client);
    lifecycle.stop();
    server.clear_request_log();
    let restarted = Instant::now();
    lifecycle = Lifecycle::start(&lifecycle_dir, &kubeconfig)?;
    let (restarted_client, _) = lifecycle.client().await?;
    let ready = restarted.elapsed();
    client = restarted_client;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let _ = client
        .list_instances(ListInstancesRequest::default())
        .await?;
    println!(
        "\n== restart with {created} instances and no drift: serving after {:.1} s, {} writes (leader Lease aside) in the first 10 s, RSS {:.1} MB",
        ready.as_secs_f64(),
        writes(&server),
        rss_mb(lifecycle.pid())
    );
    Ok(())
}

/// JSON bytes the cluster holds per instance, by kind (etcd stores built-in kinds as
/// protobuf, somewhat smaller), managedFields included.
fn print_object_sizes(server: &KubeApiServer, instances: usize) {
    let mut total = 0;
    let mut line = String::new();
    for kind in [
        "Deployment",
        "ReplicaSet",
        "Pod",
        "Service",
        "Secret",
        "ConfigMap",
        "PersistentVolumeClaim",
        "NetworkPolicy",
    ] {
        let objects = server.objects(kind, NAMESPACE);
        let bytes: usize = objects
            .iter()
            .map(|object| serde_json::to_vec(object).map_or(0, |json| json.len()))
            .sum();
        total += bytes;
        line += &format!(
            " {kind} {} x {:.0} B;",
            objects.len(),
            bytes as f64 / objects.len().max(1) as f64
        );
    }
    println!(
        "cluster objects (JSON):{line} {:.1} KB per instance",
        total as f64 / 1024.0 / instances as f64
    );
}

/// A spread of ids without a random-number crate: a multiplicative hash of the clock.
fn rand_index(size: usize) -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos() as usize)
        .unwrap_or(0);
    nanos.wrapping_mul(2_654_435_761) % size.max(1)
}

//! Chaos: two `clawfleet lifecycle` processes on the Kubernetes runtime (the loopback
//! API server) share one PostgreSQL store. Fifty instances are created and twenty
//! deleted through whichever replica answers, while the leader is killed (SIGKILL: no
//! Lease release, teardowns cut short) three times and replaced by a fresh process. At
//! the end every instance's objects match its desired state and nothing is orphaned.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clawfleet_contracts::lifecycle::v1::{CreateInstanceRequest, DeleteInstanceRequest};
use clawfleet_database::testing::{Backend, TestDatabase};
use clawfleet_kube_apiserver::{KubeApiServer, Options};
use clawfleet_tests::{
    grpc::{LifecycleClient, lifecycle_client},
    tools::clawfleet_bin,
};
use tonic::Code;

const NAMESPACE: &str = "openclaw";
const KEY: &str = "failover-operator-key";
const INSTANCES: usize = 50;
const DELETED: usize = 20;
/// What one instance owns on the cluster (no ingress).
const KINDS: [&str; 5] = [
    "Deployment",
    "Service",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
];

/// One `clawfleet lifecycle` process.
struct Replica {
    child: Child,
    address: String,
}

impl Replica {
    fn start(
        dir: &Path,
        port: u16,
        kubeconfig: &Path,
        database_url: &str,
        generation: usize,
    ) -> Replica {
        let data = dir.join(format!("replica-{port}-{generation}"));
        std::fs::create_dir_all(&data).unwrap();
        let log = std::fs::File::create(data.join("lifecycle.log")).unwrap();
        let child = Command::new(clawfleet_bin())
            .arg("lifecycle")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OPENCLAW_MANAGER_API_KEY", KEY)
            // Only the operator calls these replicas; any digest line will do.
            .env(
                "CLAWFLEET_SERVICE_TOKEN_DIGESTS",
                format!("edge={}", "0".repeat(64)),
            )
            .env("CLAWFLEET_LISTEN_HOST", "127.0.0.1")
            .env("CLAWFLEET_LIFECYCLE_PORT", port.to_string())
            .env("CLAWFLEET_DATA_DIR", &data)
            .env("DATABASE_URL", database_url)
            .env("CLAWFLEET_RUNTIME", "kubernetes")
            .env("KUBECONFIG", kubeconfig)
            .env("OPENCLAW_NAMESPACE", NAMESPACE)
            .env("OPENCLAW_IMAGE_REPO", "registry.example/openclaw")
            .env("CLAWFLEET_LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start clawfleet lifecycle");
        Replica {
            child,
            address: format!("127.0.0.1:{port}"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn client(&self) -> Option<LifecycleClient> {
        lifecycle_client(&self.address, KEY).await.ok()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The replicas, each slot restarted after its process is killed.
struct Cluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    database_url: String,
    replicas: Vec<Replica>,
    ports: Vec<u16>,
    restarts: usize,
}

impl Cluster {
    /// Calls `call` on each replica in turn until one answers with something other than
    /// UNAVAILABLE (a replica being killed or not up yet), for up to a minute.
    async fn call<T, F>(&self, mut call: F) -> Result<T, tonic::Status>
    where
        F: AsyncFnMut(LifecycleClient) -> Result<T, tonic::Status>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut turn = 0;
        loop {
            let replica = &self.replicas[turn % self.replicas.len()];
            turn += 1;
            let answer = match replica.client().await {
                Some(client) => call(client).await,
                None => Err(tonic::Status::unavailable("not listening yet")),
            };
            match answer {
                Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// The pid of the process holding the leader Lease, once someone holds it.
    async fn leader(&self, server: &KubeApiServer) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let holder = server
                .get("Lease", NAMESPACE, "clawfleet-lifecycle-leader")
                .and_then(|lease| lease["spec"]["holderIdentity"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if let Some(slot) = self
                .replicas
                .iter()
                .position(|replica| holder.contains(&format!("-{}-", replica.pid())))
            {
                return slot;
            }
            assert!(Instant::now() < deadline, "nobody leads: holder {holder:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs the leader and starts a fresh process in its place.
    async fn kill_leader(&mut self, server: &KubeApiServer) {
        let slot = self.leader(server).await;
        self.replicas[slot].child.kill().unwrap();
        self.replicas[slot].child.wait().unwrap();
        self.restarts += 1;
        eprintln!("killed the leader (slot {slot})");
        let fresh = Replica::start(
            &self.dir,
            self.ports[slot],
            &self.kubeconfig,
            &self.database_url,
            self.restarts,
        );
        self.replicas[slot] = fresh;
    }
}

fn id(index: usize) -> String {
    format!("chaos-{index}")
}

async fn create(cluster: &Cluster, index: usize) {
    let answer = cluster
        .call(async |mut client| {
            client
                .create_instance(CreateInstanceRequest {
                    id: id(index),
                    ..CreateInstanceRequest::default()
                })
                .await
                .map(|_| ())
        })
        .await;
    match answer {
        // A retry after a kill may find the first attempt's row.
        Ok(()) => {}
        Err(status) if status.code() == Code::AlreadyExists => {}
        Err(status) => panic!("create {}: {status:?}", id(index)),
    }
}

async fn delete(cluster: &Cluster, index: usize) {
    let answer = cluster
        .call(async |mut client| {
            client
                .delete_instance(DeleteInstanceRequest {
                    id: id(index),
                    // Half keep their data.
                    preserve_data: Some(index.is_multiple_of(2)),
                })
                .await
                .map(|_| ())
        })
        .await;
    match answer {
        Ok(()) => {}
        // A retry after the first attempt finished.
        Err(status) if status.code() == Code::NotFound => {}
        Err(status) => panic!("delete {}: {status:?}", id(index)),
    }
}

/// Kind → names of every object carrying the platform's instance label.
fn instance_objects(server: &KubeApiServer) -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for kind in KINDS {
        for object in server.objects(kind, NAMESPACE) {
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            found
                .entry(kind.to_owned())
                .or_default()
                .insert(name.to_owned());
        }
    }
    found
}

/// What the cluster must hold at the end.
fn expected_objects() -> BTreeMap<String, BTreeSet<String>> {
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for index in 0..INSTANCES {
        let deleted = index < DELETED;
        for kind in KINDS {
            let kept = kind == "PersistentVolumeClaim" && index.is_multiple_of(2);
            if deleted && !kept {
                continue;
            }
            let name = if kind == "PersistentVolumeClaim" {
                format!("{}-openclaw-data", id(index))
            } else {
                format!("{}-openclaw", id(index))
            };
            expected.entry(kind.to_owned()).or_default().insert(name);
        }
    }
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_three_times_loses_and_orphans_nothing() {
    let server = KubeApiServer::start(Options {
        namespace: NAMESPACE.into(),
        ..Options::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let database = TestDatabase::create(Backend::Postgres).await;
    let ports = vec![24611, 24612];
    let mut cluster = Cluster {
        dir: dir.path().to_path_buf(),
        replicas: ports
            .iter()
            .map(|port| Replica::start(dir.path(), *port, &kubeconfig, &database.url, 0))
            .collect(),
        kubeconfig,
        database_url: database.url.clone(),
        ports,
        restarts: 0,
    };
    cluster.leader(&server).await;

    let started = Instant::now();
    for index in 0..INSTANCES {
        create(&cluster, index).await;
        if index == 15 || index == 35 {
            cluster.kill_leader(&server).await;
        }
    }
    for index in 0..DELETED {
        delete(&cluster, index).await;
        if index == 8 {
            cluster.kill_leader(&server).await;
        }
    }
    eprintln!("operations done in {:?}", started.elapsed());

    // Everything settles: the cluster holds exactly what the store says.
    let expected = expected_objects();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let found = instance_objects(&server);
        if found == expected {
            break;
        }
        if Instant::now() > deadline {
            for (kind, names) in &expected {
                let held = found.get(kind).cloned().unwrap_or_default();
                let missing: Vec<_> = names.difference(&held).collect();
                let orphaned: Vec<_> = held.difference(names).collect();
                eprintln!("{kind}: missing {missing:?}, orphaned {orphaned:?}");
            }
            for (slot, replica) in cluster.replicas.iter().enumerate() {
                eprintln!("replica {slot} pid {}", replica.pid());
            }
            panic!(
                "the cluster never matched the store; logs under {}",
                dir.path().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("settled {:?} after the start", started.elapsed());

    // The store holds exactly the survivors, none of them still deleting.
    let listed = cluster
        .call(async |mut client| {
            client
                .list_instances(clawfleet_contracts::lifecycle::v1::ListInstancesRequest::default())
                .await
                .map(|response| response.into_inner().instances)
        })
        .await
        .unwrap();
    let ids: BTreeSet<String> = listed.iter().map(|instance| instance.id.clone()).collect();
    let survivors: BTreeSet<String> = (DELETED..INSTANCES).map(id).collect();
    assert_eq!(ids, survivors);
    assert!(
        listed
            .iter()
            .all(|instance| instance.phase
                != clawfleet_contracts::common::v1::Phase::Deleting as i32),
        "a delete was left unfinished"
    );
}

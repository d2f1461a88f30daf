//! Shared setup of the Kubernetes runtime tests: a Kubernetes API server on loopback
//! (`clawfleet-kube-apiserver`), a kube client built from its kubeconfig like
//! production builds one, and the runtime on top.
#![allow(dead_code)]

pub mod lifecycle;

use std::{future::Future, time::Duration};

use clawfleet_kube_apiserver::{KubeApiServer, Options};
use clawfleet_lifecycle::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceSpec, Plan},
    runtime::kubernetes::{
        KubernetesRuntime,
        config::{ClusterAccess, KubernetesConfig},
    },
};
use serde_json::Value;

pub const NAMESPACE: &str = "openclaw";

pub async fn server() -> KubeApiServer {
    KubeApiServer::start(Options {
        namespace: NAMESPACE.into(),
        ..Options::default()
    })
    .await
    .expect("start the api server")
}

pub async fn client_for(server: &KubeApiServer) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

pub fn config() -> KubernetesConfig {
    let mut config = KubernetesConfig::new(
        ClusterAccess::Infer,
        NAMESPACE,
        "registry.example/openclaw:2026.9.6",
    );
    config.sync_timeout = Duration::from_secs(10);
    config
}

pub async fn runtime(server: &KubeApiServer, config: KubernetesConfig) -> KubernetesRuntime {
    KubernetesRuntime::with_client(client_for(server).await, config)
        .await
        .expect("runtime starts")
}

pub fn spec(id: &str, desired_state: DesiredState) -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::parse(id).unwrap(),
        plan: Plan::Free,
        desired_state,
        model: "anthropic/claude-sonnet-4-5".into(),
        gateway_token: format!("{id}-token"),
        secrets: [("ANTHROPIC_API_KEY".to_owned(), format!("sk-ant-{id}"))].into(),
    }
}

/// The requests since the log was last cleared that change something (not reads or
/// watches): none means no reconcile storm.
pub fn writes(server: &KubeApiServer) -> Vec<clawfleet_kube_apiserver::RequestRecord> {
    server
        .request_log()
        .into_iter()
        .filter(|request| !matches!(request.verb.as_str(), "list" | "watch" | "get"))
        .collect()
}

/// The lifecycle service on the Kubernetes runtime of `server`, as production starts
/// it: from a kubeconfig (written into `data_dir`) and its store in `data_dir`.
pub async fn lifecycle_server(
    server: &KubeApiServer,
    data_dir: &std::path::Path,
    reconcile_period: Duration,
) -> clawfleet_lifecycle::LifecycleServer {
    let kubeconfig = data_dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let mut kubernetes = config();
    kubernetes.access = ClusterAccess::Kubeconfig(kubeconfig);
    clawfleet_lifecycle::LifecycleServer::start(clawfleet_lifecycle::LifecycleConfig {
        data_dir: data_dir.to_path_buf(),
        database_url: lifecycle::sqlite_url(data_dir),
        runtime: clawfleet_lifecycle::RuntimeChoice::Kubernetes(Box::new(kubernetes)),
        reconcile_period,
        watch_bookmark_interval: clawfleet_lifecycle::watch_hub::DEFAULT_BOOKMARK_INTERVAL,
        kept_data_retention: clawfleet_lifecycle::kept_data::DEFAULT_RETENTION,
        provider_keys: Default::default(),
        backups: None,
    })
    .await
    .expect("the lifecycle service starts")
}

/// Fails the test instead of hanging.
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `check` until it returns Some.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    bounded(what, async {
        loop {
            if let Some(value) = check() {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// `(kind, name)` of every object labelled for `instance` in the namespace.
pub fn objects_of(server: &KubeApiServer, instance: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for kind in [
        "Deployment",
        "ReplicaSet",
        "Pod",
        "Service",
        "Secret",
        "ConfigMap",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Ingress",
        "ManagedCertificate",
    ] {
        for object in server.objects(kind, NAMESPACE) {
            if object["metadata"]["labels"]["app.kubernetes.io/instance"] == instance {
                found.push((
                    kind.to_owned(),
                    object["metadata"]["name"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    found.sort();
    found
}

pub fn resource_version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

//! Shared test setup: a server and a kube::Client built from its kubeconfig.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use clawfleet_kube_apiserver::{KubeApiServer, Options};

pub async fn start() -> (KubeApiServer, kube::Client) {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> (KubeApiServer, kube::Client) {
    let server = KubeApiServer::start(options).await.expect("start server");
    let client = client_for(&server).await;
    (server, client)
}

/// Builds the client the way production code does: from a kubeconfig.
pub async fn client_for(server: &KubeApiServer) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    kube::Client::try_from(config).expect("client")
}

/// Fails the test instead of hanging.
pub async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("timed out")
}

/// Polls `check` until it returns Some.
pub async fn eventually<T>(mut check: impl FnMut() -> Option<T>) -> T {
    bounded(async {
        loop {
            if let Some(v) = check() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

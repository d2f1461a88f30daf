//! Injected failures and slowness, as the runtime's tests use them.

use std::time::{Duration, Instant};

use crate::common::{bounded, start};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn config_map(name: &str) -> serde_json::Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name }, "data": { "k": "v" } })
}

#[tokio::test]
async fn injected_statuses_carry_the_apiservers_reasons() {
    let (server, client) = start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    let apply = PatchParams::apply("test").force();
    // (kube-rs itself retries 429, 503 and 504, so those are not checked one by one.)
    for (code, reason) in [
        (409, "Conflict"),
        (403, "Forbidden"),
        (500, "InternalError"),
    ] {
        server.fail_requests(Some("configmaps"), Some("patch"), code, 1);
        let error = bounded(maps.patch("a", &apply, &Patch::Apply(config_map("a"))))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, kube::Error::Api(status) if status.code == code && status.reason == reason),
            "{error:?}"
        );
    }
    bounded(maps.patch("a", &apply, &Patch::Apply(config_map("a"))))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_delayed_write_is_in_flight_for_the_delay_and_then_lands() {
    let (server, client) = start().await;
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    server.delay_requests(
        Some("configmaps"),
        Some("patch"),
        Duration::from_millis(400),
        1,
    );
    let started = Instant::now();
    let write = tokio::spawn({
        let maps = maps.clone();
        async move {
            maps.patch(
                "slow",
                &PatchParams::apply("test"),
                &Patch::Apply(config_map("slow")),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(server.get("configmaps", "default", "slow").is_none());
    bounded(write).await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(server.get("configmaps", "default", "slow").is_some());
}

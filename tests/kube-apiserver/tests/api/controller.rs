//! The built-in Deployment controller and scripted pod statuses.

use std::time::Duration;

use crate::common::{bounded, eventually, start, start_with};
use clawfleet_kube_apiserver::{Options, PodScript, PodState};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

fn deployment(name: &str, image: &str, strategy: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "strategy": { "type": strategy },
            "selector": { "matchLabels": { "clawfleet.io/instance": name } },
            "template": {
                "metadata": { "labels": { "clawfleet.io/instance": name } },
                "spec": { "containers": [{ "name": "gateway", "image": image }] },
            },
        },
    })
}

#[tokio::test]
async fn deployment_becomes_available_with_ready_pods() {
    let (server, client) = start().await;
    bounded(async {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        deployments
            .patch(
                "u1",
                &PatchParams::apply("clawfleet"),
                &Patch::Apply(deployment("u1", "openclaw:1", "Recreate")),
            )
            .await
            .unwrap();
        let status = eventually(|| {
            let d = server.get("deployments", "default", "u1")?;
            (d["status"]["availableReplicas"] == 1 && d["status"]["observedGeneration"] == 1)
                .then_some(d["status"].clone())
        })
        .await;
        assert_eq!(status["conditions"][0]["type"], "Available");
        assert_eq!(status["conditions"][0]["status"], "True");

        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let listed = pods
            .list(&ListParams::default().labels("clawfleet.io/instance=u1"))
            .await
            .unwrap();
        let pod = &listed.items[0];
        let rs_name = pod.metadata.owner_references.as_ref().unwrap()[0]
            .name
            .clone();
        assert!(
            pod.metadata
                .name
                .as_ref()
                .unwrap()
                .starts_with(&format!("{rs_name}-"))
        );
        let cs = &pod
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        assert!(cs.ready && cs.name == "gateway");

        // Recreate: after an image change, the old pod is gone before a new one exists.
        let old_pod = pod.metadata.name.clone().unwrap();
        deployments
            .patch(
                "u1",
                &PatchParams::apply("clawfleet"),
                &Patch::Apply(deployment("u1", "openclaw:2", "Recreate")),
            )
            .await
            .unwrap();
        eventually(|| {
            let d = server.get("deployments", "default", "u1")?;
            (d["status"]["observedGeneration"] == 2
                && d["status"]["updatedReplicas"] == 1
                && d["status"]["availableReplicas"] == 1)
                .then_some(())
        })
        .await;
        let pods_now = server.objects("pods", "default");
        assert_eq!(pods_now.len(), 1);
        assert_ne!(pods_now[0]["metadata"]["name"], old_pod.as_str());
        assert_eq!(pods_now[0]["spec"]["containers"][0]["image"], "openclaw:2");
        // No reconcile storm: an unchanged apply is a no-op.
        let rv = server.get("deployments", "default", "u1").unwrap()["metadata"]["resourceVersion"]
            .clone();
        deployments
            .patch(
                "u1",
                &PatchParams::apply("clawfleet"),
                &Patch::Apply(deployment("u1", "openclaw:2", "Recreate")),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            server.get("deployments", "default", "u1").unwrap()["metadata"]["resourceVersion"],
            rv
        );
    })
    .await;
}

#[tokio::test]
async fn scripted_pod_statuses_look_like_kubelet() {
    let (server, client) = start_with(Options {
        pod_startup: Duration::from_millis(50),
        ..Options::default()
    })
    .await;
    server
        .script_pods(
            "clawfleet.io/instance=bad-image",
            PodScript::stays(PodState::Pending).then(
                Duration::from_millis(50),
                PodState::waiting("ImagePullBackOff", "Back-off pulling image \"nope:1\""),
            ),
        )
        .unwrap();
    server
        .script_pods(
            "clawfleet.io/instance=big",
            PodScript::stays(PodState::unschedulable(
                "0/3 nodes are available: 3 Insufficient memory.",
            )),
        )
        .unwrap();
    bounded(async {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        for name in ["bad-image", "big", "oom"] {
            deployments
                .patch(
                    name,
                    &PatchParams::apply("clawfleet"),
                    &Patch::Apply(deployment(name, "img:1", "Recreate")),
                )
                .await
                .unwrap();
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let waiting = eventually(|| {
            let p = server
                .objects("pods", "default")
                .into_iter()
                .find(|p| p["metadata"]["labels"]["clawfleet.io/instance"] == "bad-image")?;
            let w = p
                .pointer("/status/containerStatuses/0/state/waiting")?
                .clone();
            (w["reason"] == "ImagePullBackOff").then_some(p)
        })
        .await;
        let typed = pods
            .get(waiting["metadata"]["name"].as_str().unwrap())
            .await
            .unwrap();
        let status = typed.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        assert_eq!(
            status.container_statuses.unwrap()[0]
                .state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ImagePullBackOff")
        );

        let unschedulable = eventually(|| {
            let p = server
                .objects("pods", "default")
                .into_iter()
                .find(|p| p["metadata"]["labels"]["clawfleet.io/instance"] == "big")?;
            (p.pointer("/status/conditions/0/reason")? == "Unschedulable").then_some(p)
        })
        .await;
        assert!(
            unschedulable["status"]["conditions"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Insufficient memory")
        );

        let oom = eventually(|| {
            server
                .objects("pods", "default")
                .into_iter()
                .find(|p| p["metadata"]["labels"]["clawfleet.io/instance"] == "oom")
        })
        .await;
        assert!(server.set_pod_state(
            "default",
            oom["metadata"]["name"].as_str().unwrap(),
            PodState::oom_killed(4)
        ));
        let typed = pods
            .get(oom["metadata"]["name"].as_str().unwrap())
            .await
            .unwrap();
        let cs = &typed.status.unwrap().container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 4);
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("OOMKilled")
        );
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );

        // The scheduler's complaint is also an Event.
        let events = server.objects("events", "default");
        assert!(events.iter().any(|e| e["reason"] == "FailedScheduling"));
        // The unavailable deployment says so.
        let d = server.get("deployments", "default", "big").unwrap();
        assert_eq!(d["status"]["conditions"][0]["status"], "False");
    })
    .await;
}

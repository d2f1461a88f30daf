//! Typed kube-rs CRUD, server-side apply and deletion against the loopback apiserver.

use crate::common::{bounded, eventually, start};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn deployment(name: &str, image: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "gateway", "image": image, "ports": [{ "containerPort": 18789 }] }] },
            },
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn typed_create_get_list_with_selectors() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ns1");
        for (name, tier) in [("a", "x"), ("b", "y"), ("c", "x")] {
            let cm: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": name, "labels": { "tier": tier } }, "data": { "k": "v" } })).unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
        }
        let again: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": "a" } })).unwrap();
        let err = cms.create(&PostParams::default(), &again).await.unwrap_err();
        assert!(matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"), "{err:?}");

        let got = cms.get("b").await.unwrap();
        assert_eq!(got.metadata.labels.unwrap()["tier"], "y");
        assert!(got.metadata.uid.is_some() && got.metadata.creation_timestamp.is_some());

        let names = |l: kube::core::ObjectList<ConfigMap>| l.items.into_iter().map(|c| c.metadata.name.unwrap()).collect::<Vec<_>>();
        assert_eq!(names(cms.list(&ListParams::default().labels("tier=x")).await.unwrap()), ["a", "c"]);
        assert_eq!(names(cms.list(&ListParams::default().labels("tier in (y,z)")).await.unwrap()), ["b"]);
        assert_eq!(names(cms.list(&ListParams::default().labels("tier!=x")).await.unwrap()), ["b"]);
        assert_eq!(names(cms.list(&ListParams::default().fields("metadata.name=c")).await.unwrap()), ["c"]);
        let page = cms.list(&ListParams::default().limit(2)).await.unwrap();
        assert_eq!(page.items.len(), 2);
        assert!(page.metadata.resource_version.is_some());
        let rest = cms.list(&ListParams::default().limit(2).continue_token(page.metadata.continue_.as_deref().unwrap())).await.unwrap();
        assert_eq!(names(rest), ["c"]);

        let missing = cms.get("nope").await.unwrap_err();
        assert!(matches!(&missing, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"), "{missing:?}");

        // The other kinds round-trip through their typed APIs, with server defaults applied.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "ns1");
        let secret: Secret = serde_json::from_value(json!({ "metadata": { "name": "s" }, "stringData": { "token": "t" } })).unwrap();
        assert_eq!(secrets.create(&PostParams::default(), &secret).await.unwrap().type_.as_deref(), Some("Opaque"));
        let services: Api<Service> = Api::namespaced(client.clone(), "ns1");
        let svc: Service = serde_json::from_value(json!({ "metadata": { "name": "gw" }, "spec": { "selector": { "app": "gw" }, "ports": [{ "port": 80 }] } })).unwrap();
        let svc = services.create(&PostParams::default(), &svc).await.unwrap();
        assert!(svc.spec.unwrap().cluster_ip.unwrap().starts_with("10.96."));
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "ns1");
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({ "metadata": { "name": "data" }, "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } } })).unwrap();
        assert_eq!(pvcs.create(&PostParams::default(), &pvc).await.unwrap().status.unwrap().phase.as_deref(), Some("Pending"));
        let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), "ns1");
        let np: NetworkPolicy = serde_json::from_value(json!({ "metadata": { "name": "deny" }, "spec": { "podSelector": {} } })).unwrap();
        policies.create(&PostParams::default(), &np).await.unwrap();
        assert_eq!(policies.list(&ListParams::default()).await.unwrap().items.len(), 1);

        // PUT with a stale resourceVersion is a 409 Conflict.
        let mut stale = cms.get("a").await.unwrap();
        let mut fresh = stale.clone();
        fresh.data = Some([("k".to_string(), "new".to_string())].into());
        cms.replace("a", &PostParams::default(), &fresh).await.unwrap();
        stale.data = Some([("k".to_string(), "old".to_string())].into());
        let conflict = cms.replace("a", &PostParams::default(), &stale).await.unwrap_err();
        assert!(matches!(&conflict, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"), "{conflict:?}");
    })
    .await;
    let log = server.request_log();
    assert!(
        log.iter()
            .any(|r| r.verb == "list" && r.query.contains("labelSelector"))
    );
}

#[tokio::test]
async fn server_side_apply_conflicts_force_and_no_op() {
    let (_server, client) = start().await;
    bounded(async {
        let deployments: Api<Deployment> = Api::namespaced(client, "default");
        let mine = PatchParams::apply("clawfleet");
        let created = deployments
            .patch("gw", &mine, &Patch::Apply(deployment("gw", "gw:1", 1)))
            .await
            .unwrap();
        let rv = created.metadata.resource_version.clone().unwrap();
        assert_eq!(created.metadata.generation, Some(1));
        let managers: Vec<_> = created
            .metadata
            .managed_fields
            .unwrap()
            .into_iter()
            .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
            .collect();
        assert!(managers.contains(&("clawfleet".into(), "Apply".into())));

        // Unchanged re-apply: same resourceVersion, same generation.
        let again = deployments
            .patch("gw", &mine, &Patch::Apply(deployment("gw", "gw:1", 1)))
            .await
            .unwrap();
        assert_eq!(
            again.metadata.resource_version.as_deref(),
            Some(rv.as_str())
        );
        assert_eq!(again.metadata.generation, Some(1));

        // Another manager changing a field we own: 409 naming field and manager, unless forced.
        let other = PatchParams::apply("kubectl");
        let err = deployments
            .patch("gw", &other, &Patch::Apply(deployment("gw", "gw:2", 1)))
            .await
            .unwrap_err();
        let kube::Error::Api(status) = &err else {
            panic!("{err:?}")
        };
        assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
        assert!(
            status.message.contains("clawfleet") && status.message.contains(".image"),
            "{}",
            status.message
        );
        let forced = deployments
            .patch(
                "gw",
                &other.clone().force(),
                &Patch::Apply(deployment("gw", "gw:2", 1)),
            )
            .await
            .unwrap();
        assert_eq!(
            forced.spec.unwrap().template.spec.unwrap().containers[0]
                .image
                .as_deref(),
            Some("gw:2")
        );
        assert_eq!(forced.metadata.generation, Some(2));

        // fieldManager is required for apply.
        let no_manager = deployments
            .patch(
                "gw",
                &PatchParams::default(),
                &Patch::Apply(deployment("gw", "gw:2", 1)),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&no_manager, kube::Error::Api(s) if s.code == 400),
            "{no_manager:?}"
        );

        // Merge patch works alongside.
        let scaled = deployments
            .patch(
                "gw",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
            )
            .await
            .unwrap();
        assert_eq!(scaled.spec.unwrap().replicas, Some(3));
    })
    .await;
}

#[tokio::test]
async fn delete_propagation_removes_owned_pods() {
    let (server, client) = start().await;
    bounded(async {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        deployments
            .create(&PostParams::default(), &deployment("gw", "gw:1", 2))
            .await
            .unwrap();
        eventually(|| (server.objects("pods", "default").len() == 2).then_some(())).await;
        assert_eq!(server.objects("replicasets", "default").len(), 1);

        deployments
            .delete("gw", &DeleteParams::background())
            .await
            .unwrap();
        eventually(|| {
            (server.objects("pods", "default").is_empty()
                && server.objects("replicasets", "default").is_empty())
            .then_some(())
        })
        .await;
        assert!(
            pods.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );

        // Foreground: the owner stays (with a deletionTimestamp) until its dependents are gone.
        deployments
            .create(&PostParams::default(), &deployment("fg", "gw:1", 1))
            .await
            .unwrap();
        eventually(|| (server.objects("pods", "default").len() == 1).then_some(())).await;
        let pending = deployments
            .delete("fg", &DeleteParams::foreground())
            .await
            .unwrap();
        assert!(pending.is_left(), "foreground delete returns the object");
        eventually(|| {
            (server.get("deployments", "default", "fg").is_none()
                && server.objects("pods", "default").is_empty())
            .then_some(())
        })
        .await;

        // Orphan: dependents survive without the owner reference.
        deployments
            .create(&PostParams::default(), &deployment("or", "gw:1", 1))
            .await
            .unwrap();
        eventually(|| (server.objects("pods", "default").len() == 1).then_some(())).await;
        deployments
            .delete("or", &DeleteParams::orphan())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(server.objects("replicasets", "default").len(), 1);
        assert!(
            server.objects("replicasets", "default")[0]["metadata"]
                .get("ownerReferences")
                .is_none()
        );

        let missing = deployments
            .delete("nope", &DeleteParams::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&missing, kube::Error::Api(s) if s.code == 404),
            "{missing:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn bad_token_is_rejected_and_discovery_answers() {
    let (server, client) = start().await;
    bounded(async {
        let mut config = kube::Config::new(server.url().parse().unwrap());
        config.auth_info.token = Some("wrong".to_string().into());
        let intruder = kube::Client::try_from(config).unwrap();
        let err = Api::<Pod>::namespaced(intruder, "default")
            .list(&ListParams::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 401),
            "{err:?}"
        );

        let version = client.apiserver_version().await.unwrap();
        assert_eq!(version.major, "1");
        let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
        assert!(discovery.has_group("apps") && discovery.has_group("networking.gke.io"));
        let aggregated = kube::Discovery::new(client).run_aggregated().await.unwrap();
        let (ar, caps) = aggregated
            .resolve_gvk(&kube::api::GroupVersionKind::gvk(
                "apps",
                "v1",
                "Deployment",
            ))
            .unwrap();
        assert_eq!(ar.plural, "deployments");
        assert!(!caps.subresources.is_empty());
    })
    .await;
}

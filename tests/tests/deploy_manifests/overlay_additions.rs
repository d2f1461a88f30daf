//! What each overlay adds: on GKE the edge behind an Ingress with a managed certificate,
//! instances on gVisor and a storage class; in dev nothing of the kind.

use clawfleet_kit::service_keys::Service;
use k8s_openapi::api::networking::v1::Ingress;

use crate::{
    Rendered, instance_objects, overlays,
    render::{name_of, pod_spec},
    runtime_config,
};

fn overlay(name: &str) -> &'static Rendered {
    overlays()
        .iter()
        .find(|rendered| rendered.overlay == name)
        .unwrap_or_else(|| panic!("overlay {name} is rendered"))
}

fn annotation<'a>(
    annotations: &'a Option<std::collections::BTreeMap<String, String>>,
    key: &str,
) -> &'a str {
    annotations
        .as_ref()
        .and_then(|annotations| annotations.get(key))
        .map(String::as_str)
        .unwrap_or_else(|| panic!("annotation {key}"))
}

#[test]
fn on_gke_the_edge_is_served_by_an_ingress_with_a_managed_certificate() {
    let gke = overlay("gke");
    assert_eq!(gke.ingresses.len(), 1);
    let ingress: &Ingress = &gke.ingresses[0];
    let backend = ingress
        .spec
        .as_ref()
        .and_then(|spec| spec.default_backend.as_ref())
        .and_then(|backend| backend.service.as_ref())
        .expect("a default backend Service");
    let edge = gke
        .services
        .iter()
        .find(|service| name_of(&service.metadata) == backend.name)
        .expect("the backend Service exists");
    let port = backend.port.as_ref().and_then(|port| port.number);
    assert_eq!(port, Some(i32::from(Service::Edge.default_port())));
    let selector = edge
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.clone())
        .unwrap_or_default();
    assert_eq!(
        selector
            .get("app.kubernetes.io/component")
            .map(String::as_str),
        Some("edge")
    );

    let certificate = annotation(
        &ingress.metadata.annotations,
        "networking.gke.io/managed-certificates",
    );
    let certificate = gke
        .gke_object("ManagedCertificate", certificate)
        .expect("the ManagedCertificate the Ingress names");
    assert!(
        certificate["spec"]["domains"]
            .as_array()
            .is_some_and(|domains| !domains.is_empty())
    );
    let frontend = annotation(
        &ingress.metadata.annotations,
        "networking.gke.io/v1beta1.FrontendConfig",
    );
    assert!(gke.gke_object("FrontendConfig", frontend).is_some());

    // The load balancer keeps WebSockets (VNC, watch) open and checks the edge's /health.
    let backend_config: serde_json::Value = serde_json::from_str(annotation(
        &edge.metadata.annotations,
        "cloud.google.com/backend-config",
    ))
    .expect("JSON");
    let backend_config = gke
        .gke_object(
            "BackendConfig",
            backend_config["default"].as_str().expect("a default"),
        )
        .expect("the BackendConfig the edge's Service names");
    assert!(
        backend_config["spec"]["timeoutSec"]
            .as_u64()
            .is_some_and(|seconds| seconds >= 3600)
    );
    assert_eq!(
        backend_config["spec"]["healthCheck"]["requestPath"],
        "/health"
    );
}

#[test]
fn on_gke_instances_run_on_gvisor_and_volumes_on_the_overlays_storage_class() {
    let gke = overlay("gke");
    let config = runtime_config(gke);
    assert_eq!(config.runtime_class.as_deref(), Some("gvisor"));
    let (instance, _) = instance_objects(gke);
    assert_eq!(
        pod_spec(&instance).runtime_class_name.as_deref(),
        Some("gvisor")
    );
    let class = config.storage_class.expect("OPENCLAW_STORAGE_CLASS");
    assert!(
        gke.storage_classes
            .iter()
            .any(|candidate| name_of(&candidate.metadata) == class),
        "StorageClass {class} is rendered"
    );
    for claim in &gke.volume_claims {
        let claimed = claim
            .spec
            .as_ref()
            .and_then(|spec| spec.storage_class_name.as_deref());
        assert_eq!(
            claimed,
            Some(class.as_str()),
            "{}",
            name_of(&claim.metadata)
        );
    }
}

#[test]
fn in_dev_nothing_is_exposed_and_the_clusters_defaults_apply() {
    let dev = overlay("dev");
    assert!(dev.ingresses.is_empty());
    assert!(dev.gke_objects.is_empty());
    assert!(dev.storage_classes.is_empty());
    let config = runtime_config(dev);
    assert_eq!(config.runtime_class, None);
    assert_eq!(config.storage_class, None);
    assert_eq!(config.ingress_domain_base, None);
}

//! `deploy/` checked without a cluster: every overlay is rendered with `kubectl kustomize`
//! and each object read into its k8s-openapi type (and back, unchanged, so a misspelt
//! field cannot hide), then held to the code it deploys:
//!
//! - [`workloads`]: every container hardened, probes, resources, replicas, spread,
//!   budgets, grace periods, service accounts;
//! - [`settings`]: each service's settings against the kit's key table and its real
//!   loader; ports, addresses and Services that select pods that exist;
//! - [`secrets`]: every Secret key referenced is created by the recipe in deploy/README.md
//!   (and the recipe creates nothing unused);
//! - [`network`]: the NetworkPolicies, with the instances' own policy as the lifecycle
//!   writes it, allow exactly the calls of the architecture ([`policy_eval`] evaluates
//!   them);
//! - [`overlay_additions`]: what each overlay adds (GKE's ingress, gVisor and storage class);
//! - [`rbac`]: the lifecycle's Role equals the runtime's permission table;
//! - [`monitoring`]: the optional monitoring component renders into an overlay, its
//!   ServiceMonitors reach every service's metrics port, every alert has a runbook, and
//!   promtool accepts the rules;
//! - [`service_tls`]: the optional service TLS component mounts each service's
//!   certificate, names every dialled host and probes without plaintext gRPC.
//!
//! kubectl is required: without it the test fails and says how to install it.

mod monitoring;
mod network;
mod overlay_additions;
mod policy_eval;
mod rbac;
mod render;
mod secrets;
mod service_tls;
mod settings;
mod workloads;

use std::collections::BTreeMap;

use clawfleet_kit::{config::EnvMap, service_keys::Service};
use clawfleet_lifecycle::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceSpec, Plan},
    runtime::kubernetes::{
        config::KubernetesConfig,
        kinds::ObjectKind,
        manifests::{desired_objects, gateway_network_policy},
    },
};
use k8s_openapi::api::{apps::v1::Deployment, networking::v1::NetworkPolicy};

pub use render::{Rendered, overlays};

/// The platform's Deployment running `service` (its container's args name the subcommand).
pub fn deployment_of(rendered: &Rendered, service: Service) -> &Deployment {
    let found: Vec<&Deployment> = rendered
        .deployments
        .iter()
        .filter(|deployment| {
            render::pod_spec(deployment)
                .containers
                .iter()
                .any(|container| {
                    container.args.as_deref() == Some(&[service.subcommand().to_owned()][..])
                })
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{}: one Deployment runs `clawfleet {}`",
        rendered.overlay,
        service.subcommand()
    );
    found[0]
}

/// A value the loaders accept for a key that a Secret provides.
pub fn secret_sample(key: &str) -> String {
    match key {
        "JWT_SECRET" => "a-jwt-secret-of-at-least-thirty-two-bytes".to_owned(),
        "DATABASE_URL" => "postgres://clawfleet:password@db.example:5432/clawfleet".to_owned(),
        "CLAWFLEET_SERVICE_TOKEN" => "a-sample-service-token-of-32-characters".to_owned(),
        "CLAWFLEET_SERVICE_TOKEN_DIGESTS" => format!("edge={}", "ab".repeat(32)),
        _ => format!("sample-{}", key.to_ascii_lowercase()),
    }
}

/// The environment a Deployment's first container starts with: its ConfigMaps' data, its
/// literal values and, for keys from Secrets, a valid sample.
pub fn container_env(rendered: &Rendered, deployment: &Deployment) -> EnvMap {
    let spec = render::pod_spec(deployment);
    let container = &spec.containers[0];
    let namespace = render::namespace_of(&deployment.metadata);
    let mut env = EnvMap::default();
    for source in container.env_from.iter().flatten() {
        let reference = source
            .config_map_ref
            .as_ref()
            .expect("settings come from ConfigMaps; Secrets are named key by key");
        let config_map = rendered
            .config_map(namespace, &reference.name)
            .unwrap_or_else(|| panic!("ConfigMap {} is not rendered", reference.name));
        for (key, value) in config_map.data.iter().flatten() {
            env.set(key.clone(), value.clone());
        }
    }
    for variable in container.env.iter().flatten() {
        let value = match (&variable.value, &variable.value_from) {
            (Some(value), None) => value.clone(),
            (None, Some(source)) => {
                let secret = source
                    .secret_key_ref
                    .as_ref()
                    .unwrap_or_else(|| panic!("{} comes from a Secret", variable.name));
                secret_sample(&secret.key)
            }
            _ => panic!("{} has one literal value or one source", variable.name),
        };
        env.set(variable.name.clone(), value);
    }
    env
}

/// The lifecycle's Kubernetes runtime as this overlay configures it.
pub fn runtime_config(rendered: &Rendered) -> KubernetesConfig {
    let lifecycle = deployment_of(rendered, Service::Lifecycle);
    KubernetesConfig::from_env(&container_env(rendered, lifecycle))
        .unwrap_or_else(|error| panic!("{}: lifecycle settings: {error}", rendered.overlay))
}

/// One instance's Deployment as the lifecycle writes it with this overlay's settings, and
/// the one NetworkPolicy the lifecycle writes for every gateway.
pub fn instance_objects(rendered: &Rendered) -> (Deployment, NetworkPolicy) {
    let spec = InstanceSpec {
        id: InstanceId::parse("alice").expect("a valid id"),
        plan: Plan::Free,
        desired_state: DesiredState::Running,
        model: "anthropic/claude-sonnet-4-5".to_owned(),
        gateway_token: "a-gateway-token".to_owned(),
        secrets: BTreeMap::new(),
    };
    let objects = desired_objects(&runtime_config(rendered), &spec);
    let body = |kind: ObjectKind| {
        objects
            .iter()
            .find(|object| object.kind == kind)
            .map(|object| object.body.clone())
            .unwrap_or_else(|| panic!("the instance has a {kind:?}"))
    };
    (
        serde_json::from_value(body(ObjectKind::Deployment)).expect("a Deployment"),
        serde_json::from_value(gateway_network_policy(&runtime_config(rendered)).body)
            .expect("a NetworkPolicy"),
    )
}

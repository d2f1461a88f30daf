//! The gateway Deployment (docs/product/instances.md#kubernetes-objects): one replica
//! (zero when stopped), Recreate (two gateways must never share a state dir), the
//! hardened pod, probes on the gateway port, the state dir on the PVC, and one container
//! running the image's entrypoint, `clawfleet instance run`
//! (docs/product/runtimes.md#one-entrypoint): it prepares the state dir from the mounted
//! ConfigMap, starts the virtual display, runs the gateway and approves the platform
//! bridge's pairing — the same code the local runtime starts each instance with.

use std::collections::BTreeMap;

use clawfleet_kit::config::keys;
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
            EnvFromSource, EnvVar, HTTPGetAction, PersistentVolumeClaimVolumeSource,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretEnvSource,
            SecurityContext, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{CONFIG_FILE, metadata};
use crate::{
    model::{DesiredState, InstanceSpec},
    runtime::kubernetes::{
        config::{KubernetesConfig, NOVNC_PORT},
        kinds::ObjectKind,
        names,
        plan::{TMP_SIZE_LIMIT, plan_resources},
    },
};

pub const GATEWAY_CONTAINER: &str = "gateway";
/// The gateway image's entrypoint (Dockerfile.gke), named here so the manifest says
/// what runs.
const ENTRYPOINT: [&str; 3] = ["/usr/local/bin/clawfleet", "instance", "run"];
/// Where the ConfigMap (the platform's keys) is mounted.
pub const BASE_CONFIG_DIR: &str = "/etc/clawfleet";

/// The gateway drains for up to 315 s after SIGTERM (docs/reference/openclaw-gateway.md#startup-and-shutdown: `drain=315000ms`).
pub const TERMINATION_GRACE_SECONDS: i64 = 330;

/// The gateway and its helpers run as this non-root user and group.
const UID: i64 = 1000;

const DATA_VOLUME: &str = "data";
const TMP_VOLUME: &str = "tmp";
const CONFIG_VOLUME: &str = "base-config";
const DATA_DIR: &str = "/data";
const STATE_DIR: &str = "/data/state";
const HOME_DIR: &str = "/data/home";

/// Pod-template annotation that changes with the Secret and ConfigMap, so a new token,
/// key or model rolls the gateway (environment is read at start).
pub const ROLLOUT_HASH_ANNOTATION: &str = "clawfleet.ai/config-hash";

/// A short digest of the objects whose change must restart the gateway.
pub fn rollout_hash(objects: &[&Value]) -> String {
    let mut hasher = Sha256::new();
    for object in objects {
        hasher.update(object["data"].to_string().as_bytes());
        hasher.update([0]);
    }
    hasher.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub fn deployment(
    config: &KubernetesConfig,
    spec: &InstanceSpec,
    rollout_hash: &str,
) -> Deployment {
    let id = &spec.id;
    Deployment {
        metadata: metadata(config, ObjectKind::Deployment, id),
        spec: Some(DeploymentSpec {
            replicas: Some(match spec.desired_state {
                DesiredState::Running => 1,
                DesiredState::Stopped => 0,
            }),
            revision_history_limit: Some(2),
            selector: LabelSelector {
                match_labels: Some(names::selector_labels(id)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names::labels(id)),
                    annotations: Some(BTreeMap::from([(
                        ROLLOUT_HASH_ANNOTATION.to_owned(),
                        rollout_hash.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    // Gateways never call the Kubernetes API, and thousands of Services
                    // in the namespace must not become environment variables.
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    runtime_class_name: config.runtime_class.clone(),
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(UID),
                        run_as_group: Some(UID),
                        fs_group: Some(UID),
                        fs_group_change_policy: Some("OnRootMismatch".to_owned()),
                        seccomp_profile: Some(runtime_default_seccomp()),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![gateway_container(config, spec)],
                    volumes: Some(volumes(spec)),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

/// No privilege, no capabilities, read-only root filesystem (docs/product/instances.md#pod-hardening).
fn hardened() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(UID),
        run_as_group: Some(UID),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// An HTTP probe on the gateway port; every field set, so nothing is left to defaults.
fn probe(path: &str, port: u16, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(i32::from(port)),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        success_threshold: Some(1),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn gateway_container(config: &KubernetesConfig, spec: &InstanceSpec) -> Container {
    let port = config.gateway_port;
    let port_text = port.to_string();
    let mut env = vec![
        env_var(keys::OPENCLAW_STATE_DIR, STATE_DIR),
        env_var("HOME", HOME_DIR),
        env_var("TMPDIR", "/tmp"),
        env_var("OPENCLAW_DISABLE_BONJOUR", "1"),
        env_var(keys::OPENCLAW_GATEWAY_PORT, &port_text),
        env_var(
            keys::CLAWFLEET_BASE_CONFIG,
            &format!("{BASE_CONFIG_DIR}/{CONFIG_FILE}"),
        ),
    ];
    if let Some(device) = &config.platform_device_id {
        env.push(env_var(keys::CLAWFLEET_PLATFORM_DEVICE_ID, device));
    }
    Container {
        name: GATEWAY_CONTAINER.to_owned(),
        image: Some(config.image.clone()),
        command: Some(ENTRYPOINT.map(str::to_owned).to_vec()),
        ports: Some(vec![
            ContainerPort {
                name: Some("gateway".to_owned()),
                container_port: i32::from(port),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("novnc".to_owned()),
                container_port: i32::from(NOVNC_PORT),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        env: Some(env),
        // The gateway token and provider API keys.
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: names::object_name(&spec.id),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        resources: Some(plan_resources(spec.plan).requirements()),
        // Startup within 60 s (docs/product/instances.md#probes), then liveness and readiness.
        startup_probe: Some(probe("/startupz", port, 2, 30)),
        liveness_probe: Some(probe("/healthz", port, 10, 3)),
        readiness_probe: Some(probe("/readyz", port, 5, 2)),
        security_context: Some(hardened()),
        volume_mounts: Some(vec![
            mount(DATA_VOLUME, DATA_DIR, false),
            mount(TMP_VOLUME, "/tmp", false),
            mount(CONFIG_VOLUME, BASE_CONFIG_DIR, true),
        ]),
        ..Container::default()
    }
}

fn volumes(spec: &InstanceSpec) -> Vec<Volume> {
    vec![
        Volume {
            name: DATA_VOLUME.to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names::pvc_name(&spec.id),
                read_only: None,
            }),
            ..Volume::default()
        },
        Volume {
            name: TMP_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity(TMP_SIZE_LIMIT.to_owned())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: CONFIG_VOLUME.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::object_name(&spec.id),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
    ]
}

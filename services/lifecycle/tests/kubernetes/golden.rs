//! Golden manifests: the objects of one instance of each plan, as the runtime applies
//! them, compared byte for byte with `tests/golden/<plan>/<kind>.json`, and each read
//! back into its k8s-openapi type unchanged. `UPDATE_GOLDEN=1 cargo test -p
//! clawfleet-lifecycle --test kubernetes_golden` rewrites the files after a deliberate
//! change (review the diff).

use std::path::PathBuf;

use clawfleet_lifecycle::{
    instance_id::InstanceId,
    model::{DesiredState, InstanceSpec, Plan},
    runtime::kubernetes::{
        config::{ClusterAccess, KubernetesConfig},
        kinds::ObjectKind,
        manifests::{
            APPLIED_DIGEST_ANNOTATION, DesiredObject, GATEWAY_CONTAINER, desired_objects,
            gateway_network_policy,
        },
    },
};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service},
        networking::v1::{Ingress, NetworkPolicy},
    },
    serde::{Serialize, de::DeserializeOwned},
};
use kube::api::DynamicObject;
use serde_json::Value;

fn golden_config() -> KubernetesConfig {
    let mut config = KubernetesConfig::new(
        ClusterAccess::Infer,
        "openclaw",
        "registry.example/openclaw:2026.9.6",
    );
    config.ingress_domain_base = Some("claw.example.com".into());
    config.runtime_class = Some("gvisor".into());
    config.trusted_proxies = vec!["10.0.0.10".into()];
    config.platform_device_id = Some("golden-platform-device".into());
    config
}

fn golden_spec(plan: Plan) -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::parse(&format!("{}-user", plan.as_str())).unwrap(),
        plan,
        desired_state: DesiredState::Running,
        model: "anthropic/claude-sonnet-4-5".into(),
        gateway_token: "golden-gateway-token".into(),
        secrets: [
            ("ANTHROPIC_API_KEY".to_owned(), "sk-ant-golden".to_owned()),
            ("OPENROUTER_API_KEY".to_owned(), "sk-or-golden".to_owned()),
        ]
        .into(),
    }
}

const PLANS: [Plan; 3] = [Plan::Free, Plan::Pro, Plan::Enterprise];

fn golden_path(plan: Plan, kind: ObjectKind) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(plan.as_str())
        .join(format!("{}.json", kind.file_stem()))
}

#[test]
fn manifests_match_the_golden_files() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|value| value == "1");
    let mut mismatches = Vec::new();
    for plan in PLANS {
        let objects = desired_objects(&golden_config(), &golden_spec(plan));
        assert_eq!(objects.len(), 7, "every kind once");
        let shared = gateway_network_policy(&golden_config());
        for (path, object) in objects
            .into_iter()
            .map(|object| (golden_path(plan, object.kind), object))
            .chain([(shared_policy_path(), shared)])
        {
            let text = serde_json::to_string_pretty(&object.body).unwrap() + "\n";
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let golden = std::fs::read_to_string(&path).unwrap_or_else(|_| {
                panic!("{} is missing; run with UPDATE_GOLDEN=1", path.display())
            });
            if golden != text {
                mismatches.push(path.display().to_string());
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "manifests differ from {mismatches:?}; if intended, rerun with UPDATE_GOLDEN=1 and review the diff"
    );
}

/// The NetworkPolicy of all gateways (one, whatever the plan).
fn shared_policy_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/networkpolicy.json")
}

/// `body` without the applied-digest stamp (which changes with any field).
fn unstamped(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(annotations) = body["metadata"]["annotations"].as_object_mut() {
        annotations.remove(APPLIED_DIGEST_ANNOTATION);
    }
    body
}

/// Reads `body` as `T` and writes it again: nothing may be lost or added.
fn round_trip<T: DeserializeOwned + Serialize>(body: &Value) -> Value {
    let typed: T = serde_json::from_value(body.clone()).expect("reads as its k8s-openapi type");
    serde_json::to_value(&typed).unwrap()
}

#[test]
fn golden_files_are_valid_objects_of_their_kind() {
    // The builders' output, which the test above holds equal to the golden files.
    for plan in PLANS {
        for object in desired_objects(&golden_config(), &golden_spec(plan))
            .into_iter()
            .chain([gateway_network_policy(&golden_config())])
        {
            let (kind, body) = (object.kind, object.body);
            let again = match kind {
                ObjectKind::Deployment => round_trip::<Deployment>(&body),
                ObjectKind::Service => round_trip::<Service>(&body),
                ObjectKind::Secret => round_trip::<Secret>(&body),
                ObjectKind::ConfigMap => round_trip::<ConfigMap>(&body),
                ObjectKind::PersistentVolumeClaim => round_trip::<PersistentVolumeClaim>(&body),
                ObjectKind::NetworkPolicy => round_trip::<NetworkPolicy>(&body),
                ObjectKind::Ingress => round_trip::<Ingress>(&body),
                ObjectKind::ManagedCertificate => round_trip::<DynamicObject>(&body),
                ObjectKind::Pod => unreachable!("pods are not applied"),
            };
            assert_eq!(again, body, "{plan:?} {kind:?}");
            assert_eq!(body["apiVersion"], kind.api_version());
            assert_eq!(body["kind"], kind.kind_name());
        }
    }
}

fn find(objects: &[DesiredObject], kind: ObjectKind) -> &Value {
    &objects
        .iter()
        .find(|object| object.kind == kind)
        .unwrap()
        .body
}

#[test]
fn every_object_is_named_and_labelled_as_the_spec_says() {
    let spec = golden_spec(Plan::Free);
    for object in desired_objects(&golden_config(), &spec) {
        let metadata = &object.body["metadata"];
        let expected_name = match object.kind {
            ObjectKind::PersistentVolumeClaim => "free-user-openclaw-data",
            _ => "free-user-openclaw",
        };
        assert_eq!(metadata["name"], expected_name);
        assert_eq!(object.name, expected_name);
        assert_eq!(metadata["namespace"], "openclaw");
        assert_eq!(
            metadata["labels"],
            serde_json::json!({
                "openclaw.ai/user": "free-user",
                "app.kubernetes.io/name": "openclaw",
                "app.kubernetes.io/instance": "free-user",
                "app.kubernetes.io/managed-by": "clawfleet",
            })
        );
    }
}

#[test]
fn the_gateway_pod_is_hardened_sized_and_probed() {
    for (plan, requests, limits) in [
        (Plan::Free, ("250m", "512Mi"), ("500m", "1Gi")),
        (Plan::Pro, ("500m", "1Gi"), ("2", "4Gi")),
        (Plan::Enterprise, ("1", "2Gi"), ("4", "8Gi")),
    ] {
        let objects = desired_objects(&golden_config(), &golden_spec(plan));
        let deployment: Deployment =
            serde_json::from_value(find(&objects, ObjectKind::Deployment).clone()).unwrap();
        let spec = deployment.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.runtime_class_name.as_deref(), Some("gvisor"));
        assert!(pod.termination_grace_period_seconds.unwrap() >= 315);
        let pod_security = pod.security_context.unwrap();
        assert_eq!(pod_security.run_as_user, Some(1000));
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(
            pod_security.seccomp_profile.unwrap().type_,
            "RuntimeDefault"
        );
        let gateway = pod
            .containers
            .iter()
            .find(|container| container.name == GATEWAY_CONTAINER)
            .unwrap();
        let ports: Vec<i32> = gateway
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|port| port.container_port)
            .collect();
        assert_eq!(ports, [18789, 6080]);
        let path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
            probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .clone()
                .unwrap()
        };
        assert_eq!(path(&gateway.liveness_probe), "/healthz");
        assert_eq!(path(&gateway.startup_probe), "/startupz");
        assert_eq!(path(&gateway.readiness_probe), "/readyz");
        let resources = gateway.resources.as_ref().unwrap();
        let get = |map: &Option<
            std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >,
                   key: &str| { map.as_ref().unwrap()[key].0.clone() };
        assert_eq!(
            (
                get(&resources.requests, "cpu"),
                get(&resources.requests, "memory")
            ),
            (requests.0.into(), requests.1.into())
        );
        assert_eq!(
            (
                get(&resources.limits, "cpu"),
                get(&resources.limits, "memory")
            ),
            (limits.0.into(), limits.1.into())
        );
        let env: Vec<_> = gateway
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|var| var.name.as_str())
            .collect();
        assert!(env.contains(&"OPENCLAW_STATE_DIR"));
        // One container: the runner prepares the state dir and approves pairing itself.
        assert!(pod.init_containers.is_none());
        assert_eq!(pod.containers.len(), 1);
        for container in &pod.containers {
            let security = container.security_context.as_ref().unwrap();
            assert_eq!(
                security.allow_privilege_escalation,
                Some(false),
                "{}",
                container.name
            );
            assert_eq!(
                security.read_only_root_filesystem,
                Some(true),
                "{}",
                container.name
            );
            assert_eq!(
                security.capabilities.as_ref().unwrap().drop.as_deref(),
                Some(&["ALL".to_owned()][..])
            );
        }
        assert_eq!(
            gateway.command.as_deref(),
            Some(&["/usr/local/bin/clawfleet", "instance", "run"].map(str::to_owned)[..])
        );
        let value_of = |name: &str| {
            gateway
                .env
                .as_ref()
                .unwrap()
                .iter()
                .find(|var| var.name == name)
                .and_then(|var| var.value.clone())
        };
        assert_eq!(
            value_of("CLAWFLEET_PLATFORM_DEVICE_ID").as_deref(),
            Some("golden-platform-device")
        );
        assert_eq!(
            value_of("CLAWFLEET_BASE_CONFIG").as_deref(),
            Some("/etc/clawfleet/openclaw.json")
        );
        assert!(
            gateway
                .volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .any(|mount| mount.mount_path == "/etc/clawfleet" && mount.read_only == Some(true))
        );
    }
}

#[test]
fn the_network_policy_admits_only_the_bridge_and_lets_out_only_dns_and_https() {
    let policy: NetworkPolicy =
        serde_json::from_value(gateway_network_policy(&golden_config()).body).unwrap();
    let spec = policy.spec.unwrap();
    // Every gateway, by the platform's labels: one policy, whatever the tenant count.
    assert_eq!(
        spec.pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap(),
        &[
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "clawfleet".to_owned()
            ),
            ("app.kubernetes.io/name".to_owned(), "openclaw".to_owned()),
        ]
        .into()
    );
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let from = ingress[0].from.as_ref().unwrap();
    assert_eq!(from.len(), 1);
    assert!(
        from[0]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()
            .contains_key("app.kubernetes.io/component")
    );
    let port_list =
        |ports: &Option<Vec<k8s_openapi::api::networking::v1::NetworkPolicyPort>>| -> Vec<String> {
            ports
                .as_ref()
                .unwrap()
                .iter()
                .map(|port| {
                    format!(
                        "{}/{}",
                        port.protocol.clone().unwrap(),
                        match port.port.as_ref().unwrap() {
                            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                                number,
                            ) => number.to_string(),
                            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                                name,
                            ) => name.clone(),
                        }
                    )
                })
                .collect()
        };
    assert_eq!(port_list(&ingress[0].ports), ["TCP/18789", "TCP/6080"]);
    let egress: Vec<String> = spec
        .egress
        .unwrap()
        .iter()
        .flat_map(|rule| port_list(&rule.ports))
        .collect();
    assert_eq!(egress, ["UDP/53", "TCP/53", "TCP/443"]);
}

#[test]
fn ingress_objects_exist_only_when_enabled_and_the_rest_is_deterministic() {
    let mut config = golden_config();
    config.ingress_domain_base = None;
    config.runtime_class = None;
    config.platform_device_id = None;
    let spec = golden_spec(Plan::Free);
    let objects = desired_objects(&config, &spec);
    let kinds: Vec<ObjectKind> = objects.iter().map(|object| object.kind).collect();
    assert_eq!(
        kinds,
        [
            ObjectKind::Secret,
            ObjectKind::ConfigMap,
            ObjectKind::PersistentVolumeClaim,
            ObjectKind::Service,
            ObjectKind::Deployment
        ]
    );
    let pod = &find(&objects, ObjectKind::Deployment)["spec"]["template"]["spec"];
    assert!(pod.get("runtimeClassName").is_none());
    assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
    assert_eq!(
        objects,
        desired_objects(&config, &spec),
        "same spec, same objects"
    );

    // Stopping changes the replica count and nothing else.
    let mut stopped = spec.clone();
    stopped.desired_state = DesiredState::Stopped;
    let stopped_objects = desired_objects(&config, &stopped);
    for (running, stopped) in objects.iter().zip(&stopped_objects) {
        if running.kind == ObjectKind::Deployment {
            assert_eq!(stopped.body["spec"]["replicas"], 0);
            let mut patched = unstamped(&stopped.body);
            patched["spec"]["replicas"] = 1.into();
            assert_eq!(patched, unstamped(&running.body));
            assert_ne!(stopped.digest, running.digest);
        } else {
            assert_eq!(running, stopped);
        }
    }
    // A new token rolls the gateway (its environment is read at start).
    let mut rotated = spec.clone();
    rotated.gateway_token = "another-token".into();
    let hash = |objects: &[DesiredObject]| {
        find(objects, ObjectKind::Deployment)["spec"]["template"]["metadata"]["annotations"]
            ["clawfleet.ai/config-hash"]
            .clone()
    };
    assert_ne!(hash(&objects), hash(&desired_objects(&config, &rotated)));
}

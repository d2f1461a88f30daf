//! The platform's Deployments against the code they run — probes, resources, replicas,
//! budgets, grace periods, accounts — and the hardening of every pod, the instances'
//! included, as the lifecycle writes them with the overlay's settings.

use std::{collections::BTreeSet, time::Duration};

use clawfleet_contracts::{
    auth::v1::auth_service_server, bridge::v1::gateway_bridge_service_server,
    channels::v1::channel_service_server, lifecycle::v1::instance_service_server,
};
use clawfleet_gateway_bridge::service::deadline::MAX_CALL_DEADLINE;
use clawfleet_kit::service_keys::Service;
use clawfleet_lifecycle::runtime::kubernetes::config::BRIDGE_POD_LABEL;
use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::{
    deployment_of, instance_objects, overlays,
    render::{name_of, namespace_of, pod_spec},
};

pub const PLATFORM_NAMESPACE: &str = "clawfleet";

/// What a hardened container breaks, if anything (the Pod Security `restricted` profile,
/// plus a read-only root filesystem).
pub fn hardening_violations(spec: &PodSpec) -> Vec<String> {
    let pod = spec.security_context.clone().unwrap_or_default();
    let mut violations = Vec::new();
    if spec.host_network == Some(true) || spec.host_pid == Some(true) || spec.host_ipc == Some(true)
    {
        violations.push("shares a host namespace".to_owned());
    }
    if spec
        .volumes
        .iter()
        .flatten()
        .any(|volume| volume.host_path.is_some())
    {
        violations.push("mounts a host path".to_owned());
    }
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    for container in containers {
        let context = container.security_context.clone().unwrap_or_default();
        let mut fail = |what: &str| violations.push(format!("{}: {what}", container.name));
        if context.run_as_non_root.or(pod.run_as_non_root) != Some(true) {
            fail("may run as root (runAsNonRoot)");
        }
        if context.run_as_user.or(pod.run_as_user) == Some(0) {
            fail("runs as uid 0");
        }
        if context.read_only_root_filesystem != Some(true) {
            fail("writable root filesystem");
        }
        if context.allow_privilege_escalation != Some(false) {
            fail("allows privilege escalation");
        }
        if context.privileged == Some(true) {
            fail("privileged");
        }
        let capabilities = context.capabilities.clone().unwrap_or_default();
        if !capabilities.drop.iter().flatten().any(|drop| drop == "ALL") {
            fail("keeps capabilities (drop ALL)");
        }
        if capabilities.add.is_some_and(|add| !add.is_empty()) {
            fail("adds capabilities");
        }
        let seccomp = context
            .seccomp_profile
            .or(pod.seccomp_profile.clone())
            .map(|profile| profile.type_);
        if seccomp.as_deref() != Some("RuntimeDefault") {
            fail("seccomp profile is not RuntimeDefault");
        }
    }
    violations
}

#[test]
fn every_container_is_hardened_and_so_are_the_instances() {
    for rendered in overlays() {
        for deployment in &rendered.deployments {
            let violations = hardening_violations(pod_spec(deployment));
            assert!(
                violations.is_empty(),
                "{}: {}: {violations:?}",
                rendered.overlay,
                name_of(&deployment.metadata)
            );
        }
        // The instances' namespace enforces the same profile: their pods must pass too.
        let (instance, _) = instance_objects(rendered);
        let violations = hardening_violations(pod_spec(&instance));
        assert!(
            violations.is_empty(),
            "{}: instance pod: {violations:?}",
            rendered.overlay
        );
    }
}

#[test]
fn namespaces_enforce_the_restricted_pod_security_profile() {
    for rendered in overlays() {
        let instances = crate::runtime_config(rendered).namespace;
        for wanted in [PLATFORM_NAMESPACE, instances.as_str()] {
            let namespace = rendered
                .namespaces
                .iter()
                .find(|namespace| name_of(&namespace.metadata) == wanted)
                .unwrap_or_else(|| panic!("{}: namespace {wanted} is created", rendered.overlay));
            let labels = namespace.metadata.labels.clone().unwrap_or_default();
            for mode in ["enforce", "audit", "warn"] {
                assert_eq!(
                    labels
                        .get(&format!("pod-security.kubernetes.io/{mode}"))
                        .map(String::as_str),
                    Some("restricted"),
                    "{}: {wanted} {mode}",
                    rendered.overlay
                );
            }
        }
    }
}

/// The gRPC service each probe asks about: NOT_SERVING as soon as the service drains.
fn health_service_name(service: Service) -> Option<&'static str> {
    match service {
        Service::Edge => None,
        Service::Auth => Some(auth_service_server::SERVICE_NAME),
        Service::Lifecycle => Some(instance_service_server::SERVICE_NAME),
        Service::Bridge => Some(gateway_bridge_service_server::SERVICE_NAME),
        Service::Channels => Some(channel_service_server::SERVICE_NAME),
    }
}

/// The longest call each service may have in flight when it is told to stop.
fn longest_call(service: Service) -> Duration {
    match service {
        // A passthrough gateway call, plus the edge's 5 s slack (routes/rpc.rs).
        Service::Edge => MAX_CALL_DEADLINE + Duration::from_secs(5),
        // Gateway calls, and the WhatsApp login waits the channels service makes through them.
        Service::Bridge | Service::Channels => MAX_CALL_DEADLINE,
        // ExecInInstance's largest timeout (service.rs).
        Service::Lifecycle => Duration::from_secs(300),
        // Callers give auth 15 s (the edge's deadline for its calls).
        Service::Auth => Duration::from_secs(15),
    }
}

#[test]
fn every_service_has_probes_resources_and_a_grace_period_that_fits_its_drain() {
    for rendered in overlays() {
        assert_eq!(
            rendered.deployments.len(),
            Service::ALL.len(),
            "{}",
            rendered.overlay
        );
        for service in Service::ALL {
            let deployment = deployment_of(rendered, service);
            let context = format!("{}: {}", rendered.overlay, service.subcommand());
            assert_eq!(
                namespace_of(&deployment.metadata),
                PLATFORM_NAMESPACE,
                "{context}"
            );
            let spec = pod_spec(deployment);
            let container = &spec.containers[0];
            assert_eq!(spec.containers.len(), 1, "{context}");
            let resources = container.resources.clone().unwrap_or_default();
            for (what, quantities) in [
                ("requests", resources.requests),
                ("limits", resources.limits),
            ] {
                let quantities = quantities.unwrap_or_default();
                assert!(
                    quantities.contains_key("cpu") && quantities.contains_key("memory"),
                    "{context}: cpu and memory {what}"
                );
            }
            let port = i32::from(service.default_port());
            let readiness = container
                .readiness_probe
                .clone()
                .expect("a readiness probe");
            let liveness = container.liveness_probe.clone().expect("a liveness probe");
            match health_service_name(service) {
                None => {
                    for probe in [&readiness, &liveness] {
                        let http = probe
                            .http_get
                            .as_ref()
                            .expect("the edge is probed over HTTP");
                        assert_eq!(http.path.as_deref(), Some("/health"), "{context}");
                    }
                }
                Some(name) => {
                    let grpc = readiness.grpc.expect("gRPC readiness");
                    assert_eq!(
                        (grpc.port, grpc.service.as_deref()),
                        (port, Some(name)),
                        "{context}"
                    );
                    let grpc = liveness.grpc.expect("gRPC liveness");
                    assert_eq!(grpc.port, port, "{context}");
                }
            }
            let pause = container
                .lifecycle
                .as_ref()
                .and_then(|hooks| hooks.pre_stop.as_ref())
                .and_then(|hook| hook.sleep.as_ref())
                .map_or(0, |sleep| sleep.seconds);
            let grace = spec
                .termination_grace_period_seconds
                .expect("a grace period");
            let needed = i64::try_from(longest_call(service).as_secs()).unwrap() + pause;
            assert!(
                grace >= needed && grace <= needed + 30,
                "{context}: grace {grace} s for a {needed} s drain"
            );
        }
    }
}

#[test]
fn replicas_budgets_and_spread_fit_each_overlay() {
    for rendered in overlays() {
        for service in Service::ALL {
            let deployment = deployment_of(rendered, service);
            let context = format!("{}: {}", rendered.overlay, service.subcommand());
            let spec = deployment.spec.as_ref().expect("a spec");
            let expected = match rendered.overlay {
                "dev" => 1,
                _ => 2,
            };
            assert_eq!(spec.replicas, Some(expected), "{context}");
            // Every service rolls: the lifecycle's replicas elect the one that writes.
            let strategy = spec
                .strategy
                .as_ref()
                .and_then(|strategy| strategy.type_.as_deref());
            assert_eq!(strategy, Some("RollingUpdate"), "{context}");
            let labels = spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            let selects = |selector: &Option<
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
            >| {
                let wanted = selector
                    .as_ref()
                    .and_then(|s| s.match_labels.clone())
                    .unwrap_or_default();
                !wanted.is_empty()
                    && wanted
                        .iter()
                        .all(|(key, value)| labels.get(key) == Some(value))
            };
            let budgets: Vec<_> = rendered
                .disruption_budgets
                .iter()
                .filter(|budget| selects(&budget.spec.as_ref().and_then(|s| s.selector.clone())))
                .collect();
            assert_eq!(budgets.len(), 1, "{context}: one PodDisruptionBudget");
            let budget = budgets[0].spec.clone().unwrap_or_default();
            // A budget of all replicas would block every node drain.
            assert!(budget.min_available.is_none(), "{context}");
            assert!(budget.max_unavailable.is_some(), "{context}");
            let spread = pod_spec(deployment)
                .topology_spread_constraints
                .clone()
                .unwrap_or_default();
            let keys: BTreeSet<&str> = spread
                .iter()
                .filter(|constraint| selects(&constraint.label_selector))
                .map(|constraint| constraint.topology_key.as_str())
                .collect();
            assert_eq!(
                keys,
                BTreeSet::from(["kubernetes.io/hostname", "topology.kubernetes.io/zone"]),
                "{context}"
            );
        }
    }
}

#[test]
fn the_bridge_pods_carry_the_label_the_instances_admit() {
    for rendered in overlays() {
        let labels = deployment_of(rendered, Service::Bridge)
            .spec
            .as_ref()
            .and_then(|spec| spec.template.metadata.as_ref())
            .and_then(|metadata| metadata.labels.clone())
            .unwrap_or_default();
        let (key, value) = BRIDGE_POD_LABEL;
        assert_eq!(
            labels.get(key).map(String::as_str),
            Some(value),
            "{}",
            rendered.overlay
        );
        let config = crate::runtime_config(rendered);
        assert_eq!(
            config.bridge_namespace.as_deref(),
            Some(PLATFORM_NAMESPACE),
            "{}",
            rendered.overlay
        );
    }
}

#[test]
fn each_pod_runs_as_its_own_account_and_only_the_lifecycle_gets_a_token() {
    for rendered in overlays() {
        for service in Service::ALL {
            let deployment = deployment_of(rendered, service);
            let spec = pod_spec(deployment);
            let account = spec
                .service_account_name
                .as_deref()
                .expect("a service account");
            assert_eq!(
                account,
                name_of(&deployment.metadata),
                "{}",
                rendered.overlay
            );
            assert!(
                rendered
                    .service_accounts
                    .iter()
                    .any(|candidate| name_of(&candidate.metadata) == account
                        && namespace_of(&candidate.metadata) == PLATFORM_NAMESPACE),
                "{}: ServiceAccount {account}",
                rendered.overlay
            );
            let wants_token = service == Service::Lifecycle;
            assert_eq!(
                spec.automount_service_account_token,
                Some(wants_token),
                "{}: {account}",
                rendered.overlay
            );
        }
    }
}

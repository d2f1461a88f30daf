//! Each service's settings against the code: every key it requires is set and every
//! other is one it reads (the kit's key table), its own loader accepts them, the ports and
//! addresses agree with the services' defaults, and every Service selects pods that exist.

use clawfleet_kit::{
    config::{EnvSource, keys},
    service_keys::{Service, runtime_keys},
};
use k8s_openapi::{api::core::v1::PodSpec, apimachinery::pkg::util::intstr::IntOrString};

use crate::{
    Rendered, container_env, deployment_of, overlays,
    render::{name_of, namespace_of, pod_spec},
    workloads::PLATFORM_NAMESPACE,
};

#[test]
fn settings_hold_every_required_key_and_only_keys_the_service_reads() {
    for rendered in overlays() {
        for service in Service::ALL {
            let deployment = deployment_of(rendered, service);
            let env = container_env(rendered, deployment);
            let context = format!("{}: {}", rendered.overlay, service.subcommand());
            let runtime_name = env.get(keys::CLAWFLEET_RUNTIME);
            let mut tables = vec![service.keys()];
            if service == Service::Lifecycle {
                assert_eq!(runtime_name.as_deref(), Some("kubernetes"), "{context}");
                tables.push(
                    runtime_keys(runtime_name.as_deref())
                        .expect("a runtime")
                        .keys,
                );
            }
            for table in &tables {
                for key in table.required {
                    assert!(env.get(key).is_some(), "{context}: requires {key}");
                }
            }
            for key in env.0.keys() {
                assert!(
                    tables.iter().any(|table| table.knows(key)),
                    "{context}: sets {key}, which it never reads"
                );
            }
            // In a pod the listener must face the pod network, not loopback.
            assert_eq!(
                env.get(keys::CLAWFLEET_LISTEN_HOST).as_deref(),
                Some("0.0.0.0"),
                "{context}"
            );
            load_with_the_services_own_loader(service, &env)
                .unwrap_or_else(|error| panic!("{context}: {error}"));
        }
        // Two auth replicas share one database; the root filesystem has no room for SQLite.
        let auth = container_env(rendered, deployment_of(rendered, Service::Auth));
        assert!(
            auth.get(keys::DATABASE_URL).is_some(),
            "{}: auth needs DATABASE_URL",
            rendered.overlay
        );
    }
}

/// The loader of each service's library, as `clawfleet <service>` calls it.
fn load_with_the_services_own_loader(service: Service, env: &dyn EnvSource) -> Result<(), String> {
    let result = match service {
        Service::Edge => clawfleet_edge::EdgeConfig::from_env(env).map(drop),
        Service::Auth => clawfleet_auth::server::AuthConfig::from_env(env).map(drop),
        Service::Lifecycle => {
            clawfleet_lifecycle::runtime::kubernetes::config::KubernetesConfig::from_env(env)
                .map(drop)
        }
        Service::Bridge => clawfleet_gateway_bridge::BridgeConfig::from_env(env).map(drop),
        Service::Channels => clawfleet_channels::ChannelsConfig::from_env(env).map(drop),
    };
    result.map_err(|error| error.to_string())
}

#[test]
fn ports_addresses_and_services_agree_with_the_code() {
    for rendered in overlays() {
        for service in Service::ALL {
            let deployment = deployment_of(rendered, service);
            let context = format!("{}: {}", rendered.overlay, service.subcommand());
            let container = &pod_spec(deployment).containers[0];
            let ports: Vec<i32> = container
                .ports
                .iter()
                .flatten()
                .map(|port| port.container_port)
                .collect();
            let expected: Vec<i32> = std::iter::once(service.default_port())
                .chain(service.default_metrics_port())
                .map(i32::from)
                .collect();
            assert_eq!(ports, expected, "{context}");
            let env = container_env(rendered, deployment);
            if let Some(configured) = env.get(service.port_key()) {
                assert_eq!(configured, service.default_port().to_string(), "{context}");
            }
            if let (Some(key), Some(port)) =
                (service.metrics_port_key(), service.default_metrics_port())
                && let Some(configured) = env.get(key)
            {
                assert_eq!(configured, port.to_string(), "{context}: {key}");
            }
            // Every address a service is given reaches the Service of the one it names.
            for callee in Service::ALL {
                let Some(key) = callee.address_key() else {
                    continue;
                };
                let Some(address) = env.get(key) else {
                    continue;
                };
                let (host, port) = address.rsplit_once(':').expect("host:port");
                let mut labels = host.split('.');
                let name = labels.next().unwrap_or_default();
                let namespace = labels.next().unwrap_or(PLATFORM_NAMESPACE);
                let target = rendered
                    .services
                    .iter()
                    .find(|candidate| {
                        name_of(&candidate.metadata) == name
                            && namespace_of(&candidate.metadata) == namespace
                    })
                    .unwrap_or_else(|| panic!("{context}: {key}={address} names no Service"));
                let selector = target
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.clone())
                    .unwrap_or_default();
                let callee_labels = deployment_of(rendered, callee)
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.template.metadata.as_ref())
                    .and_then(|metadata| metadata.labels.clone())
                    .unwrap_or_default();
                assert!(
                    selector
                        .iter()
                        .all(|(k, v)| callee_labels.get(k) == Some(v)),
                    "{context}: {key} reaches pods other than {}",
                    callee.subcommand()
                );
                let service_ports: Vec<String> = target
                    .spec
                    .iter()
                    .flat_map(|spec| spec.ports.iter().flatten())
                    .map(|port| port.port.to_string())
                    .collect();
                assert!(
                    service_ports.contains(&port.to_owned()),
                    "{context}: {key}={address}"
                );
            }
        }
        every_service_selects_pods_that_exist(rendered);
    }
}

fn every_service_selects_pods_that_exist(rendered: &Rendered) {
    for service in &rendered.services {
        let name = name_of(&service.metadata);
        let spec = service.spec.clone().unwrap_or_default();
        let selector = spec.selector.clone().unwrap_or_default();
        assert!(
            !selector.is_empty(),
            "{}: Service {name} selects nothing",
            rendered.overlay
        );
        let pods: Vec<&PodSpec> = rendered
            .deployments
            .iter()
            .filter(|deployment| {
                namespace_of(&deployment.metadata) == namespace_of(&service.metadata)
            })
            .filter(|deployment| {
                let labels = deployment
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref())
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                selector
                    .iter()
                    .all(|(key, value)| labels.get(key) == Some(value))
            })
            .map(pod_spec)
            .collect();
        assert!(
            !pods.is_empty(),
            "{}: Service {name} selects no pod",
            rendered.overlay
        );
        for port in spec.ports.iter().flatten() {
            let target = port.target_port.clone().expect("an explicit targetPort");
            for pod in &pods {
                let found = pod
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .any(|container_port| match &target {
                        IntOrString::Int(number) => container_port.container_port == *number,
                        IntOrString::String(port_name) => {
                            container_port.name.as_deref() == Some(port_name.as_str())
                        }
                    });
                assert!(
                    found,
                    "{}: Service {name} targets {target:?}, which its pods lack",
                    rendered.overlay
                );
            }
        }
    }
}

#[test]
fn every_service_runs_the_platform_image_and_gateways_approve_the_bridge() {
    for rendered in overlays() {
        let platform_image = pod_spec(deployment_of(rendered, Service::Lifecycle)).containers[0]
            .image
            .clone()
            .expect("an image");
        for service in Service::ALL {
            let image = pod_spec(deployment_of(rendered, service)).containers[0]
                .image
                .clone();
            assert_eq!(
                image.as_deref(),
                Some(platform_image.as_str()),
                "one image for every service"
            );
        }
        // The gateway's own entrypoint approves the bridge's pairing: it needs the
        // bridge's device id, not an image of its own.
        let config = crate::runtime_config(rendered);
        assert!(
            config.platform_device_id.is_some(),
            "{}: the bridge's device id reaches the gateways",
            rendered.overlay
        );
    }
}

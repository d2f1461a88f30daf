//! The NetworkPolicies allow the calls the code makes and nothing else. The cluster is
//! modelled as the platform's pods as rendered, one instance pod and its policy as the
//! lifecycle writes them with the overlay's settings, the cluster DNS, and one public and
//! one private address outside the cluster (a managed database, a private apiserver
//! endpoint and an internet API are each one of these). Every connection from every
//! source to every port something listens on is evaluated; the allowed set must equal
//! the call graph below.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use clawfleet_kit::service_keys::Service;
use clawfleet_lifecycle::runtime::kubernetes::config::NOVNC_PORT;
use k8s_openapi::api::apps::v1::Deployment;

use crate::{
    Rendered, deployment_of, instance_objects, overlays,
    policy_eval::{Cluster, Endpoint, Labels, Listener, Place},
    render::{name_of, namespace_of, pod_spec},
    runtime_config,
};

const INSTANCE: &str = "instance";
const DNS: &str = "cluster dns";
const PUBLIC: &str = "public address";
const PRIVATE: &str = "private address";
const CLIENT: &str = "internet client";
/// Prometheus, in the namespace `monitoring` the scrape policy admits.
const PROMETHEUS: &str = "prometheus";
const MONITORING_NAMESPACE: &str = "monitoring";

/// Who calls whom, from the architecture: `(caller, callee, protocol, port)`.
fn call_graph(gateway_port: u16) -> BTreeSet<(String, String, &'static str, u16)> {
    let service = |service: Service| service.subcommand();
    let port = |service: Service| service.default_port();
    let mut calls = vec![
        // The load balancer (and app and operator traffic through it).
        (CLIENT, service(Service::Edge), "TCP", port(Service::Edge)),
        // The edge serves every API by calling the services over gRPC.
        (
            service(Service::Edge),
            service(Service::Auth),
            "TCP",
            port(Service::Auth),
        ),
        (
            service(Service::Edge),
            service(Service::Lifecycle),
            "TCP",
            port(Service::Lifecycle),
        ),
        (
            service(Service::Edge),
            service(Service::Bridge),
            "TCP",
            port(Service::Bridge),
        ),
        (
            service(Service::Edge),
            service(Service::Channels),
            "TCP",
            port(Service::Channels),
        ),
        // Channels: gateway calls through the bridge, the pairing CLI through lifecycle exec.
        (
            service(Service::Channels),
            service(Service::Bridge),
            "TCP",
            port(Service::Bridge),
        ),
        (
            service(Service::Channels),
            service(Service::Lifecycle),
            "TCP",
            port(Service::Lifecycle),
        ),
        // The bridge resolves gateways with lifecycle and is their only client.
        (
            service(Service::Bridge),
            service(Service::Lifecycle),
            "TCP",
            port(Service::Lifecycle),
        ),
        (service(Service::Bridge), INSTANCE, "TCP", gateway_port),
        (service(Service::Bridge), INSTANCE, "TCP", NOVNC_PORT),
        // The gateways reach provider APIs, Telegram and WhatsApp on the internet (the
        // instances' own policy, written by the lifecycle).
        (INSTANCE, PUBLIC, "TCP", 443),
        // The auth service fetches Google's and Apple's signing keys.
        (service(Service::Auth), PUBLIC, "TCP", 443),
    ];
    // The apiserver's endpoint may be public or in a private range, on 443 or 6443.
    for address in [PUBLIC, PRIVATE] {
        for apiserver_port in [443, 6443] {
            calls.push((service(Service::Lifecycle), address, "TCP", apiserver_port));
        }
        // The auth service's and the lifecycle's databases, managed ones included.
        calls.push((service(Service::Auth), address, "TCP", 5432));
        calls.push((service(Service::Lifecycle), address, "TCP", 5432));
    }
    // Prometheus scrapes every service: the gRPC ones on their metrics ports, the edge on
    // its own port (open to everyone anyway).
    calls.push((
        PROMETHEUS,
        service(Service::Edge),
        "TCP",
        port(Service::Edge),
    ));
    for scraped in Service::ALL {
        if let Some(metrics_port) = scraped.default_metrics_port() {
            calls.push((PROMETHEUS, service(scraped), "TCP", metrics_port));
        }
    }
    let mut graph: BTreeSet<_> = calls
        .into_iter()
        .map(|(from, to, protocol, port)| (from.to_owned(), to.to_owned(), protocol, port))
        .collect();
    // Everyone resolves names; the resolver may be the cluster DNS or an address.
    let callers = Service::ALL
        .iter()
        .map(|service| service.subcommand())
        .chain([INSTANCE]);
    for caller in callers {
        for resolver in [DNS, PUBLIC, PRIVATE] {
            for protocol in ["UDP", "TCP"] {
                graph.insert((caller.to_owned(), resolver.to_owned(), protocol, 53));
            }
        }
    }
    graph
}

fn listeners_of(deployment: &Deployment) -> Vec<Listener> {
    pod_spec(deployment)
        .containers
        .iter()
        .flat_map(|container| container.ports.iter().flatten())
        .map(|port| Listener {
            protocol: if port.protocol.as_deref() == Some("UDP") {
                "UDP"
            } else {
                "TCP"
            },
            port: u16::try_from(port.container_port).expect("a port"),
            name: port.name.clone(),
        })
        .collect()
}

fn pod_endpoint(name: &str, deployment: &Deployment) -> Endpoint {
    let labels = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.metadata.as_ref())
        .and_then(|metadata| metadata.labels.clone())
        .unwrap_or_default();
    Endpoint {
        name: name.to_owned(),
        place: Place::Pod {
            namespace: namespace_of(&deployment.metadata).to_owned(),
            labels,
        },
        listens: listeners_of(deployment),
    }
}

/// The model of one overlay's cluster: endpoints and the policies in force.
fn model(rendered: &Rendered) -> (Vec<Endpoint>, Cluster, u16) {
    let (instance, instance_policy) = instance_objects(rendered);
    let mut endpoints: Vec<Endpoint> = Service::ALL
        .iter()
        .map(|service| pod_endpoint(service.subcommand(), deployment_of(rendered, *service)))
        .collect();
    endpoints.push(pod_endpoint(INSTANCE, &instance));
    let tcp_and_udp_53 = || {
        ["UDP", "TCP"]
            .map(|protocol| Listener {
                protocol,
                port: 53,
                name: None,
            })
            .to_vec()
    };
    endpoints.push(Endpoint {
        name: DNS.to_owned(),
        place: Place::Pod {
            namespace: "kube-system".to_owned(),
            labels: Labels::from([("k8s-app".to_owned(), "kube-dns".to_owned())]),
        },
        listens: tcp_and_udp_53(),
    });
    // Outside the cluster, something may listen on any port a policy or a pod names.
    let mut ports: BTreeSet<u16> = BTreeSet::from([53, 8080]);
    ports.extend(
        endpoints
            .iter()
            .flat_map(|endpoint| endpoint.listens.iter().map(|l| l.port)),
    );
    for policy in rendered.network_policies.iter().chain([&instance_policy]) {
        let spec = policy.spec.as_ref().expect("a spec");
        let rules = spec
            .ingress
            .iter()
            .flatten()
            .flat_map(|rule| rule.ports.iter().flatten());
        let rules = rules.chain(
            spec.egress
                .iter()
                .flatten()
                .flat_map(|rule| rule.ports.iter().flatten()),
        );
        for port in rules {
            if let Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(number)) =
                port.port
            {
                ports.insert(u16::try_from(number).expect("a port"));
            }
        }
    }
    let everywhere: Vec<Listener> = ports
        .iter()
        .flat_map(|port| {
            ["TCP", "UDP"].map(|protocol| Listener {
                protocol,
                port: *port,
                name: None,
            })
        })
        .collect();
    for (name, address) in [
        (PUBLIC, Ipv4Addr::new(203, 0, 113, 10)),
        (PRIVATE, Ipv4Addr::new(10, 20, 30, 40)),
    ] {
        endpoints.push(Endpoint {
            name: name.to_owned(),
            place: Place::Address(address),
            listens: everywhere.clone(),
        });
    }
    endpoints.push(Endpoint {
        name: PROMETHEUS.to_owned(),
        place: Place::Pod {
            namespace: MONITORING_NAMESPACE.to_owned(),
            labels: Labels::from([("app.kubernetes.io/name".to_owned(), "prometheus".to_owned())]),
        },
        listens: Vec::new(),
    });
    endpoints.push(Endpoint {
        name: CLIENT.to_owned(),
        place: Place::Address(Ipv4Addr::new(198, 51, 100, 7)),
        listens: Vec::new(),
    });

    let mut namespaces: BTreeMap<String, Labels> = rendered
        .namespaces
        .iter()
        .map(|namespace| {
            let name = name_of(&namespace.metadata).to_owned();
            let mut labels = namespace.metadata.labels.clone().unwrap_or_default();
            // Every namespace carries its name as a label (Kubernetes ≥ 1.22).
            labels.insert("kubernetes.io/metadata.name".to_owned(), name.clone());
            (name, labels)
        })
        .collect();
    namespaces.insert(
        MONITORING_NAMESPACE.to_owned(),
        Labels::from([(
            "kubernetes.io/metadata.name".to_owned(),
            MONITORING_NAMESPACE.to_owned(),
        )]),
    );
    namespaces.insert(
        "kube-system".to_owned(),
        Labels::from([(
            "kubernetes.io/metadata.name".to_owned(),
            "kube-system".to_owned(),
        )]),
    );
    let mut policies = rendered.network_policies.clone();
    policies.push(instance_policy);
    let gateway_port = runtime_config(rendered).gateway_port;
    (
        endpoints,
        Cluster {
            namespaces,
            policies,
        },
        gateway_port,
    )
}

/// A pod of the platform or an instance: what the platform's policies govern.
fn is_platform(endpoint: &Endpoint) -> bool {
    matches!(&endpoint.place, Place::Pod { namespace, .. } if namespace != "kube-system")
        && endpoint.name != PROMETHEUS
}

#[test]
fn the_network_policies_allow_exactly_the_call_graph() {
    for rendered in overlays() {
        let (endpoints, cluster, gateway_port) = model(rendered);
        let mut allowed = BTreeSet::new();
        // The servers outside the platform only answer; the cluster DNS is not ours to limit.
        let sources = endpoints
            .iter()
            .filter(|endpoint| ![PUBLIC, PRIVATE, DNS].contains(&endpoint.name.as_str()));
        for from in sources {
            for to in &endpoints {
                // Only the platform's policies are under test: not what the outside reaches
                // outside, nor what the cluster DNS (not ours) accepts from it.
                let from_outside = matches!(from.place, Place::Address(_));
                let not_ours = matches!(to.place, Place::Address(_)) || to.name == DNS;
                // Prometheus's own namespace is not ours to limit: only what it reaches of
                // the platform is under test.
                let unlimited_scraper = from.name == PROMETHEUS && !is_platform(to);
                if from.name == to.name || (from_outside && not_ours) || unlimited_scraper {
                    continue;
                }
                for listener in &to.listens {
                    if cluster.allows(from, to, listener) {
                        allowed.insert((
                            from.name.clone(),
                            to.name.clone(),
                            listener.protocol,
                            listener.port,
                        ));
                    }
                }
            }
        }
        let expected = call_graph(gateway_port);
        let extra: Vec<_> = allowed.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&allowed).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{}: allowed but not called: {extra:#?}\ncalled but not allowed: {missing:#?}",
            rendered.overlay
        );
    }
}

#[test]
fn every_platform_and_instance_pod_is_isolated_both_ways() {
    for rendered in overlays() {
        let (_, cluster, _) = model(rendered);
        for namespace in ["clawfleet", runtime_config(rendered).namespace.as_str()] {
            let denies_all = cluster.policies.iter().any(|policy| {
                let spec = policy.spec.as_ref().expect("a spec");
                policy.metadata.namespace.as_deref() == Some(namespace)
                    && spec.pod_selector.clone().unwrap_or_default() == Default::default()
                    && spec.ingress.is_none()
                    && spec.egress.is_none()
                    && spec.policy_types.as_deref()
                        == Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
            });
            assert!(
                denies_all,
                "{}: {namespace} denies by default",
                rendered.overlay
            );
        }
    }
}

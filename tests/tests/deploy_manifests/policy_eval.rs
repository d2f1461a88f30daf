//! NetworkPolicy semantics, as the Kubernetes API defines them, over a small model of a
//! cluster: pods (namespace, labels, the ports they listen on) and addresses outside the
//! cluster. A connection is allowed when the source's egress policies allow it (or none
//! selects the source for egress) and the destination's ingress policies allow it (or none
//! selects it for ingress). `ipBlock` peers match addresses outside the cluster only, as
//! the API leaves pod addresses in them to the implementation.

use std::{collections::BTreeMap, net::Ipv4Addr};

use k8s_openapi::{
    api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

pub type Labels = BTreeMap<String, String>;

/// A port something listens on: `(protocol, number, name)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    pub protocol: &'static str,
    pub port: u16,
    pub name: Option<String>,
}

/// One end of a connection.
#[derive(Debug, Clone)]
pub enum Place {
    Pod { namespace: String, labels: Labels },
    Address(Ipv4Addr),
}

/// A named endpoint of the model and what it listens on.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub place: Place,
    pub listens: Vec<Listener>,
}

pub struct Cluster {
    pub namespaces: BTreeMap<String, Labels>,
    pub policies: Vec<NetworkPolicy>,
}

pub fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let exact = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions = selector
        .match_expressions
        .iter()
        .flatten()
        .all(|expression| {
            let value = labels.get(&expression.key);
            let values = expression.values.clone().unwrap_or_default();
            match expression.operator.as_str() {
                "In" => value.is_some_and(|value| values.contains(value)),
                "NotIn" => value.is_none_or(|value| !values.contains(value)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("unknown selector operator {other}"),
            }
        });
    exact && expressions
}

fn cidr_contains(cidr: &str, address: Ipv4Addr) -> bool {
    let (base, bits) = cidr.split_once('/').expect("a CIDR");
    let base: Ipv4Addr = base.parse().expect("an IPv4 CIDR");
    let bits: u32 = bits.parse().expect("a prefix length");
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(base) & mask == u32::from(address) & mask
}

impl Cluster {
    fn peer_matches(
        &self,
        peer: &NetworkPolicyPeer,
        policy_namespace: &str,
        place: &Place,
    ) -> bool {
        match place {
            Place::Address(address) => peer.ip_block.as_ref().is_some_and(|block| {
                cidr_contains(&block.cidr, *address)
                    && !block
                        .except
                        .iter()
                        .flatten()
                        .any(|except| cidr_contains(except, *address))
            }),
            Place::Pod { namespace, labels } => {
                if peer.ip_block.is_some() {
                    return false;
                }
                let namespace_ok = match &peer.namespace_selector {
                    None => namespace == policy_namespace,
                    Some(selector) => selector_matches(
                        selector,
                        self.namespaces.get(namespace).unwrap_or(&Labels::new()),
                    ),
                };
                let pod_ok = peer
                    .pod_selector
                    .as_ref()
                    .is_none_or(|selector| selector_matches(selector, labels));
                namespace_ok && pod_ok
            }
        }
    }

    fn ports_match(ports: &Option<Vec<NetworkPolicyPort>>, listener: &Listener) -> bool {
        let Some(ports) = ports.as_ref().filter(|ports| !ports.is_empty()) else {
            return true;
        };
        ports.iter().any(|port| {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            protocol == listener.protocol
                && match &port.port {
                    None => true,
                    Some(IntOrString::Int(number)) => {
                        let end = port.end_port.unwrap_or(*number);
                        (*number..=end).contains(&i32::from(listener.port))
                    }
                    Some(IntOrString::String(name)) => listener.name.as_deref() == Some(name),
                }
        })
    }

    /// The policies that select `pod` for `direction` (`Ingress` or `Egress`).
    fn selecting<'a>(
        &'a self,
        place: &'a Place,
        direction: &'a str,
    ) -> impl Iterator<Item = &'a NetworkPolicy> {
        self.policies.iter().filter(move |policy| {
            let Place::Pod { namespace, labels } = place else {
                return false;
            };
            let spec = policy.spec.as_ref().expect("a policy spec");
            let types = spec.policy_types.clone().unwrap_or_else(|| {
                let mut types = vec!["Ingress".to_owned()];
                if spec.egress.is_some() {
                    types.push("Egress".to_owned());
                }
                types
            });
            policy.metadata.namespace.as_deref() == Some(namespace.as_str())
                && types.iter().any(|kind| kind == direction)
                && spec
                    .pod_selector
                    .as_ref()
                    .is_none_or(|selector| selector_matches(selector, labels))
        })
    }

    fn egress_allows(&self, from: &Place, to: &Place, listener: &Listener) -> bool {
        let mut selecting = self.selecting(from, "Egress").peekable();
        if selecting.peek().is_none() {
            return true;
        }
        selecting.any(|policy| {
            let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
            let spec = policy.spec.as_ref().expect("a spec");
            spec.egress.iter().flatten().any(|rule| {
                Self::ports_match(&rule.ports, listener)
                    && rule
                        .to
                        .as_ref()
                        .filter(|peers| !peers.is_empty())
                        .is_none_or(|peers| {
                            peers
                                .iter()
                                .any(|peer| self.peer_matches(peer, namespace, to))
                        })
            })
        })
    }

    fn ingress_allows(&self, from: &Place, to: &Place, listener: &Listener) -> bool {
        let mut selecting = self.selecting(to, "Ingress").peekable();
        if selecting.peek().is_none() {
            return true;
        }
        selecting.any(|policy| {
            let namespace = policy.metadata.namespace.as_deref().unwrap_or_default();
            let spec = policy.spec.as_ref().expect("a spec");
            spec.ingress.iter().flatten().any(|rule| {
                Self::ports_match(&rule.ports, listener)
                    && rule
                        .from
                        .as_ref()
                        .filter(|peers| !peers.is_empty())
                        .is_none_or(|peers| {
                            peers
                                .iter()
                                .any(|peer| self.peer_matches(peer, namespace, from))
                        })
            })
        })
    }

    /// Whether `from` may open a connection to `to` on `listener`.
    pub fn allows(&self, from: &Endpoint, to: &Endpoint, listener: &Listener) -> bool {
        self.egress_allows(&from.place, &to.place, listener)
            && self.ingress_allows(&from.place, &to.place, listener)
    }
}

#[test]
fn the_evaluator_follows_the_api_on_a_small_example() {
    let policy: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "a"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                              "ports": [{"port": "sql"}]}]}
    }))
    .unwrap();
    let cluster = Cluster {
        namespaces: BTreeMap::new(),
        policies: vec![policy],
    };
    let pod = |namespace: &str, app: &str| Endpoint {
        name: app.to_owned(),
        place: Place::Pod {
            namespace: namespace.to_owned(),
            labels: Labels::from([("app".to_owned(), app.to_owned())]),
        },
        listens: Vec::new(),
    };
    let sql = Listener {
        protocol: "TCP",
        port: 5432,
        name: Some("sql".to_owned()),
    };
    let other = Listener {
        protocol: "TCP",
        port: 8080,
        name: None,
    };
    assert!(cluster.allows(&pod("a", "web"), &pod("a", "db"), &sql));
    assert!(!cluster.allows(&pod("a", "web"), &pod("a", "db"), &other));
    assert!(
        !cluster.allows(&pod("b", "web"), &pod("a", "db"), &sql),
        "another namespace"
    );
    assert!(
        cluster.allows(&pod("a", "db"), &pod("a", "web"), &other),
        "web is not isolated"
    );
    assert!(cidr_contains("10.0.0.0/8", "10.20.30.40".parse().unwrap()));
    assert!(!cidr_contains("10.0.0.0/8", "11.0.0.1".parse().unwrap()));
    assert!(cidr_contains("0.0.0.0/0", "203.0.113.7".parse().unwrap()));
}

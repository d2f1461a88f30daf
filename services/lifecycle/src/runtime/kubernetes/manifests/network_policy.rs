//! Default-deny networking for the gateways (docs/product/instances.md#network-policy): only the platform's bridge pods
//! reach the gateway and NoVNC ports; the gateway reaches DNS and TCP 443 outside the
//! cluster's private ranges (provider APIs, Telegram, WhatsApp) and nothing else.
//!
//! One policy selects every gateway pod by label: a policy per tenant grows the CNI's
//! rule set with the tenant count (docs/capacity.md#objects-per-tenant).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::networking::v1::{
        IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
        NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::runtime::kubernetes::{
    config::{BRIDGE_POD_LABEL, KubernetesConfig, NOVNC_PORT},
    names,
};

/// Private and link-local ranges (the cluster, the metadata server) are not "outside".
const NOT_EGRESS: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
];

/// The namespace name label every namespace carries (Kubernetes ≥ 1.22).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn port(protocol: &str, number: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(i32::from(number))),
        ..NetworkPolicyPort::default()
    }
}

fn match_labels(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..LabelSelector::default()
    }
}

/// The shared policy's name.
pub const NAME: &str = "openclaw-gateways";

pub fn network_policy(config: &KubernetesConfig) -> NetworkPolicy {
    let bridge = NetworkPolicyPeer {
        pod_selector: Some(match_labels(&[BRIDGE_POD_LABEL])),
        namespace_selector: config
            .bridge_namespace
            .as_deref()
            .map(|namespace| match_labels(&[(NAMESPACE_NAME_LABEL, namespace)])),
        ..NetworkPolicyPeer::default()
    };
    let outside = NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: "0.0.0.0/0".to_owned(),
            except: Some(NOT_EGRESS.iter().map(|range| (*range).to_owned()).collect()),
        }),
        ..NetworkPolicyPeer::default()
    };
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(NAME.to_owned()),
            namespace: Some(config.namespace.clone()),
            labels: Some(
                [
                    (names::LABEL_NAME, names::APP_NAME),
                    (names::LABEL_MANAGED_BY, names::MANAGER_NAME),
                ]
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            // Every gateway pod: the platform's labels, whatever the instance.
            pod_selector: Some(match_labels(&[
                (names::LABEL_NAME, names::APP_NAME),
                (names::LABEL_MANAGED_BY, names::MANAGER_NAME),
            ])),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![bridge]),
                ports: Some(vec![
                    port("TCP", config.gateway_port),
                    port("TCP", NOVNC_PORT),
                ]),
            }]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: None,
                    ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
                },
                NetworkPolicyEgressRule {
                    to: Some(vec![outside]),
                    ports: Some(vec![port("TCP", 443)]),
                },
            ]),
        }),
    }
}

//! The Service the bridge reaches the gateway (and NoVNC) through: headless, so its
//! name resolves to the pod's IP and the tenant takes no cluster IP and no kube-proxy
//! rules (docs/capacity.md#objects-per-tenant). With ingress enabled it keeps a cluster
//! IP, which the load balancer's network endpoint group needs.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::metadata;
use crate::{
    model::InstanceSpec,
    runtime::kubernetes::{
        config::{KubernetesConfig, NOVNC_PORT},
        kinds::ObjectKind,
        names,
    },
};

/// Asks GKE for network endpoint groups, so an Ingress can route to a ClusterIP Service.
const NEG_ANNOTATION: (&str, &str) = ("cloud.google.com/neg", r#"{"ingress":true}"#);

/// `spec.clusterIP` of a headless Service.
pub const HEADLESS: &str = "None";

pub fn service(config: &KubernetesConfig, spec: &InstanceSpec) -> Service {
    let mut metadata = metadata(config, ObjectKind::Service, &spec.id);
    if config.ingress_domain_base.is_some() {
        metadata.annotations = Some(BTreeMap::from([(
            NEG_ANNOTATION.0.to_owned(),
            NEG_ANNOTATION.1.to_owned(),
        )]));
    }
    let port = |name: &str, number: u16| ServicePort {
        name: Some(name.to_owned()),
        protocol: Some("TCP".to_owned()),
        port: i32::from(number),
        target_port: Some(IntOrString::Int(i32::from(number))),
        ..ServicePort::default()
    };
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            cluster_ip: config
                .ingress_domain_base
                .is_none()
                .then(|| HEADLESS.to_owned()),
            selector: Some(names::selector_labels(&spec.id)),
            ports: Some(vec![
                port("gateway", config.gateway_port),
                port("novnc", NOVNC_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

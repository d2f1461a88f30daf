//! Public access when `OPENCLAW_INGRESS_ENABLED=true`: an Ingress for
//! `<id>.<OPENCLAW_DOMAIN_BASE>` with a GKE ManagedCertificate (not a k8s-openapi
//! type: written as plain JSON and applied as a dynamic object).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use serde_json::{Value, json};

use super::metadata;
use crate::{
    model::InstanceSpec,
    runtime::kubernetes::{config::KubernetesConfig, kinds::ObjectKind, names},
};

pub fn host(spec: &InstanceSpec, domain_base: &str) -> String {
    format!("{}.{domain_base}", spec.id)
}

pub fn ingress(config: &KubernetesConfig, spec: &InstanceSpec, domain_base: &str) -> Ingress {
    let mut metadata = metadata(config, ObjectKind::Ingress, &spec.id);
    metadata.annotations = Some(BTreeMap::from([
        ("kubernetes.io/ingress.class".to_owned(), "gce".to_owned()),
        (
            "networking.gke.io/managed-certificates".to_owned(),
            names::object_name(&spec.id),
        ),
    ]));
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            rules: Some(vec![IngressRule {
                host: Some(host(spec, domain_base)),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: names::object_name(&spec.id),
                                port: Some(ServiceBackendPort {
                                    number: Some(i32::from(config.gateway_port)),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}

pub fn managed_certificate(
    config: &KubernetesConfig,
    spec: &InstanceSpec,
    domain_base: &str,
) -> Value {
    let kind = ObjectKind::ManagedCertificate;
    json!({
        "apiVersion": kind.api_version(),
        "kind": kind.kind_name(),
        "metadata": metadata(config, kind, &spec.id),
        "spec": {"domains": [host(spec, domain_base)]},
    })
}

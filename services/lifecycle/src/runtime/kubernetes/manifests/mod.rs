//! The objects of one instance (docs/product/instances.md#kubernetes-objects), built from k8s-openapi types and turned into
//! the JSON bodies of server-side apply. Pure functions of the config and the spec: the
//! same spec always yields byte-identical objects, so re-applying changes nothing.

mod config_map;
mod deployment;
mod ingress;
mod network_policy;
mod pvc;
mod secret;
mod service;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

use super::{config::KubernetesConfig, kinds::ObjectKind, names};
use crate::{instance_id::InstanceId, model::InstanceSpec};

pub use self::{
    config_map::{CONFIG_FILE, base_gateway_config},
    deployment::{BASE_CONFIG_DIR, GATEWAY_CONTAINER, TERMINATION_GRACE_SECONDS},
};

/// One object to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub kind: ObjectKind,
    pub name: String,
    /// The full apply body (`apiVersion`, `kind`, `metadata`, …).
    pub body: Value,
}

/// Every object of the instance, dependencies first and the Deployment last (its pod
/// must never start before its NetworkPolicy, Secret, ConfigMap and PVC exist).
pub fn desired_objects(config: &KubernetesConfig, spec: &InstanceSpec) -> Vec<DesiredObject> {
    let id = &spec.id;
    let secret = secret::secret(config, spec);
    let config_map = config_map::config_map(config, spec);
    let mut objects = vec![
        DesiredObject::new(ObjectKind::Secret, id, &secret),
        DesiredObject::new(ObjectKind::ConfigMap, id, &config_map),
        DesiredObject::new(
            ObjectKind::PersistentVolumeClaim,
            id,
            &pvc::pvc(config, spec),
        ),
        DesiredObject::new(ObjectKind::Service, id, &service::service(config, spec)),
        DesiredObject::new(
            ObjectKind::NetworkPolicy,
            id,
            &network_policy::network_policy(config, spec),
        ),
    ];
    if let Some(domain_base) = &config.ingress_domain_base {
        objects.push(DesiredObject::new(
            ObjectKind::Ingress,
            id,
            &ingress::ingress(config, spec, domain_base),
        ));
        objects.push(DesiredObject {
            kind: ObjectKind::ManagedCertificate,
            name: ObjectKind::ManagedCertificate.object_name(id),
            body: ingress::managed_certificate(config, spec, domain_base),
        });
    }
    let rollout_hash = deployment::rollout_hash(&[&objects[0].body, &objects[1].body]);
    objects.push(DesiredObject::new(
        ObjectKind::Deployment,
        id,
        &deployment::deployment(config, spec, &rollout_hash),
    ));
    objects
}

impl DesiredObject {
    fn new(kind: ObjectKind, id: &InstanceId, object: &impl Serialize) -> Self {
        Self {
            kind,
            name: kind.object_name(id),
            body: serde_json::to_value(object).expect("k8s-openapi objects serialise"),
        }
    }
}

/// Metadata of an instance's object of `kind`.
fn metadata(config: &KubernetesConfig, kind: ObjectKind, id: &InstanceId) -> ObjectMeta {
    ObjectMeta {
        name: Some(kind.object_name(id)),
        namespace: Some(config.namespace.clone()),
        labels: Some(names::labels(id)),
        ..ObjectMeta::default()
    }
}

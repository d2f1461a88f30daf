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
    service::HEADLESS,
};

/// One object to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub kind: ObjectKind,
    pub name: String,
    /// The full apply body (`apiVersion`, `kind`, `metadata`, …), stamped with
    /// [`APPLIED_DIGEST_ANNOTATION`].
    pub body: Value,
    /// A digest of the body before the stamp: what the cache compares with instead of
    /// keeping live objects whole (docs/capacity.md#what-the-lifecycle-keeps).
    pub digest: Digest,
}

/// A digest of an applied body (64 bits of its SHA-256).
pub type Digest = u64;

/// The annotation every applied object carries: the digest of what was applied, so a
/// restarted runtime that lists an object before it knows the instance's desired state
/// can tell that the object is what it would apply, without keeping the object.
pub const APPLIED_DIGEST_ANNOTATION: &str = "clawfleet.io/applied-digest";

/// The digest of `body` (its canonical JSON: serde_json's maps are ordered).
pub fn digest_of(body: &Value) -> Digest {
    use sha2::{Digest as _, Sha256};
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let hash = Sha256::digest(&bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

/// The digest an applied object was stamped with, if any.
pub fn stamped_digest(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<Digest> {
    u64::from_str_radix(annotations?.get(APPLIED_DIGEST_ANNOTATION)?, 16).ok()
}

/// The name of the one NetworkPolicy of every gateway.
pub const SHARED_NETWORK_POLICY: &str = network_policy::NAME;

/// The one NetworkPolicy of every gateway (docs/product/instances.md#network-policy),
/// applied once, not per instance: policies must not grow with the tenant count.
pub fn gateway_network_policy(config: &KubernetesConfig) -> DesiredObject {
    DesiredObject::stamped(
        ObjectKind::NetworkPolicy,
        network_policy::NAME.to_owned(),
        serde_json::to_value(network_policy::network_policy(config))
            .expect("k8s-openapi objects serialise"),
    )
}

/// Every object of the instance, dependencies first and the Deployment last (its pod
/// must never start before its Secret, ConfigMap and PVC exist; the shared
/// NetworkPolicy is applied before any instance).
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
    ];
    if let Some(domain_base) = &config.ingress_domain_base {
        objects.push(DesiredObject::new(
            ObjectKind::Ingress,
            id,
            &ingress::ingress(config, spec, domain_base),
        ));
        objects.push(DesiredObject::stamped(
            ObjectKind::ManagedCertificate,
            ObjectKind::ManagedCertificate.object_name(id),
            ingress::managed_certificate(config, spec, domain_base),
        ));
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
        Self::stamped(
            kind,
            kind.object_name(id),
            serde_json::to_value(object).expect("k8s-openapi objects serialise"),
        )
    }

    /// The object with its digest, stamped into its annotations.
    fn stamped(kind: ObjectKind, name: String, mut body: Value) -> Self {
        let digest = digest_of(&body);
        if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = metadata
                .entry("annotations")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(
                    APPLIED_DIGEST_ANNOTATION.to_owned(),
                    Value::String(format!("{digest:016x}")),
                );
            }
        }
        Self {
            kind,
            name,
            body,
            digest,
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

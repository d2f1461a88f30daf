//! Ingress objects left from a time when ingress was enabled.
//!
//! With `OPENCLAW_INGRESS_ENABLED=false` the runtime neither builds nor watches Ingresses
//! and ManagedCertificates (the latter's kind does not even exist outside GKE), yet an
//! instance may still have them from before the setting changed, publishing its gateway
//! at a host nobody means to serve. At start the runtime lists them once into the cache;
//! the next apply (or reconcile, or drift repair) of each instance then deletes them, as
//! does deleting the instance. Only objects our field manager applied, under the
//! instance's own name and labels, are touched; a look-alike someone else made stays.

use kube::{ResourceExt, api::DynamicObject};

use super::{
    api::ClusterApi,
    cache::InstanceObjects,
    failure::ApiFailure,
    kinds::ObjectKind,
    manifests::DesiredObject,
    names::{self, FIELD_MANAGER},
    state::RuntimeState,
};
use crate::instance_id::InstanceId;

/// Records every leftover Ingress and ManagedCertificate in the cache.
pub async fn find(api: &ClusterApi, state: &RuntimeState) -> Result<usize, ApiFailure> {
    let mut found = 0;
    for kind in ObjectKind::OWNED
        .into_iter()
        .filter(|kind| kind.is_ingress())
    {
        for object in api.list_managed(kind).await? {
            let Some(id) = ours(kind, &object) else {
                continue;
            };
            let name = object.name_any();
            match serde_json::to_value(&object) {
                Ok(value) => {
                    tracing::info!(instance = %id, kind = kind.kind_name(), "ingress is disabled; removing a leftover at the next apply");
                    state.cache.upsert(kind, &id, &name, value);
                    found += 1;
                }
                Err(error) => tracing::warn!(%name, %error, "cannot read a leftover object"),
            }
        }
    }
    Ok(found)
}

/// The instance whose object this is, if our field manager applied it under its name.
fn ours(kind: ObjectKind, object: &DynamicObject) -> Option<InstanceId> {
    let id = names::instance_of(object.metadata.labels.as_ref())?;
    let applied_by_us = object.managed_fields().iter().any(|entry| {
        entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry.operation.as_deref() == Some("Apply")
    });
    (applied_by_us && object.name_any() == kind.object_name(&id)).then_some(id)
}

/// Deletes the instance's ingress objects that `desired` no longer includes, each only if
/// it is still the object that was found, and forgets them (no watcher will).
pub async fn remove(
    api: &ClusterApi,
    state: &RuntimeState,
    id: &InstanceId,
    live: &InstanceObjects,
    desired: &[DesiredObject],
) -> Result<usize, ApiFailure> {
    let mut removed = 0;
    for (kind, object) in &live.owned {
        if !kind.is_ingress() || desired.iter().any(|wanted| wanted.kind == *kind) {
            continue;
        }
        let name = kind.object_name(id);
        let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
        if api.delete_exact(*kind, &name, uid).await? {
            tracing::info!(instance = %id, kind = kind.kind_name(), "leftover removed");
            removed += 1;
        }
        state.cache.remove(*kind, id, &name);
    }
    Ok(removed)
}

//! Objects an instance no longer gets, left from earlier versions or settings: its own
//! NetworkPolicy (now one policy covers every gateway, docs/capacity.md#objects-per-tenant),
//! and Ingress objects from a time when ingress was enabled.
//!
//! The runtime does not watch these kinds. At start it lists them once into the cache; the
//! next apply (or reconcile, or drift repair) of each instance then deletes them, as does
//! deleting the instance. Only objects our field manager applied, under the instance's own
//! name and labels, are touched; a look-alike someone else made stays. The same list finds
//! the shared NetworkPolicy, so a restart does not write it again.

use kube::{ResourceExt, api::DynamicObject};

use super::{
    api::ClusterApi,
    cache::InstanceObjects,
    failure::ApiFailure,
    kinds::ObjectKind,
    lean,
    manifests::{DesiredObject, stamped_digest},
    names::{self, FIELD_MANAGER},
    state::RuntimeState,
};
use crate::instance_id::InstanceId;

/// The kinds of leftovers: retired ones, and ingress ones when ingress is disabled.
pub fn kinds(ingress_enabled: bool) -> impl Iterator<Item = ObjectKind> {
    ObjectKind::OWNED
        .into_iter()
        .filter(move |kind| kind.is_retired() || (kind.is_ingress() && !ingress_enabled))
}

/// Records every leftover in the cache, and the shared NetworkPolicy's stamp.
pub async fn find(api: &ClusterApi, state: &RuntimeState) -> Result<usize, ApiFailure> {
    let mut found = 0;
    let ingress_enabled = state.config.ingress_domain_base.is_some();
    for kind in kinds(ingress_enabled) {
        for object in api.list_managed(kind).await? {
            if kind == ObjectKind::NetworkPolicy && object.name_any() == network_policy_name() {
                state.shared_policy_found(stamped_digest(object.metadata.annotations.as_ref()));
                continue;
            }
            let Some(id) = ours(kind, &object) else {
                continue;
            };
            let name = object.name_any();
            match lean::keep(kind, object, lean::Check::Stamp) {
                Ok(cached) => {
                    tracing::info!(instance = %id, kind = kind.kind_name(), "removing a leftover at the next apply");
                    state.cache.upsert(kind, &id, &name, cached);
                    found += 1;
                }
                Err(error) => tracing::warn!(%name, %error, "cannot read a leftover object"),
            }
        }
    }
    Ok(found)
}

fn network_policy_name() -> &'static str {
    super::manifests::SHARED_NETWORK_POLICY
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
        if !(kind.is_ingress() || kind.is_retired())
            || desired.iter().any(|wanted| wanted.kind == *kind)
        {
            continue;
        }
        let name = kind.object_name(id);
        if api.delete_exact(*kind, &name, &object.uid).await? {
            tracing::info!(instance = %id, kind = kind.kind_name(), "leftover removed");
            removed += 1;
        }
        state.cache.remove(*kind, id, &name);
    }
    Ok(removed)
}

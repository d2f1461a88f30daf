//! Writing an instance to the cluster: server-side apply of the objects the cache
//! shows missing or different (none when nothing changed, so a re-apply is free and
//! leaves every resourceVersion alone), dependencies in parallel and then the
//! Deployment; and deleting them again.

use futures_util::future::try_join_all;

use super::{
    api::ClusterApi, cache::InstanceObjects, failure::ApiFailure, kinds::ObjectKind,
    manifests::DesiredObject,
};
use crate::{instance_id::InstanceId, runtime::DataRetention};

/// Applies what differs; returns how many objects were written.
pub async fn apply_objects(
    api: &ClusterApi,
    live: &InstanceObjects,
    objects: &[DesiredObject],
) -> Result<usize, ApiFailure> {
    let stale: Vec<&DesiredObject> = objects
        .iter()
        .filter(|object| !live.matches(object))
        .collect();
    let (workload, dependencies): (Vec<&DesiredObject>, Vec<&DesiredObject>) = stale
        .iter()
        .partition(|object| object.kind == ObjectKind::Deployment);
    // A Service from before Services were headless: its cluster IP is immutable, so it
    // is replaced (the old one only if it is still the one the cache saw).
    if let Some(service) = dependencies
        .iter()
        .find(|object| object.kind == ObjectKind::Service && is_headless(object))
        && let Some(live) = live.owned.get(&ObjectKind::Service)
        && live.has_cluster_ip
    {
        api.delete_exact(ObjectKind::Service, &service.name, &live.uid)
            .await?;
    }
    // The pod must not start before its Secret, ConfigMap and PVC exist.
    try_join_all(dependencies.iter().map(|object| api.apply(object))).await?;
    try_join_all(workload.iter().map(|object| api.apply(object))).await?;
    Ok(stale.len())
}

fn is_headless(object: &DesiredObject) -> bool {
    object.body["spec"]["clusterIP"] == super::manifests::HEADLESS
}

/// Deletes every object of the instance (the PVC only with `Purge`), in parallel.
/// Ingress kinds are deleted when ingress is enabled or the cache shows them.
pub async fn delete_objects(
    api: &ClusterApi,
    id: &InstanceId,
    live: &InstanceObjects,
    ingress_enabled: bool,
    retention: DataRetention,
) -> Result<(), ApiFailure> {
    let kinds = ObjectKind::OWNED.into_iter().filter(|kind| match kind {
        ObjectKind::PersistentVolumeClaim => retention == DataRetention::Purge,
        kind if kind.is_ingress() => ingress_enabled || live.owned.contains_key(kind),
        kind if kind.is_retired() => live.owned.contains_key(kind),
        _ => true,
    });
    try_join_all(kinds.map(|kind| {
        let name = kind.object_name(id);
        async move { api.delete(kind, &name).await }
    }))
    .await?;
    Ok(())
}

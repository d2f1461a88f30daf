//! What the cache keeps of an object, decided as its event arrives
//! (docs/capacity.md#what-the-lifecycle-keeps): a real apiserver sends a Deployment with
//! 10–15 KB of managedFields and a pod with its full spec and status, and kept whole
//! that was ~350 KB per instance. The runtime reads only:
//!
//! - of its own objects: whether each says what it would apply (a digest), and its uid;
//! - of the Deployment: replicas, whether it is being deleted, a `ReplicaFailure`;
//! - of pods: name, creation and deletion times, phase, conditions, and the gateway's
//!   and init containers' states;
//! - of the Secret: a digest of the gateway token (never the data).

use base64::Engine;
use clawfleet_kit::config::keys;
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStatus},
        core::v1::{ContainerStatus, Pod, PodStatus},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::api::DynamicObject;
use sha2::{Digest as _, Sha256};

use super::{
    cache::{Cached, LiveObject},
    kinds::ObjectKind,
    manifests::{DesiredObject, Digest, GATEWAY_CONTAINER, stamped_digest},
    subset::is_subset,
};

/// Drops what no reader of the cache needs before anything else sees the object (the
/// watch stream's `modify`): managedFields are most of a live object's bytes.
pub fn strip_managed_fields(object: &mut DynamicObject) {
    object.metadata.managed_fields = None;
}

/// How an arriving object is compared with what the instance should be.
pub enum Check<'a> {
    /// Field by field with the desired object.
    Against(&'a DesiredObject),
    /// Already found to say this digest, and only its status changed since.
    Unchanged(Digest),
    /// The runtime does not know what the instance should be yet: trust the stamp.
    Stamp,
}

/// Whether `object` is `previous` with only its status changed (same uid, generation and
/// stamp), so what was found of it still holds.
pub fn only_status_changed(object: &DynamicObject, previous: &LiveObject) -> bool {
    object.metadata.generation.is_some()
        && object.metadata.generation == previous.generation
        && object.metadata.uid.as_deref() == Some(previous.uid.as_str())
        && stamped_digest(object.metadata.annotations.as_ref()) == previous.stamped
}

/// What the cache keeps of `object`; an error for an object that cannot be read.
pub fn keep(
    kind: ObjectKind,
    object: DynamicObject,
    check: Check<'_>,
) -> Result<Cached, serde_json::Error> {
    if kind == ObjectKind::Pod {
        let pod: Pod = serde_json::from_value(serde_json::to_value(&object)?)?;
        return Ok(Cached::Pod(lean_pod(pod).into()));
    }
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let stamped = stamped_digest(object.metadata.annotations.as_ref());
    let has_cluster_ip = kind == ObjectKind::Service
        && object.data["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty() && ip != "None");
    let gateway_token_digest = (kind == ObjectKind::Secret)
        .then(|| token_digest(&object))
        .flatten();
    let generation = object.metadata.generation;
    // The whole object as JSON lives only for this check and the typed read below.
    let live = (matches!(check, Check::Against(_)) || kind == ObjectKind::Deployment)
        .then(|| serde_json::to_value(&object))
        .transpose()?;
    drop(object);
    let in_sync_with = match (check, &live) {
        (Check::Against(desired), Some(live)) => {
            is_subset(&desired.body, live).then_some(desired.digest)
        }
        (Check::Unchanged(digest), _) => Some(digest),
        _ => stamped,
    };
    let deployment = match (kind, live) {
        (ObjectKind::Deployment, Some(live)) => {
            Some(lean_deployment(serde_json::from_value(live)?).into())
        }
        _ => None,
    };
    Ok(Cached::Owned {
        live: LiveObject {
            uid,
            in_sync_with,
            generation,
            stamped,
            has_cluster_ip,
        },
        deployment,
        gateway_token_digest,
    })
}

/// SHA-256 of a gateway token (what tombstones and the endpoint compare).
pub fn token_digest_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn token_digest(secret: &DynamicObject) -> Option<[u8; 32]> {
    let encoded = secret.data["data"][keys::OPENCLAW_GATEWAY_TOKEN].as_str()?;
    let token = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    Some(Sha256::digest(&token).into())
}

fn lean_metadata(metadata: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: metadata.name,
        creation_timestamp: metadata.creation_timestamp,
        deletion_timestamp: metadata.deletion_timestamp,
        ..ObjectMeta::default()
    }
}

fn lean_deployment(deployment: Deployment) -> Deployment {
    Deployment {
        metadata: lean_metadata(deployment.metadata),
        spec: deployment.spec.map(|spec| DeploymentSpec {
            replicas: spec.replicas,
            ..DeploymentSpec::default()
        }),
        status: deployment.status.map(|status| DeploymentStatus {
            conditions: status.conditions.map(|conditions| {
                conditions
                    .into_iter()
                    .filter(|condition| condition.type_ == "ReplicaFailure")
                    .collect()
            }),
            ..DeploymentStatus::default()
        }),
    }
}

fn lean_container(status: ContainerStatus) -> ContainerStatus {
    ContainerStatus {
        name: status.name,
        state: status.state,
        last_state: status.last_state,
        ready: status.ready,
        started: status.started,
        restart_count: status.restart_count,
        ..ContainerStatus::default()
    }
}

fn lean_pod(pod: Pod) -> Pod {
    Pod {
        metadata: lean_metadata(pod.metadata),
        spec: None,
        status: pod.status.map(|status| PodStatus {
            phase: status.phase,
            reason: status.reason,
            message: status.message,
            conditions: status.conditions,
            container_statuses: status.container_statuses.map(|statuses| {
                statuses
                    .into_iter()
                    .filter(|status| status.name == GATEWAY_CONTAINER)
                    .map(lean_container)
                    .collect()
            }),
            init_container_statuses: status
                .init_container_statuses
                .map(|statuses| statuses.into_iter().map(lean_container).collect()),
            ..PodStatus::default()
        }),
    }
}

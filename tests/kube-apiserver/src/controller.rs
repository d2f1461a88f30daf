//! A minimal kube-controller-manager: Deployments get a ReplicaSet per pod template
//! (`<deployment>-<pod-template-hash>`), ReplicaSets get `spec.replicas` pods
//! (`<replicaset>-<random5>`), `Recreate` removes old pods before new ones start, and both
//! report `status` (replicas, readyReplicas, availableReplicas, updatedReplicas,
//! observedGeneration, conditions). Writes go through the normal update path as
//! `kube-controller-manager`, and only when something changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::crud::{create_object, update_object};
use crate::fields::Scope;

use crate::gc::{self, DeleteOptions, Propagation};
use crate::resources::ResourceType;
use crate::state::ServerState;
use crate::store::meta_str;
use crate::util::{random_suffix, template_hash};

const MANAGER: &str = "kube-controller-manager";

pub(crate) async fn run(state: Arc<ServerState>) {
    let Ok((_, mut changes)) = state.store.lock().subscribe(None) else {
        return;
    };
    loop {
        reconcile_all(&state);
        tokio::select! {
            change = changes.recv() => {
                if matches!(change, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // Let a burst of changes settle, then reconcile once for all of them.
        tokio::time::sleep(Duration::from_millis(5)).await;
        while changes.try_recv().is_ok() {}
    }
}

fn kind(state: &ServerState, name: &str) -> ResourceType {
    state.registry.find(name).expect("built-in kind").clone()
}

fn objects(state: &ServerState, rt: &ResourceType) -> Vec<Value> {
    state
        .store
        .lock()
        .list(rt, None)
        .into_iter()
        .cloned()
        .collect()
}

pub(crate) fn deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp").is_some()
}

fn controller_uid(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?
        .get("uid")?
        .as_str()
}

/// Objects by the namespace and uid of their controlling owner, built once per pass, so
/// finding a Deployment's ReplicaSets or a ReplicaSet's pods is a lookup: a scan (and a
/// copy of every object) per owner made a pass quadratic, minutes at 10,000 instances.
pub(crate) struct ByOwner {
    children: HashMap<(String, String), Vec<Value>>,
}

impl ByOwner {
    fn new(objects: Vec<Value>) -> Self {
        let mut children: HashMap<(String, String), Vec<Value>> = HashMap::new();
        for object in objects {
            if let Some(uid) = controller_uid(&object) {
                let namespace = meta_str(&object, "namespace").unwrap_or_default();
                children
                    .entry((namespace.to_owned(), uid.to_owned()))
                    .or_default()
                    .push(object);
            }
        }
        Self { children }
    }

    /// The objects `owner` controls (same namespace, controller reference to its uid).
    pub(crate) fn of(&self, owner: &Value) -> Vec<&Value> {
        let key = (
            meta_str(owner, "namespace").unwrap_or_default().to_owned(),
            meta_str(owner, "uid").unwrap_or_default().to_owned(),
        );
        self.children
            .get(&key)
            .map(|children| children.iter().collect())
            .unwrap_or_default()
    }
}

pub(crate) fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn owner_ref(owner: &Value, kind: &str) -> Value {
    json!({ "apiVersion": "apps/v1", "kind": kind, "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true })
}

pub(crate) fn replicas(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn reconcile_all(state: &ServerState) {
    let (deploy_rt, rs_rt, pod_rt) = (
        kind(state, "deployments"),
        kind(state, "replicasets"),
        kind(state, "pods"),
    );
    let replica_sets = ByOwner::new(objects(state, &rs_rt));
    let pods = ByOwner::new(objects(state, &pod_rt));
    for deployment in objects(state, &deploy_rt).iter().filter(|d| !deleting(d)) {
        reconcile_deployment(state, &deploy_rt, &rs_rt, deployment, &replica_sets, &pods);
    }
    let pods = ByOwner::new(objects(state, &pod_rt));
    for rs in objects(state, &rs_rt).iter().filter(|r| !deleting(r)) {
        reconcile_replica_set(state, &rs_rt, &pod_rt, rs, &pods);
    }
}

fn set_replicas(state: &ServerState, rs_rt: &ResourceType, rs: &Value, count: i64) {
    if replicas(rs) != count {
        let mut new = rs.clone();
        new["spec"]["replicas"] = json!(count);
        let ns = meta_str(rs, "namespace").unwrap_or_default();
        let _ = update_object(
            state,
            rs_rt,
            ns,
            rs,
            new,
            MANAGER,
            Scope::Main {
                status_subresource: true,
            },
        );
    }
}

fn reconcile_deployment(
    state: &ServerState,
    deploy_rt: &ResourceType,
    rs_rt: &ResourceType,
    d: &Value,
    replica_sets: &ByOwner,
    pods: &ByOwner,
) {
    let ns = meta_str(d, "namespace").unwrap_or_default().to_string();
    let name = meta_str(d, "name").unwrap_or_default().to_string();
    let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = template_hash(&serde_json::to_string(&template).unwrap_or_default());
    let rs_name = format!("{name}-{hash}");
    let desired = replicas(d);
    let recreate = d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");

    let owned: Vec<&Value> = replica_sets.of(d);
    let old: Vec<&Value> = owned
        .iter()
        .copied()
        .filter(|r| meta_str(r, "name") != Some(rs_name.as_str()))
        .collect();
    let old_pods: usize = old.iter().map(|r| pods.of(r).len()).sum();

    let current = match owned
        .iter()
        .find(|r| meta_str(r, "name") == Some(rs_name.as_str()))
    {
        Some(rs) => (*rs).clone(),
        None => {
            let revision = owned
                .iter()
                .filter_map(|r| {
                    r.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")?
                        .as_str()?
                        .parse::<u64>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
                + 1;
            let mut labels = template
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            labels["pod-template-hash"] = json!(hash);
            let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut rs_template = template.clone();
            rs_template["metadata"]["labels"] = labels.clone();
            let initial = if recreate && old_pods > 0 { 0 } else { desired };
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name, "namespace": ns, "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                        "deployment.kubernetes.io/max-replicas": desired.to_string(),
                        "deployment.kubernetes.io/revision": revision.to_string(),
                    },
                    "ownerReferences": [owner_ref(d, "Deployment")],
                },
                "spec": { "replicas": initial, "minReadySeconds": 0, "selector": selector, "template": rs_template },
                "status": { "replicas": 0 },
            });
            match create_object(state, rs_rt, &ns, rs, MANAGER, false) {
                Ok(created) => created,
                Err(_) => return,
            }
        }
    };
    let current_pods: Vec<&Value> = pods.of(&current);
    let current_ready = current_pods.iter().filter(|p| is_ready(p)).count() as i64;
    if recreate {
        for rs in &old {
            set_replicas(state, rs_rt, rs, 0);
        }
        set_replicas(
            state,
            rs_rt,
            &current,
            if old_pods > 0 { 0 } else { desired },
        );
    } else {
        set_replicas(state, rs_rt, &current, desired);
        if current_ready >= desired {
            for rs in &old {
                set_replicas(state, rs_rt, rs, 0);
            }
        }
    }
    crate::deployment_status::write(
        state,
        deploy_rt,
        d,
        &owned,
        pods,
        &current_pods,
        &rs_name,
        recreate,
    );
}

pub(crate) fn write_status(state: &ServerState, rt: &ResourceType, object: &Value, status: Value) {
    if object.get("status") == Some(&status) {
        return;
    }
    let mut new = object.clone();
    new["status"] = status;
    let ns = meta_str(object, "namespace").unwrap_or_default();
    let _ = update_object(state, rt, ns, object, new, MANAGER, Scope::Status);
}

fn reconcile_replica_set(
    state: &ServerState,
    rs_rt: &ResourceType,
    pod_rt: &ResourceType,
    rs: &Value,
    all_pods: &ByOwner,
) {
    let ns = meta_str(rs, "namespace").unwrap_or_default().to_string();
    let name = meta_str(rs, "name").unwrap_or_default().to_string();
    let mut pods: Vec<&Value> = all_pods
        .of(rs)
        .into_iter()
        .filter(|p| !deleting(p))
        .collect();
    let want = replicas(rs);
    let have = pods.len() as i64;
    let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    // Pods created or deleted now count at once in the status written below.
    let mut created = Vec::new();
    for _ in have..want {
        let mut metadata = template.get("metadata").cloned().unwrap_or(json!({}));
        metadata["name"] = json!(format!("{name}-{}", random_suffix(5)));
        metadata["namespace"] = json!(ns);
        metadata["ownerReferences"] = json!([owner_ref(rs, "ReplicaSet")]);
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
            "status": { "phase": "Pending", "qosClass": "BestEffort" },
        });
        if let Ok(pod) = create_object(state, pod_rt, &ns, pod, MANAGER, false) {
            created.push(pod);
        }
    }
    let mut removed = 0;
    if have > want {
        // Remove unready pods first, then the newest.
        pods.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(
                    meta_str(p, "creationTimestamp")
                        .unwrap_or_default()
                        .to_string(),
                ),
            )
        });
        let background = DeleteOptions {
            propagation: Propagation::Background,
            uid: None,
            resource_version: None,
        };
        removed = (have - want) as usize;
        for pod in pods.iter().take(removed) {
            let pod_name = meta_str(pod, "name").unwrap_or_default();
            let _ = gc::delete(&mut state.store.lock(), pod_rt, &ns, pod_name, &background);
        }
    }
    let pods: Vec<&Value> = pods.into_iter().skip(removed).chain(&created).collect();
    let ready = pods.iter().filter(|p| is_ready(p)).count() as i64;
    let mut status =
        json!({ "replicas": pods.len(), "observedGeneration": rs["metadata"]["generation"] });
    for (field, value) in [
        ("fullyLabeledReplicas", pods.len() as i64),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
    ] {
        if value != 0 {
            status[field] = json!(value);
        }
    }
    write_status(state, rs_rt, rs, status);
}

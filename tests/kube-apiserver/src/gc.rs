//! Deletion: preconditions, finalizers, `propagationPolicy` (Background, Foreground, Orphan) and
//! the garbage collector that removes dependents whose owners (by `ownerReferences[].uid`) are
//! gone. The collector runs asynchronously, shortly after the delete, like the real one.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::store::{Inner, Key, meta_str};
use crate::util::now;

const FOREGROUND: &str = "foregroundDeletion";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// The parts of `DeleteOptions` we honour.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeleteOptions {
    pub propagation: Propagation,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    /// From the JSON body (kube-rs sends `DeleteParams` there) and/or the query.
    pub(crate) fn parse(body: &Value, query_policy: Option<&str>) -> Result<Self, ApiError> {
        let policy = body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .or(query_policy);
        let propagation = match policy {
            None | Some("Background") => Propagation::Background,
            Some("Foreground") => Propagation::Foreground,
            Some("Orphan") => Propagation::Orphan,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        };
        let pre = body.get("preconditions");
        let field = |f: &str| {
            pre.and_then(|p| p.get(f))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(Self {
            propagation,
            uid: field("uid"),
            resource_version: field("resourceVersion"),
        })
    }
}

/// The result of a delete: gone now, or still present while finalizers / dependents finish.
pub(crate) enum Deleted {
    Gone(Value),
    Pending(Value),
}

fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn has_finalizers(object: &Value) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

fn mark_deleting(object: &mut Value, foreground: bool) {
    let meta = &mut object["metadata"];
    if meta.get("deletionTimestamp").is_none() {
        meta["deletionTimestamp"] = json!(now());
        meta["deletionGracePeriodSeconds"] = json!(0);
    }
    if foreground {
        let finalizers = meta["finalizers"].as_array().cloned().unwrap_or_default();
        if !finalizers.iter().any(|f| f == FOREGROUND) {
            let mut finalizers = finalizers;
            finalizers.push(json!(FOREGROUND));
            meta["finalizers"] = json!(finalizers);
        }
    }
}

fn dependents_of(inner: &Inner, uid: &str) -> Vec<Key> {
    inner
        .all()
        .filter(|(_, o)| owner_uids(o).iter().any(|u| u == uid))
        .map(|(k, _)| k.clone())
        .collect()
}

pub(crate) fn delete(
    inner: &mut Inner,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Deleted, ApiError> {
    let key = Inner::key_of(rt, ns, name);
    let object = inner
        .get(rt, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    let uid = meta_str(&object, "uid").unwrap_or_default().to_string();
    if let Some(want) = &opts.uid
        && *want != uid
    {
        return Err(ApiError::conflict(
            rt,
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        ));
    }
    let rv = meta_str(&object, "resourceVersion").unwrap_or_default();
    if let Some(want) = &opts.resource_version
        && want != rv
    {
        return Err(ApiError::conflict(
            rt,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
            ),
        ));
    }
    if object["metadata"].get("deletionTimestamp").is_some() {
        return Ok(Deleted::Pending(object));
    }
    match opts.propagation {
        Propagation::Orphan => {
            for dependent in dependents_of(inner, &uid) {
                if let Some(mut d) = inner.get_key(&dependent).cloned() {
                    let refs: Vec<Value> = d["metadata"]["ownerReferences"]
                        .as_array()
                        .map(|r| {
                            r.iter()
                                .filter(|r| r["uid"] != uid.as_str())
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    if refs.is_empty() {
                        d["metadata"]
                            .as_object_mut()
                            .map(|m| m.remove("ownerReferences"));
                    } else {
                        d["metadata"]["ownerReferences"] = json!(refs);
                    }
                    inner.put_key(&dependent, d);
                }
            }
        }
        Propagation::Foreground => {
            let mut marked = object.clone();
            mark_deleting(&mut marked, true);
            inner.put_key(&key, marked);
            inner.gc_wake.notify_one();
            let now = inner.get(rt, ns, name).cloned().unwrap_or(object);
            return Ok(Deleted::Pending(now));
        }
        Propagation::Background => {}
    }
    if has_finalizers(&object) {
        let mut marked = object.clone();
        mark_deleting(&mut marked, false);
        inner.put_key(&key, marked);
        let now = inner.get(rt, ns, name).cloned().unwrap_or(object);
        return Ok(Deleted::Pending(now));
    }
    let gone = inner
        .remove_key(&key)
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    Ok(Deleted::Gone(gone))
}

/// One garbage-collection round, repeated until nothing changes: orphaned dependents are
/// deleted (background); foreground deletions wait for their dependents, then finish.
pub(crate) fn collect(inner: &mut Inner) {
    loop {
        let live: HashSet<String> = inner
            .all()
            .filter_map(|(_, o)| meta_str(o, "uid").map(str::to_string))
            .collect();
        let mut actions: Vec<(Key, Option<Value>)> = Vec::new();
        for (key, object) in inner.all() {
            let owners = owner_uids(object);
            let deleting = object["metadata"].get("deletionTimestamp").is_some();
            if !owners.is_empty() && !owners.iter().any(|u| live.contains(u)) && !deleting {
                // All owners gone: delete, respecting the dependent's own finalizers.
                if has_finalizers(object) {
                    let mut marked = object.clone();
                    mark_deleting(&mut marked, false);
                    actions.push((key.clone(), Some(marked)));
                } else {
                    actions.push((key.clone(), None));
                }
                continue;
            }
            let foreground = object["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == FOREGROUND));
            if !foreground {
                continue;
            }
            let uid = meta_str(object, "uid").unwrap_or_default();
            let dependents = dependents_of(inner, uid);
            if dependents.is_empty() {
                let mut done = object.clone();
                let rest: Vec<Value> = done["metadata"]["finalizers"]
                    .as_array()
                    .map(|f| f.iter().filter(|f| *f != FOREGROUND).cloned().collect())
                    .unwrap_or_default();
                if rest.is_empty() {
                    actions.push((key.clone(), None));
                } else {
                    done["metadata"]["finalizers"] = json!(rest);
                    actions.push((key.clone(), Some(done)));
                }
            } else {
                for dependent in dependents {
                    if let Some(d) = inner.get_key(&dependent).cloned()
                        && d["metadata"].get("deletionTimestamp").is_none()
                    {
                        let mut marked = d;
                        mark_deleting(&mut marked, true);
                        actions.push((dependent, Some(marked)));
                    }
                }
            }
        }
        if actions.is_empty() {
            return;
        }
        for (key, replacement) in actions {
            match replacement {
                Some(object) => inner.put_key(&key, object),
                None => {
                    inner.remove_key(&key);
                }
            }
        }
    }
}

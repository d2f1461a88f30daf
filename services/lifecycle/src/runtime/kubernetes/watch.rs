//! One watcher per kind (list, then watch, re-list after a gap) feeding the cache, and
//! the notice when every kind has been listed once.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use futures_util::StreamExt;
use kube::{
    ResourceExt,
    api::{DynamicObject, TypeMeta},
    runtime::watcher::Event,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{api::ClusterApi, kinds::ObjectKind, lean, names, state::RuntimeState};
use crate::instance_id::InstanceId;

/// Watches `kind` until `stop`; increments `synced` after the first complete list.
pub async fn run(
    api: ClusterApi,
    kind: ObjectKind,
    state: Arc<RuntimeState>,
    synced: watch::Sender<usize>,
    stop: CancellationToken,
) {
    let stream = api.watch(kind);
    futures_util::pin_mut!(stream);
    let mut feed = Feed {
        kind,
        state,
        known: HashMap::new(),
        relisted: None,
    };
    let mut first_list_done = false;
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            _ = stop.cancelled() => return,
        };
        match event {
            None => return,
            Some(Err(error)) => {
                tracing::warn!(kind = kind.kind_name(), %error, "watch failed; retrying with backoff");
            }
            Some(Ok(event)) => {
                if feed.handle(event) && !first_list_done {
                    first_list_done = true;
                    synced.send_modify(|count| *count += 1);
                }
            }
        }
    }
}

struct Feed {
    kind: ObjectKind,
    state: Arc<RuntimeState>,
    /// Objects of this kind in the cache: name → instance.
    known: HashMap<String, InstanceId>,
    /// Names seen since the current re-list began.
    relisted: Option<HashSet<String>>,
}

impl Feed {
    /// Returns true when a list completed.
    fn handle(&mut self, event: Event<DynamicObject>) -> bool {
        match event {
            Event::Init => {
                self.relisted = Some(HashSet::new());
            }
            Event::InitApply(object) => {
                if let Some(seen) = &mut self.relisted {
                    seen.insert(object.name_any());
                }
                self.applied(object);
            }
            Event::InitDone => {
                let seen = self.relisted.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .known
                    .keys()
                    .filter(|name| !seen.contains(*name))
                    .cloned()
                    .collect();
                for name in gone {
                    self.deleted(&name);
                }
                return true;
            }
            Event::Apply(object) => self.applied(object),
            Event::Delete(object) => self.deleted(&object.name_any()),
        }
        false
    }

    fn applied(&mut self, mut object: DynamicObject) {
        // Items of a list carry no apiVersion and kind (watch events do); without them an
        // object known only from the initial list never matches what we would apply, and
        // every reconcile after a restart would re-send it.
        object.types.get_or_insert_with(|| TypeMeta {
            api_version: self.kind.api_version(),
            kind: self.kind.kind_name().to_owned(),
        });
        let name = object.name_any();
        let Some(id) = names::instance_of(object.metadata.labels.as_ref()) else {
            // Relabelled away from the platform: treat it as gone.
            self.deleted(&name);
            return;
        };
        if let Some(previous) = self.known.get(&name)
            && *previous != id
        {
            self.deleted(&name);
        }
        let desired_digest = self
            .state
            .desired(&id)
            .and_then(|desired| desired.digest(self.kind));
        let previous = self.state.cache.live(&id, self.kind);
        // A Deployment's status changes often; re-checking its spec each time would
        // build the instance's objects again for nothing.
        let unchanged = desired_digest.filter(|digest| {
            previous.as_ref().is_some_and(|previous| {
                previous.in_sync_with == Some(*digest)
                    && lean::only_status_changed(&object, previous)
            })
        });
        let desired = match (unchanged, desired_digest) {
            (None, Some(_)) => self.state.desired_object(&id, self.kind),
            _ => None,
        };
        let check = match (unchanged, &desired) {
            (Some(digest), _) => lean::Check::Unchanged(digest),
            (None, Some(desired)) => lean::Check::Against(desired),
            (None, None) => lean::Check::Stamp,
        };
        let cached = match lean::keep(self.kind, object, check) {
            Ok(cached) => cached,
            Err(error) => {
                tracing::warn!(kind = self.kind.kind_name(), %name, %error, "cannot read object");
                return;
            }
        };
        self.state.cache.upsert(self.kind, &id, &name, cached);
        self.known.insert(name, id.clone());
        self.state.on_change(self.kind, &id);
    }

    fn deleted(&mut self, name: &str) {
        if let Some(id) = self.known.remove(name) {
            self.state.cache.remove(self.kind, &id, name);
            self.state.on_change(self.kind, &id);
        }
    }
}

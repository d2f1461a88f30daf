//! WATCH: newline-delimited JSON `{"type": …, "object": …}` events streamed as changes commit.
//!
//! `resourceVersion` unset or `"0"` starts with synthetic ADDED events for the current state;
//! a specific version replays the retained history after it (410 Expired as an ERROR event when
//! it is older than the history); `sendInitialEvents=true` ends the initial ADDED events with a
//! BOOKMARK annotated `k8s.io/initial-events-end`. Selector-filtered watches turn label changes
//! into ADDED/DELETED like the real watch cache.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::crud::render;
use crate::routing::ApiRequest;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::ServerState;
use crate::status::ApiError;
use crate::store::{Change, ChangeType};

struct Filter {
    resource: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    metadata_only: bool,
}

impl Filter {
    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event this watch sees for `change`, if any.
    fn event(&self, change: &Change) -> Option<Value> {
        if change.resource != self.resource
            || self
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != change.namespace)
        {
            return None;
        }
        let now = self.matches(&change.object);
        let before = change.old.as_ref().is_some_and(|o| self.matches(o));
        let kind = match change.kind {
            ChangeType::Added if now => "ADDED",
            ChangeType::Modified if now && before => "MODIFIED",
            ChangeType::Modified if now => "ADDED",
            ChangeType::Modified if before => "DELETED",
            ChangeType::Deleted if before || now => "DELETED",
            _ => return None,
        };
        Some(line(kind, &render(&change.object, self.metadata_only)))
    }
}

fn line(kind: &str, object: &Value) -> Value {
    json!({ "type": kind, "object": object })
}

fn bytes(event: &Value) -> Bytes {
    let mut text = serde_json::to_vec(event).unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}

pub(crate) fn serve(state: &Arc<ServerState>, req: &ApiRequest) -> Result<Response, ApiError> {
    let rt = &req.rt;
    let filter = Filter {
        resource: rt.id(),
        namespace: (!req.all_namespaces && rt.namespaced).then(|| req.namespace.clone()),
        labels: LabelSelector::parse(req.param("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse(req.param("fieldSelector").unwrap_or_default(), rt)?,
        metadata_only: req.metadata_only(),
    };
    let requested = req
        .param("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0");
    let from = match requested {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
        ),
        None => None,
    };
    let send_initial = req.flag("sendInitialEvents");
    let bookmarks = req.flag("allowWatchBookmarks");
    let timeout = req
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (api_version, kind) = if filter.metadata_only {
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadata".to_string(),
        )
    } else {
        (rt.api_version(), rt.kind.clone())
    };

    // Subscribe and read the starting state under one lock so nothing falls between them.
    let (initial, receiver, start_rv) = {
        let store = state.store.lock();
        let start_rv = store.resource_version();
        match store.subscribe(from) {
            Err(expired) => (vec![line("ERROR", &expired.to_status())], None, start_rv),
            Ok((backlog, receiver)) => {
                let mut events: Vec<Value> =
                    backlog.iter().filter_map(|c| filter.event(c)).collect();
                if from.is_none() {
                    events = store
                        .list(rt, filter.namespace.as_deref())
                        .into_iter()
                        .filter(|o| filter.matches(o))
                        .map(|o| line("ADDED", &render(o, filter.metadata_only)))
                        .collect();
                    if send_initial {
                        events.push(line("BOOKMARK", &json!({
                            "kind": kind, "apiVersion": api_version,
                            "metadata": { "resourceVersion": start_rv.to_string(), "annotations": { "k8s.io/initial-events-end": "true" } },
                        })));
                    }
                }
                (events, Some(receiver), start_rv)
            }
        }
    };

    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let mut kill = state.watch_kill.subscribe();
    let interval = state.options.bookmark_interval;
    tokio::spawn(async move {
        for event in &initial {
            if tx.send(Ok(bytes(event))).await.is_err() {
                return;
            }
        }
        let Some(mut receiver) = receiver else { return };
        let mut last_rv = start_rv;
        let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(86_400)));
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                change = receiver.recv() => match change {
                    Ok(change) => {
                        last_rv = last_rv.max(change.rv);
                        if let Some(event) = filter.event(&change)
                            && tx.send(Ok(bytes(&event))).await.is_err()
                        {
                            return;
                        }
                    }
                    // Too slow a reader or shutdown: end the stream; the client re-watches.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    let mark = line("BOOKMARK", &json!({ "kind": kind, "apiVersion": api_version, "metadata": { "resourceVersion": last_rv.to_string() } }));
                    if tx.send(Ok(bytes(&mark))).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = kill.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
}

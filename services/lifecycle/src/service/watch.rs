//! WatchInstances: a snapshot of what the caller may see, then every change; a stream
//! that falls behind is resynchronised with a fresh snapshot and the deletions it missed.

use std::{collections::HashSet, pin::Pin, sync::Arc};

use clawfleet_contracts::lifecycle::v1::{
    Instance, WatchInstancesResponse, watch_instances_response::Kind,
};
use clawfleet_kit::{error::ServiceError, identity::Caller};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::Status;

use super::Lifecycle;

/// Messages a WatchInstances stream may buffer before the sender waits.
const WATCH_STREAM_BUFFER: usize = 256;
/// How a stream ends when the service stops.
pub const SHUTTING_DOWN: &str = "the lifecycle service is shutting down; watch again";

fn bookmark() -> WatchInstancesResponse {
    WatchInstancesResponse {
        kind: Kind::Bookmark as i32,
        instance: None,
        usage_alert: None,
    }
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchInstancesResponse, Status>> + Send>>;

/// The stream of `id_text` (one instance) or of everything (`""`) that `caller` may see.
pub(super) async fn watch(
    lifecycle: Arc<Lifecycle>,
    caller: Caller,
    id_text: &str,
) -> Result<WatchStream, ServiceError> {
    let only_id = match id_text {
        "" => None,
        text => Some(lifecycle.visible_record(&caller, text).await?.id),
    };
    // Subscribe before taking the snapshot so no change falls between the two.
    let mut changes = lifecycle.hub.subscribe();
    let (sender, receiver) = mpsc::channel(WATCH_STREAM_BUFFER);
    let wanted = move |instance: &Instance| {
        let id_matches = only_id.as_ref().is_none_or(|id| id.as_str() == instance.id);
        let visible = caller.is_privileged() || instance.owner == caller.subject;
        id_matches && visible
    };
    tokio::spawn(async move {
        let snapshot = |lifecycle: &Lifecycle| -> Vec<WatchInstancesResponse> {
            lifecycle
                .registry
                .all()
                .iter()
                .map(|record| lifecycle.view(record))
                .filter(&wanted)
                .map(|instance| WatchInstancesResponse {
                    kind: Kind::Snapshot as i32,
                    instance: Some(instance),
                    usage_alert: None,
                })
                .collect()
        };
        // The ids this stream has shown as existing: after falling behind, the ones
        // missing from the fresh snapshot were deleted meanwhile and are reported so.
        let mut shown = HashSet::new();
        let mut messages = snapshot(&lifecycle);
        messages.push(bookmark());
        let mut bookmarks = tokio::time::interval(lifecycle.hub.bookmark_interval());
        bookmarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        bookmarks.reset();
        loop {
            for message in messages {
                if let Some(instance) = &message.instance {
                    if message.kind == Kind::Deleted as i32 {
                        shown.remove(&instance.id);
                    } else {
                        shown.insert(instance.id.clone());
                    }
                }
                if sender.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            let change = tokio::select! {
                change = changes.recv() => change,
                _ = bookmarks.tick() => {
                    messages = vec![bookmark()];
                    continue;
                }
                _ = sender.closed() => return,
                _ = lifecycle.shutdown.cancelled() => {
                    // Said plainly, so a watcher reconnects (to another replica) at once.
                    let _ = sender.send(Err(Status::unavailable(SHUTTING_DOWN))).await;
                    return;
                }
            };
            bookmarks.reset();
            messages = match change {
                Ok(message) if message.instance.as_ref().is_some_and(&wanted) => vec![message],
                Ok(_) => Vec::new(),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    resynchronised(snapshot(&lifecycle), &shown)
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
        }
    });
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

/// A fresh snapshot for a stream that fell behind, followed by a deletion for every id
/// it had shown that no longer exists.
fn resynchronised(
    snapshot: Vec<WatchInstancesResponse>,
    shown: &HashSet<String>,
) -> Vec<WatchInstancesResponse> {
    let present: HashSet<&str> = snapshot
        .iter()
        .filter_map(|message| message.instance.as_ref())
        .map(|instance| instance.id.as_str())
        .collect();
    let deleted: Vec<WatchInstancesResponse> = shown
        .iter()
        .filter(|id| !present.contains(id.as_str()))
        .map(|id| WatchInstancesResponse {
            kind: Kind::Deleted as i32,
            instance: Some(Instance {
                id: id.clone(),
                revision: crate::revision::next(),
                ..Instance::default()
            }),
            usage_alert: None,
        })
        .collect();
    snapshot.into_iter().chain(deleted).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: Kind, id: &str) -> WatchInstancesResponse {
        WatchInstancesResponse {
            kind: kind as i32,
            instance: Some(Instance {
                id: id.into(),
                ..Instance::default()
            }),
            usage_alert: None,
        }
    }

    #[test]
    fn a_resynchronised_stream_learns_what_was_deleted_meanwhile() {
        let shown: HashSet<String> = ["alice", "bob", "carol"].map(String::from).into();
        let snapshot = vec![
            message(Kind::Snapshot, "alice"),
            message(Kind::Snapshot, "dave"),
        ];
        let messages = resynchronised(snapshot, &shown);
        let mut deleted: Vec<&str> = messages
            .iter()
            .filter(|message| message.kind == Kind::Deleted as i32)
            .map(|message| message.instance.as_ref().unwrap().id.as_str())
            .collect();
        deleted.sort_unstable();
        assert_eq!(deleted, ["bob", "carol"]);
        assert_eq!(messages.len(), 4);
        assert!(
            messages
                .iter()
                .filter(|message| message.kind == Kind::Deleted as i32)
                .all(|message| message.instance.as_ref().unwrap().revision > 0)
        );
    }
}

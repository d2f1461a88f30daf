//! Fans instance changes out to WatchInstances streams.
//!
//! One task turns the runtime's change notifications into full `Instance` states; the
//! service adds record changes (stop, start, delete). Each stream receives a snapshot
//! first and then every change; a stream that falls too far behind gets a fresh snapshot.

use std::{sync::Arc, time::Duration};

use clawfleet_contracts::lifecycle::v1::{
    Instance, WatchInstancesResponse, watch_instances_response::Kind,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::{model::Phase, registry::Registry, runtime::SharedRuntime, view::instance_view};

/// Changes a slow watcher may fall behind before it is resynchronised.
const WATCH_BUFFER: usize = 4096;
/// How often a quiet watch stream says it is still current.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct WatchHub {
    sender: broadcast::Sender<WatchInstancesResponse>,
    bookmark_interval: Duration,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::with_bookmark_interval(DEFAULT_BOOKMARK_INTERVAL)
    }
}

impl WatchHub {
    pub fn with_bookmark_interval(bookmark_interval: Duration) -> Self {
        let (sender, _) = broadcast::channel(WATCH_BUFFER);
        Self {
            sender,
            bookmark_interval,
        }
    }

    /// How often a quiet stream gets a bookmark.
    pub fn bookmark_interval(&self) -> Duration {
        self.bookmark_interval
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WatchInstancesResponse> {
        self.sender.subscribe()
    }

    pub fn updated(&self, instance: Instance) {
        let _ = self.sender.send(WatchInstancesResponse {
            kind: Kind::Updated as i32,
            instance: Some(instance),
            usage_alert: None,
        });
    }

    /// An instance's current state with a usage alert of its owner's provider key.
    pub fn usage_alert(
        &self,
        instance: Instance,
        alert: clawfleet_contracts::lifecycle::v1::UsageAlert,
    ) {
        let _ = self.sender.send(WatchInstancesResponse {
            kind: Kind::Updated as i32,
            instance: Some(instance),
            usage_alert: Some(alert),
        });
    }

    pub fn deleted(&self, instance: Instance) {
        let _ = self.sender.send(WatchInstancesResponse {
            kind: Kind::Deleted as i32,
            instance: Some(instance),
            usage_alert: None,
        });
    }

    /// Forwards runtime observations until `shutdown`.
    pub fn spawn_forwarder(
        &self,
        registry: Arc<Registry>,
        runtime: SharedRuntime,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        let mut changes = runtime.subscribe();
        tokio::spawn(async move {
            loop {
                let changed = tokio::select! {
                    changed = changes.recv() => changed,
                    _ = shutdown.cancelled() => return,
                };
                match changed {
                    Ok(id) => {
                        // A change of an instance being deleted has no record any more.
                        if let Some(record) = registry.get(&id) {
                            let view = instance_view(&record, runtime.observe(&id));
                            if view.phase == Phase::Running.to_proto() as i32 {
                                crate::metrics::instance_running(&id);
                            }
                            hub.updated(view);
                        } else {
                            crate::metrics::instance_removed(&id);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(
                            skipped,
                            "watch forwarder fell behind; republishing every instance"
                        );
                        for record in registry.all() {
                            hub.updated(instance_view(&record, runtime.observe(&record.id)));
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }
}

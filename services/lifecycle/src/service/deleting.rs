//! DeleteInstance: the delete is recorded first (irrevocably), the teardown runs on its
//! own task (see [`crate::deletion`]), and the caller waits for it only up to
//! [`DELETE_WAIT`], well inside the edge's deadline for the call; past that the answer
//! says the teardown goes on and the instance reads `deleting` until it is gone. On a
//! runtime that applies in the background (Kubernetes) the caller does not wait at all.

use std::time::Duration;

use clawfleet_contracts::lifecycle::v1::{DeleteInstanceResponse, watch_instances_response::Kind};
use clawfleet_kit::{error::ServiceError, identity::Caller};
use tokio::sync::broadcast::error::RecvError;

use super::{Lifecycle, errors::store_error};
use crate::{deletion::Outcome, store::Update};

/// How long DeleteInstance waits for the teardown before answering that it goes on in
/// the background. A local gateway may take its whole stop grace (15 s) to exit, and
/// the edge gives the call 15 s: the answer must come well before either.
pub const DELETE_WAIT: Duration = Duration::from_secs(5);

impl Lifecycle {
    pub(super) async fn delete(
        self: &std::sync::Arc<Self>,
        caller: &Caller,
        id_text: &str,
        preserve_data: bool,
    ) -> Result<DeleteInstanceResponse, ServiceError> {
        let record = self.visible_record(caller, id_text).await?;
        // Subscribed before the mark, so a follower cannot miss the leader's deletion.
        let mut changes = self.hub.subscribe();
        let marked = match self
            .registry
            .mark_deleting(&record.id, preserve_data)
            .await
            .map_err(store_error)?
        {
            Update::Changed(marked) => {
                tracing::info!(instance = %marked.id, preserve_data, "instance delete accepted");
                self.hub.updated(self.view(&marked));
                marked
            }
            // Deleted already, or in flight: this call joins the first delete.
            Update::Deleting(marked) => marked,
            Update::Missing => {
                return Err(ServiceError::not_found(format!(
                    "instance {} not found",
                    record.id
                )));
            }
        };
        let data_preserved = marked
            .deleting
            .is_none_or(|deletion| deletion.preserve_data);
        let id = marked.id.to_string();
        if !self.is_leader() {
            // The leader hears of the mark from the store and tears the instance down;
            // this replica hears of the deletion the same way.
            let deleted = tokio::time::timeout(DELETE_WAIT, async {
                loop {
                    match changes.recv().await {
                        Ok(change)
                            if change.kind == Kind::Deleted as i32
                                && change.instance.as_ref().is_some_and(|gone| gone.id == id) =>
                        {
                            return change.instance.map(|gone| gone.revision);
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    }
                }
            })
            .await;
            return Ok(match deleted {
                Ok(Some(revision)) => DeleteInstanceResponse {
                    id,
                    data_preserved,
                    revision,
                    in_progress: false,
                    instance: None,
                },
                Ok(None) | Err(_) => self.still_deleting(id, data_preserved, marked),
            });
        }
        let mut outcome = self.deletions.finish(self, marked.clone());
        // A runtime that applies in the background answers once the mark is durable
        // (docs/capacity.md#accept-then-apply): its teardown waits on a shared cluster.
        let wait = if self.runtime.applies_in_background() {
            Duration::ZERO
        } else {
            DELETE_WAIT
        };
        let finished = tokio::time::timeout(wait, outcome.wait_for(Option::is_some)).await;
        match finished {
            Ok(Ok(settled)) => match settled.clone() {
                Some(Outcome::Finished { revision }) => Ok(DeleteInstanceResponse {
                    id,
                    data_preserved,
                    revision,
                    in_progress: false,
                    instance: None,
                }),
                Some(Outcome::Failed(error)) => Err(error),
                None => Err(ServiceError::internal(
                    "a teardown ended without an outcome",
                )),
            },
            // The teardown task ended without a word (the runtime is shutting down); the
            // record stays marked and the next start finishes it.
            Ok(Err(_)) | Err(_) => Ok(self.still_deleting(id, data_preserved, marked)),
        }
    }

    /// The answer for a teardown that goes on after the call.
    fn still_deleting(
        &self,
        id: String,
        data_preserved: bool,
        marked: crate::model::InstanceRecord,
    ) -> DeleteInstanceResponse {
        let current = self.registry.get(&marked.id).unwrap_or(marked);
        let view = self.view(&current);
        DeleteInstanceResponse {
            id,
            data_preserved,
            revision: view.revision,
            in_progress: true,
            instance: Some(view),
        }
    }
}

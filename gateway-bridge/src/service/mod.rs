//! The GatewayBridgeService gRPC handlers: Call, Subscribe and VncTunnel.

pub mod access;
mod app_methods; // app callers held to the app allow-list
pub mod deadline;
pub mod errors;
mod vnc_tunnel;

use std::{pin::Pin, sync::Arc, time::Duration};

use clawfleet_contracts::bridge::v1::{
    CallRequest, CallResponse, SubscribeRequest, SubscribeResponse, VncTunnelRequest,
    VncTunnelResponse, call_response::Outcome, gateway_bridge_service_server::GatewayBridgeService,
};
use clawfleet_kit::{error::ServiceError, identity::Caller, instance_id::InstanceId};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use clawfleet_contracts::json::{json_to_value, struct_to_json};

use self::{access::InstanceAccess, deadline::call_deadline, errors::client_error};
use crate::{client::ClientError, pool::GatewayPool, resolver::LifecycleEndpoints};

/// Longest gateway method name accepted.
const MAX_METHOD_LENGTH: usize = 128;
/// Events a Subscribe stream buffers before the slowest subscriber starts losing them.
const SUBSCRIBE_BUFFER: usize = 256;
/// How an open Subscribe stream ends when the bridge stops.
pub const SUBSCRIBE_SHUTTING_DOWN: &str = "the gateway bridge is shutting down; subscribe again";
/// How long a stopping stream may wait for room to say so to a slow reader.
const FAREWELL_GRACE: Duration = Duration::from_secs(1);

pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Shared state behind the handlers.
pub struct Bridge {
    pub pool: Arc<GatewayPool>,
    pub endpoints: Arc<LifecycleEndpoints>,
    pub access: InstanceAccess,
    /// Cancelled as soon as the server starts stopping: open Subscribe and VncTunnel
    /// streams end then, with UNAVAILABLE, instead of holding the graceful shutdown
    /// open (it waits for streams that would otherwise end only after it).
    pub streams: CancellationToken,
}

/// Ends an open stream with UNAVAILABLE `message`, unless its reader is gone or stuck.
async fn say_farewell<T>(sender: &mpsc::Sender<Result<T, Status>>, message: &'static str) {
    let _ = tokio::time::timeout(
        FAREWELL_GRACE,
        sender.send(Err(Status::unavailable(message))),
    )
    .await;
}

#[derive(Clone)]
pub struct GatewayBridgeHandler {
    bridge: Arc<Bridge>,
}

impl GatewayBridgeHandler {
    pub fn new(bridge: Arc<Bridge>) -> Self {
        Self { bridge }
    }
}

/// Ids follow the platform's one rule, so the bridge refuses exactly what the
/// lifecycle refuses, with the same message.
fn validate_instance_id(instance_id: &str) -> Result<(), ServiceError> {
    InstanceId::parse(instance_id)?;
    Ok(())
}

fn validate_method(method: &str) -> Result<(), ServiceError> {
    let valid = !method.is_empty()
        && method.len() <= MAX_METHOD_LENGTH
        && method.bytes().all(|byte| {
            byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'_' || byte == b'-'
        });
    if valid {
        Ok(())
    } else {
        Err(ServiceError::invalid_argument(
            "method must be a gateway method name such as \"status\" or \"config.get\"",
        ))
    }
}

/// True when `event` is wanted by `filters` (empty = all; `prefix.*` matches a prefix).
fn event_matches(filters: &[String], event: &str) -> bool {
    filters.is_empty()
        || filters
            .iter()
            .any(|filter| match filter.strip_suffix(".*") {
                Some(prefix) => event
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.')),
                None => filter == event,
            })
}

#[tonic::async_trait]
impl GatewayBridgeService for GatewayBridgeHandler {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let deadline = call_deadline(request.metadata());
        let body = request.into_inner();
        validate_instance_id(&body.instance_id)?;
        validate_method(&body.method)?;
        app_methods::check(&caller, &body.method)?;
        self.bridge.access.check(&caller, &body.instance_id).await?;
        let params = body
            .params
            .map_or_else(|| serde_json::json!({}), struct_to_json);
        let client = self.bridge.pool.client(&body.instance_id);
        let outcome = match client.call(&body.method, params, deadline).await {
            Ok(result) => Outcome::Result(json_to_value(result)),
            Err(ClientError::Gateway(error)) => {
                Outcome::Error(errors::gateway_error_message(error))
            }
            Err(error) => return Err(client_error(&body.instance_id, error).into()),
        };
        Ok(Response::new(CallResponse {
            outcome: Some(outcome),
        }))
    }

    type SubscribeStream = ResponseStream<SubscribeResponse>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = Caller::of(&request)?.clone();
        let body = request.into_inner();
        validate_instance_id(&body.instance_id)?;
        self.bridge.access.check(&caller, &body.instance_id).await?;
        let client = self.bridge.pool.client(&body.instance_id);
        let mut events = client
            .subscribe()
            .await
            .map_err(|error| Status::from(client_error(&body.instance_id, error)))?;
        let (sender, receiver) = mpsc::channel(SUBSCRIBE_BUFFER);
        let filters = body.events;
        let stopping = self.bridge.streams.clone();
        let instance_id = body.instance_id;
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    event = events.recv() => event,
                    _ = sender.closed() => return,
                    _ = stopping.cancelled() => {
                        // Said plainly, so a subscriber reconnects (to another replica) at once.
                        say_farewell(&sender, SUBSCRIBE_SHUTTING_DOWN).await;
                        return;
                    }
                };
                match event {
                    Ok(event) if event_matches(&filters, &event.event) => {
                        let message = SubscribeResponse {
                            event: event.event,
                            payload: Some(json_to_value(event.payload)),
                            seq: event.seq.unwrap_or(0),
                        };
                        if sender.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(instance = %instance_id, skipped, "subscriber fell behind; events dropped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    type VncTunnelStream = ResponseStream<VncTunnelResponse>;

    async fn vnc_tunnel(
        &self,
        request: Request<Streaming<VncTunnelRequest>>,
    ) -> Result<Response<Self::VncTunnelStream>, Status> {
        let caller = Caller::of(&request)?.clone();
        let stream = vnc_tunnel::open(&self.bridge, &caller, request.into_inner()).await?;
        Ok(Response::new(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters_match_names_and_prefixes() {
        let filters = vec!["config.changed".to_owned(), "channels.*".to_owned()];
        assert!(event_matches(&filters, "config.changed"));
        assert!(event_matches(&filters, "channels.status.changed"));
        assert!(!event_matches(&filters, "channelsx.y"));
        assert!(!event_matches(&filters, "tick"));
        assert!(event_matches(&[], "anything"));
    }

    #[test]
    fn methods_and_ids_are_checked() {
        assert!(validate_method("config.get").is_ok());
        assert!(validate_method("").is_err());
        assert!(validate_method("a b").is_err());
        assert!(validate_instance_id("alice").is_ok());
        let refused = validate_instance_id("Alice").unwrap_err();
        assert_eq!(
            refused.message,
            ServiceError::from(InstanceId::parse("Alice").unwrap_err()).message
        );
    }
}

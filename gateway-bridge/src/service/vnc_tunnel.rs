//! VncTunnel: bytes both ways between a gRPC stream and the instance's NoVNC
//! (websockify) WebSocket. The first request names the instance; later ones carry data.

use std::time::Duration;

use clawfleet_contracts::bridge::v1::{
    VncTunnelRequest, VncTunnelResponse, vnc_tunnel_request::Frame,
};
use clawfleet_kit::{
    error::{ErrorCode, ServiceError},
    identity::Caller,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
};
use tonic::{Status, Streaming};

use crate::connection::MAX_MESSAGE_BYTES;

use super::{Bridge, ResponseStream, say_farewell, validate_instance_id};

/// How long the caller has to name the instance.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to the NoVNC endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunks buffered towards the caller before reading from the VNC side pauses.
const TUNNEL_BUFFER: usize = 64;
/// How an open tunnel ends when the bridge stops.
const TUNNEL_SHUTTING_DOWN: &str = "the gateway bridge is shutting down; open the tunnel again";

pub async fn open(
    bridge: &Bridge,
    caller: &Caller,
    mut inbound: Streaming<VncTunnelRequest>,
) -> Result<ResponseStream<VncTunnelResponse>, Status> {
    let first = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, inbound.message())
        .await
        .map_err(|_| {
            ServiceError::invalid_argument("the first vnc tunnel message must name the instance")
        })??;
    let instance_id = match first.and_then(|request| request.frame) {
        Some(Frame::InstanceId(instance_id)) => instance_id,
        _ => {
            return Err(ServiceError::invalid_argument(
                "the first vnc tunnel message must name the instance",
            )
            .into());
        }
    };
    validate_instance_id(&instance_id)?;
    bridge.access.check(caller, &instance_id).await?;
    let vnc_url = bridge.endpoints.vnc_url(&instance_id).await?;
    if vnc_url.is_empty() {
        return Err(ServiceError::new(
            ErrorCode::FailedPrecondition,
            format!(
                "instance {instance_id} has no vnc endpoint (its runtime has no virtual display)"
            ),
        )
        .into());
    }
    let mut websocket_request = vnc_url
        .as_str()
        .into_client_request()
        .map_err(|error| ServiceError::internal(format!("invalid vnc url: {error}")))?;
    // websockify speaks raw bytes under the "binary" subprotocol.
    websocket_request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("binary"));
    let (socket, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        // The same cap as on gateway connections: one tenant's display cannot make the
        // bridge buffer tens of MiB for one message.
        tokio_tungstenite::connect_async_with_config(
            websocket_request,
            Some(
                WebSocketConfig::default()
                    .max_message_size(Some(MAX_MESSAGE_BYTES))
                    .max_frame_size(Some(MAX_MESSAGE_BYTES)),
            ),
            false,
        ),
    )
    .await
    .map_err(|_| {
        ServiceError::new(
            ErrorCode::BadGateway,
            format!("vnc endpoint of instance {instance_id} did not answer"),
        )
    })?
    .map_err(|error| {
        ServiceError::new(
            ErrorCode::BadGateway,
            format!("vnc endpoint of instance {instance_id} is unreachable: {error}"),
        )
    })?;
    let (mut vnc_sink, mut vnc_stream) = socket.split();
    let (sender, receiver) = mpsc::channel(TUNNEL_BUFFER);
    let stopping = bridge.streams.clone();

    // Caller → VNC.
    let upstream_stopping = stopping.clone();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = inbound.message() => message,
                _ = upstream_stopping.cancelled() => break,
            };
            match message {
                Ok(Some(VncTunnelRequest {
                    frame: Some(Frame::Data(bytes)),
                })) => {
                    if vnc_sink.send(Message::binary(bytes)).await.is_err() {
                        break;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let _ = vnc_sink.close().await;
    });

    // VNC → caller.
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = vnc_stream.next() => message,
                _ = sender.closed() => return,
                _ = stopping.cancelled() => {
                    say_farewell(&sender, TUNNEL_SHUTTING_DOWN).await;
                    return;
                }
            };
            let data = match message {
                Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    let _ = sender
                        .send(Err(Status::unavailable(format!(
                            "vnc connection failed: {error}"
                        ))))
                        .await;
                    return;
                }
            };
            if sender.send(Ok(VncTunnelResponse { data })).await.is_err() {
                return;
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

//! `GET /api/instances/{userId}/vnc?token=<key>`: a WebSocket proxied byte for byte to
//! the instance's NoVNC endpoint through the bridge's VncTunnel. The key is checked
//! (by the auth layer) and the tunnel opened before the upgrade, so a missing instance
//! or display is a plain HTTP error.

use axum::{
    extract::{
        State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    response::Response,
};
use clawfleet_contracts::bridge::v1::{
    VncTunnelRequest, VncTunnelResponse, vnc_tunnel_request::Frame,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::with_json_405;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::ApiError,
    extract::InstanceId,
    openapi::schemas::{ErrorResponses, ManagerInstancePath},
    principal::Principal,
    state::EdgeState,
};

/// Frames buffered from the browser before reading from it pauses.
const TUNNEL_BUFFER: usize = 64;

pub fn routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new().routes(with_json_405(routes!(open_vnc)))
}

/// WebSocket to the instance's NoVNC display, proxied byte for byte. Browsers cannot set
/// headers on a WebSocket, so the API key may come as `?token=`.
#[utoipa::path(get, path = "/api/instances/{userId}/vnc", tag = "manager",
    security(("apiKey" = [])),
    params(ManagerInstancePath,
        ("token" = Option<String>, Query, description = "the platform API key")),
    responses((status = 101, description = "switching to the WebSocket"), ErrorResponses))]
async fn open_vnc(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    InstanceId(instance_id): InstanceId,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let (sender, receiver) = mpsc::channel(TUNNEL_BUFFER);
    sender
        .send(VncTunnelRequest {
            frame: Some(Frame::InstanceId(instance_id)),
        })
        .await
        .map_err(|_| ApiError::internal("vnc tunnel closed before it opened"))?;
    let from_vnc = state
        .bridge()
        .vnc_tunnel(&caller, ReceiverStream::new(receiver))
        .await?;
    let shutdown = state.shutdown().clone();
    Ok(upgrade
        .protocols(["binary"])
        .on_upgrade(move |socket| async move {
            tokio::select! {
                _ = pump(socket, sender, from_vnc) => {}
                _ = shutdown.cancelled() => {}
            }
        }))
}

/// Moves bytes both ways until either side closes.
async fn pump(
    socket: WebSocket,
    to_vnc: mpsc::Sender<VncTunnelRequest>,
    mut from_vnc: Streaming<VncTunnelResponse>,
) {
    let (mut browser_sink, mut browser_stream) = socket.split();
    let upstream = async move {
        while let Some(Ok(message)) = browser_stream.next().await {
            let data = match message {
                Message::Binary(bytes) => bytes.to_vec(),
                Message::Text(text) => text.as_bytes().to_vec(),
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if to_vnc
                .send(VncTunnelRequest {
                    frame: Some(Frame::Data(data)),
                })
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let downstream = async move {
        while let Ok(Some(chunk)) = from_vnc.message().await {
            if browser_sink
                .send(Message::Binary(chunk.data.into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = browser_sink.close().await;
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

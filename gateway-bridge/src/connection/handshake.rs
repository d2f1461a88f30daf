//! Opening a connection: the WebSocket upgrade with extra headers, then the challenge,
//! the signed `connect` and its `hello-ok` or refusal (docs/reference/openclaw-gateway.md#handshake).

use std::time::Duration;

use clawfleet_kit::secret::ExposeSecret;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::{
    connect_async_tls_with_config,
    tungstenite::{
        self, Message,
        client::IntoClientRequest,
        http::{HeaderName, HeaderValue},
    },
};

use super::{
    CloseReason, ConnectError, ConnectOptions, Socket, frames::remote_close,
    limits::websocket_config,
};
use crate::{
    device_identity::DeviceAuthClaims,
    protocol::{
        CHALLENGE_EVENT, CLIENT_ID, CLIENT_MODE, CLIENT_PLATFORM, ConnectAuth, ConnectChallenge,
        ConnectParams, Frame, GatewayError, HelloOk, OPERATOR_ROLE, REQUIRED_SCOPES, RequestFrame,
    },
};

/// The request id of `connect` (calls use numeric ids, so it cannot collide).
const CONNECT_REQUEST_ID: &str = "connect";

pub(super) async fn dial(options: &ConnectOptions) -> Result<Socket, ConnectError> {
    let mut request = options
        .url
        .as_str()
        .into_client_request()
        .map_err(|error| ConnectError::Protocol(format!("invalid gateway url: {error}")))?;
    for (name, value) in &options.extra_headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConnectError::Protocol(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| ConnectError::Protocol(format!("invalid value for header {name}")))?;
        request.headers_mut().append(name, value);
    }
    let config = websocket_config();
    let (socket, _response) = connect_async_tls_with_config(request, Some(config), true, None)
        .await
        .map_err(|error| match error {
            tungstenite::Error::Http(response) => ConnectError::Protocol(format!(
                "websocket upgrade refused with http {}",
                response.status()
            )),
            tungstenite::Error::Url(error) => {
                ConnectError::Protocol(format!("invalid gateway url: {error}"))
            }
            other => ConnectError::Io(other.to_string()),
        })?;
    Ok(socket)
}

/// Waits for the challenge, sends `connect` and reads its response.
pub(super) async fn handshake(
    socket: &mut Socket,
    options: &ConnectOptions,
) -> Result<HelloOk, ConnectError> {
    let challenge = loop {
        let text = next_text(socket).await?;
        if let Frame::Event(event) = parse_handshake_frame(&text)?
            && event.event == CHALLENGE_EVENT
        {
            break serde_json::from_value::<ConnectChallenge>(event.payload).map_err(|error| {
                ConnectError::Protocol(format!("malformed connect.challenge: {error}"))
            })?;
        }
    };

    let auth = ConnectAuth::new(
        options.token.expose_secret(),
        options
            .device_token
            .as_ref()
            .map(ExposeSecret::expose_secret),
    );
    let device = options.identity.as_ref().map(|identity| {
        identity.sign_connect(&DeviceAuthClaims {
            client_id: CLIENT_ID,
            client_mode: CLIENT_MODE,
            role: OPERATOR_ROLE,
            scopes: REQUIRED_SCOPES,
            signed_at_ms: challenge.ts,
            token: auth.signed_token(),
            nonce: &challenge.nonce,
            platform: CLIENT_PLATFORM,
            device_family: "",
        })
    });
    let params = serde_json::to_value(ConnectParams::new(auth, device))
        .map_err(|error| ConnectError::Protocol(format!("cannot encode connect: {error}")))?;
    let frame =
        serde_json::to_string(&RequestFrame::new(CONNECT_REQUEST_ID, "connect", &params))
            .map_err(|error| ConnectError::Protocol(format!("cannot encode connect: {error}")))?;
    drop(params);
    socket
        .send(Message::text(frame))
        .await
        .map_err(|error| ConnectError::Io(error.to_string()))?;

    loop {
        let text = next_text(socket).await?;
        let Frame::Response(response) = parse_handshake_frame(&text)? else {
            continue;
        };
        if response.id != CONNECT_REQUEST_ID {
            continue;
        }
        return match response.result {
            Ok(payload) => {
                HelloOk::from_payload(&payload).map_err(|error| ConnectError::Protocol(error.0))
            }
            Err(error) => Err(classify_connect_error(error)),
        };
    }
}

fn parse_handshake_frame(text: &str) -> Result<Frame<'_>, ConnectError> {
    Frame::parse(text).map_err(|error| ConnectError::Protocol(error.to_string()))
}

/// The next text frame of the handshake; a close here is the gateway refusing us.
async fn next_text(socket: &mut Socket) -> Result<String, ConnectError> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => {
                let reason = remote_close(frame);
                return Err(match reason {
                    CloseReason::Remote { code: 1008, reason } => {
                        ConnectError::Auth(GatewayError {
                            code: "POLICY_VIOLATION".to_owned(),
                            message: reason,
                            details: None,
                            retryable: false,
                            retry_after_ms: None,
                        })
                    }
                    other => ConnectError::Io(format!("closed during handshake: {other}")),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(ConnectError::Io(error.to_string())),
            None => {
                return Err(ConnectError::Io(
                    "socket ended during the handshake".to_owned(),
                ));
            }
        }
    }
}

pub(super) fn classify_connect_error(error: GatewayError) -> ConnectError {
    if error.code == "NOT_PAIRED" && error.detail_code() == Some("PAIRING_REQUIRED") {
        return ConnectError::PairingRequired {
            request_id: error.detail_str("requestId").unwrap_or_default().to_owned(),
            device_id: error.detail_str("deviceId").unwrap_or_default().to_owned(),
        };
    }
    if error.code == "UNAVAILABLE" {
        return ConnectError::Unavailable {
            retry_after: error.retry_after_ms.map(Duration::from_millis),
            message: error.message,
        };
    }
    ConnectError::Auth(error)
}

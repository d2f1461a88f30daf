//! The edge's client of the gateway bridge: gateway RPC calls and the VNC tunnel, stamped
//! with the edge's service token and the operator the edge authenticated.

use clawfleet_kit::tls::ServiceTls;
use std::time::Duration;

use clawfleet_contracts::bridge::v1::{
    CallRequest, GatewayError, VncTunnelRequest, VncTunnelResponse, call_response::Outcome,
    gateway_bridge_service_client::GatewayBridgeServiceClient,
};
use clawfleet_kit::identity::Caller;
use tokio_stream::Stream;
use tonic::{Request, Streaming};

use crate::{
    error::ApiError,
    upstream::{Stamper, UpstreamClientError, lazy_channel},
};

/// Named in errors about the upstream.
const SERVICE_NAME: &str = "gateway bridge";
/// Largest gRPC message exchanged with the bridge.
const MAX_MESSAGE_BYTES: usize = 26 * 1024 * 1024;

/// What a gateway answered: a result, or its own error frame.
pub enum RpcOutcome {
    Result(serde_json::Value),
    GatewayError(GatewayError),
}

#[derive(Clone, Debug)]
pub struct BridgeClient {
    client: GatewayBridgeServiceClient<clawfleet_kit::client::GrpcChannel>,
    stamper: Stamper,
}

impl BridgeClient {
    /// Builds the client without connecting; must run inside a tokio runtime.
    pub fn connect_lazy(
        address: &str,
        tls: Option<&ServiceTls>,
        service_token: &str,
    ) -> Result<Self, UpstreamClientError> {
        let client =
            GatewayBridgeServiceClient::new(lazy_channel(address, tls, |endpoint| endpoint)?)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self {
            client,
            stamper: Stamper::new(service_token)?,
        })
    }

    fn stamped<T>(&self, caller: &Caller, message: T) -> Result<Request<T>, ApiError> {
        self.stamper.stamped(caller, message)
    }

    /// Calls `method` on the instance's gateway; the bridge enforces `deadline`.
    pub async fn call(
        &self,
        caller: &Caller,
        instance_id: String,
        method: String,
        params: serde_json::Map<String, serde_json::Value>,
        deadline: Duration,
    ) -> Result<RpcOutcome, ApiError> {
        let mut request = self.stamped(
            caller,
            CallRequest {
                instance_id,
                method,
                params: Some(clawfleet_contracts::json::json_object_to_struct(params)),
            },
        )?;
        request.set_timeout(deadline);
        let response = self
            .client
            .clone()
            .call(request)
            .await
            .map_err(|status| ApiError::from_upstream_status(&status, SERVICE_NAME))?;
        match response.into_inner().outcome {
            Some(Outcome::Result(value)) => Ok(RpcOutcome::Result(
                clawfleet_contracts::json::value_to_json(value),
            )),
            Some(Outcome::Error(error)) => Ok(RpcOutcome::GatewayError(error)),
            None => Err(ApiError::internal(
                "gateway bridge answered without an outcome",
            )),
        }
    }

    /// Opens a VNC tunnel to the instance; `outbound` carries the bytes to send after the
    /// edge names the instance.
    pub async fn vnc_tunnel(
        &self,
        caller: &Caller,
        outbound: impl Stream<Item = VncTunnelRequest> + Send + 'static,
    ) -> Result<Streaming<VncTunnelResponse>, ApiError> {
        let request = self.stamped(caller, outbound)?;
        let response = self
            .client
            .clone()
            .vnc_tunnel(request)
            .await
            .map_err(|status| ApiError::from_upstream_status(&status, SERVICE_NAME))?;
        Ok(response.into_inner())
    }
}

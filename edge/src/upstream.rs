//! What every gRPC client of the edge shares: a lazily connected channel to a service,
//! and requests stamped with the edge's service token and the caller the edge
//! authenticated.

use clawfleet_kit::{
    client::{self, GrpcChannel, InvalidAddress},
    identity::{Caller, ServiceCredentials},
    tls::ServiceTls,
};
use tonic::{Request, transport::Endpoint};

use crate::error::ApiError;

/// Why a service client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamClientError {
    #[error(transparent)]
    Address(#[from] InvalidAddress),
    #[error("the service token cannot be sent as grpc metadata")]
    ServiceToken,
}

/// The kit's channel to a service at `host:port` (over service TLS when configured);
/// `configure` adds per-service settings.
pub fn lazy_channel(
    address: &str,
    tls: Option<&ServiceTls>,
    configure: impl FnOnce(Endpoint) -> Endpoint,
) -> Result<GrpcChannel, UpstreamClientError> {
    Ok(client::lazy_channel_with(address, tls, configure)?)
}

/// Stamps requests with the edge's service token and the caller the edge authenticated
/// (the operator on `/api`, the app user on the App API).
#[derive(Clone, Debug)]
pub struct Stamper {
    credentials: ServiceCredentials,
}

impl Stamper {
    pub fn new(service_token: &str) -> Result<Self, UpstreamClientError> {
        let credentials = ServiceCredentials::new(service_token)
            .map_err(|_| UpstreamClientError::ServiceToken)?;
        Ok(Self { credentials })
    }

    pub fn stamped<T>(&self, caller: &Caller, message: T) -> Result<Request<T>, ApiError> {
        let mut request = Request::new(message);
        self.credentials
            .stamp(&mut request, caller)
            .map_err(|status| ApiError::internal(format_args!("cannot stamp request: {status}")))?;
        Ok(request)
    }
}

//! gRPC channels between services, all built the same way: lazily connected, no Nagle,
//! a connect timeout, and keepalives on both HTTP/2 and TCP so a peer that silently
//! disappeared (a dropped node, a black-holed path) is noticed within seconds instead of
//! leaving a stream — and the cache it feeds — waiting forever.

use std::time::Duration;

use tonic::transport::Endpoint;

pub use crate::grpc_client_tracing::GrpcChannel;
use crate::{grpc_client_tracing::traced, tls::ServiceTls};

/// How long establishing the TCP connection to a service may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings on an otherwise quiet connection, and how long an answer may take.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP keepalive probes start after this much silence.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// An address that cannot be a gRPC endpoint (or, with service TLS, whose TLS settings
/// cannot be used).
#[derive(Debug, thiserror::Error)]
#[error("invalid service address {address:?}: {source}")]
pub struct InvalidAddress {
    pub address: String,
    source: tonic::transport::Error,
}

/// The endpoint of a service at `host:port`, with the platform's connection settings;
/// with `tls`, over TLS to a server whose certificate names `host` and chains to the
/// platform CA, presenting this service's certificate.
pub fn endpoint(address: &str, tls: Option<&ServiceTls>) -> Result<Endpoint, InvalidAddress> {
    let invalid = |source| InvalidAddress {
        address: address.to_owned(),
        source,
    };
    let endpoint = match tls {
        Some(tls) => Endpoint::from_shared(format!("https://{address}"))
            .and_then(|endpoint| endpoint.tls_config(tls.client_config()))
            .map_err(invalid)?,
        None => Endpoint::from_shared(format!("http://{address}")).map_err(invalid)?,
    };
    Ok(endpoint
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Some(TCP_KEEPALIVE))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// A channel to the service at `host:port` that connects on first use; its calls are
/// traced as client spans carrying the trace context to the server.
pub fn lazy_channel(
    address: &str,
    tls: Option<&ServiceTls>,
) -> Result<GrpcChannel, InvalidAddress> {
    lazy_channel_with(address, tls, |endpoint| endpoint)
}

/// [`lazy_channel`] with the endpoint adjusted first (a call deadline, say).
pub fn lazy_channel_with(
    address: &str,
    tls: Option<&ServiceTls>,
    configure: impl FnOnce(Endpoint) -> Endpoint,
) -> Result<GrpcChannel, InvalidAddress> {
    Ok(traced(configure(endpoint(address, tls)?).connect_lazy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_host_and_port() {
        assert!(endpoint("127.0.0.1:4101", None).is_ok());
        let error = endpoint("not an address", None).unwrap_err();
        assert!(error.to_string().starts_with("invalid service address"));
    }
}

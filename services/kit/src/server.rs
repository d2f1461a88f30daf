//! gRPC server bootstrap shared by every service: the service's own routes plus the
//! gRPC health protocol and server reflection (v1 and v1alpha, so both current tools
//! and grpcurl 1.8, which speaks only v1alpha, can list and describe services).

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::ServingStatus;

use crate::{
    access_layer::AccessLayer, client, grpc_tracing, identity::Credentials, metrics::grpc_server,
    shutdown::ShutdownToken,
};

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("reflection setup failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the service TLS certificate or key cannot be used: {0}")]
    Tls(tonic::transport::Error),
}

/// Binds a TCP listener, naming the address when it fails.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Bind { address, source })
}

/// Serves `routes` on `listener` with health and reflection until `shutdown` is
/// cancelled; in-flight calls are allowed to finish. `service_names` are the fully
/// qualified names reported as SERVING by the health service. Every call passes the
/// access layer first: `credentials` say who is calling, the method table whether they may.
pub async fn serve_grpc(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&'static str],
    credentials: Credentials,
    shutdown: ShutdownToken,
) -> Result<(), ServerError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in service_names {
        health_reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let reflection_v1 = reflection_builder().build_v1()?;
    let reflection_v1alpha = reflection_builder().build_v1alpha()?;
    let local_address = listener.local_addr().ok();
    tracing::info!(address = ?local_address, services = ?service_names, "grpc server listening");

    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(client::TCP_KEEPALIVE));
    // Pings in both directions: a client that vanished is dropped, and its streams end.
    // Every call is traced, continuing the caller's trace, counted and timed, then admitted
    // or refused.
    let server = match &credentials.tls {
        // With service TLS on, plaintext and callers without a certificate of the
        // platform CA fail the handshake, before any request is read.
        Some(tls) => Server::builder()
            .tls_config(tls.server_config())
            .map_err(ServerError::Tls)?,
        None => Server::builder(),
    };
    let mut server = server
        .http2_adaptive_window(Some(true))
        .http2_keepalive_interval(Some(client::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(client::KEEPALIVE_TIMEOUT))
        .layer(grpc_tracing::server_layer())
        .layer(grpc_server::server_layer(service_names))
        .layer(AccessLayer::new(credentials));
    let router = server
        .add_routes(routes)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let names: Vec<&'static str> = service_names.to_vec();
    let drain = async move {
        shutdown.cancelled().await;
        // Tell load balancers and probes first, then let in-flight calls finish.
        for name in names {
            health_reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    };
    router.serve_with_incoming_shutdown(incoming, drain).await?;
    tracing::info!(address = ?local_address, "grpc server stopped");
    Ok(())
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(clawfleet_contracts::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

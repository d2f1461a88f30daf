//! Serving the router on a listener until shutdown.

use axum::serve::ListenerExt;
use clawfleet_kit::shutdown::ShutdownToken;
use tokio::net::TcpListener;

use crate::{config::EdgeConfig, routes::router, state::EdgeState, upstream::UpstreamClientError};

/// Why the edge could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Upstream(#[from] UpstreamClientError),
    #[error("cannot use JWT_SECRET: {0}")]
    AccessTokens(clawfleet_kit::access_token::AccessTokenError),
    #[error("edge http server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves the edge API on `listener` until `shutdown` is cancelled; in-flight requests
/// finish and open watches end, then this returns.
pub async fn serve(
    listener: TcpListener,
    config: EdgeConfig,
    shutdown: ShutdownToken,
) -> Result<(), EdgeError> {
    let state = EdgeState::new(&config, shutdown.clone())?;
    let local_address = listener.local_addr().ok();
    tracing::info!(
        address = ?local_address,
        lifecycle = %config.lifecycle_address,
        "edge listening"
    );
    let listener = listener.tap_io(|connection| {
        if let Err(error) = connection.set_nodelay(true) {
            tracing::debug!(%error, "cannot set tcp_nodelay on an accepted connection");
        }
    });
    // The peer address keys the sign-in rate limit.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(EdgeError::Serve)?;
    tracing::info!(address = ?local_address, "edge stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::test_support::test_config;

    #[tokio::test]
    async fn serves_until_the_shutdown_token_is_cancelled() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = ShutdownToken::new();
        let server = tokio::spawn(serve(listener, test_config(1024), shutdown.clone()));

        let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
        connection
            .write_all(b"GET /health HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        connection.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with(r#"{"ok":true}"#), "{answer}");

        shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
        assert!(stopped.is_ok());
    }

    #[tokio::test]
    async fn a_bad_lifecycle_address_stops_the_start() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = test_config(1024);
        config.lifecycle_address = "bad address:1".to_owned();
        let error = serve(listener, config, ShutdownToken::new())
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid service address \"bad address:1\""),
            "{error}"
        );
    }
}

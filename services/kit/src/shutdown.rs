//! Graceful shutdown: one token that every server and background task watches.

pub use tokio_util::sync::CancellationToken as ShutdownToken;

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for sigterm; waiting for ctrl-c only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("sigterm received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("sigint received; shutting down"),
    }
}

/// A token that is cancelled when the process receives SIGTERM or SIGINT.
pub fn token_cancelled_on_signal() -> ShutdownToken {
    let token = ShutdownToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        termination_signal().await;
        cancel.cancel();
    });
    token
}

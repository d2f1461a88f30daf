//! `GET /metrics`. Prometheus asks for OpenMetrics in its `Accept` header and gets it;
//! anything else (curl, `promtool check metrics`, which reads only the older format)
//! gets the Prometheus text format 0.0.4, as the official clients answer.

use axum::{Router, http::HeaderMap, response::IntoResponse, routing::get};
use http::{StatusCode, header};
use prometheus_client::encoding::{prometheus_text, text};
use tokio::net::TcpListener;

use crate::shutdown::ShutdownToken;

/// The path every metrics endpoint serves.
pub const PATH: &str = "/metrics";

const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which exposition format a scrape asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics only when it names it.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::PrometheusText => prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Every registered metric, encoded in `format`.
pub fn encode(format: Format) -> Result<String, std::fmt::Error> {
    let registry = super::registry::lock();
    let mut body = String::new();
    match format {
        Format::OpenMetrics => text::encode(&mut body, &registry)?,
        Format::PrometheusText => prometheus_text::encode(&mut body, &registry)?,
    }
    Ok(body)
}

/// The axum handler of `GET /metrics`.
pub async fn handler(headers: HeaderMap) -> impl IntoResponse {
    let format = Format::negotiate(
        headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok()),
    );
    match encode(format) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, format.content_type())],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A router serving only `GET /metrics`, for a service's own metrics port.
pub fn router() -> Router {
    Router::new().route(PATH, get(handler))
}

/// Serves `/metrics` on `listener` until `shutdown`: the small HTTP port of a gRPC
/// service, kept apart from its gRPC port so it never sits on a public path.
pub async fn serve(listener: TcpListener, shutdown: ShutdownToken) -> std::io::Result<()> {
    let address = listener.local_addr().ok();
    tracing::info!(address = ?address, "metrics listening");
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
#[path = "exposition_tests.rs"]
mod tests;

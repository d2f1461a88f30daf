//! The edge's metrics: every HTTP request by route template (the matched path, never
//! the raw one: `unmatched` when no route matched), method and status class, with its
//! time to the response head; and requests the sign-in rate limit turned away.
//! `GET /metrics` itself is served outside these layers (and outside the API key).

use std::{sync::LazyLock, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use clawfleet_kit::metrics::{self, buckets, registry::MakeHistogram};
use http::Method;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
};

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimiterLabels {
    limiter: &'static str,
}

struct EdgeMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, MakeHistogram>,
    rate_limited: Family<LimiterLabels, Counter>,
}

static METRICS: LazyLock<EdgeMetrics> = LazyLock::new(|| {
    let metrics = new_metrics();
    // A zero from the start: the first turned-away request is seen as an increase.
    metrics
        .rate_limited
        .get_or_create(&LimiterLabels { limiter: "auth" })
        .inc_by(0);
    metrics
});

fn new_metrics() -> EdgeMetrics {
    EdgeMetrics {
        requests: metrics::counter(
            "clawfleet_http_server_requests",
            "HTTP requests the edge answered, by route template, method and status class (2xx..5xx).",
        ),
        duration: metrics::histogram(
            "clawfleet_http_server_request_duration_seconds",
            "Time from an HTTP request's arrival to its response head, by route template and method.",
            || Histogram::new(buckets::REQUEST_SECONDS.iter().copied()),
        ),
        rate_limited: metrics::counter(
            "clawfleet_edge_rate_limited_requests",
            "Requests a rate limit of the edge answered 429, by limiter.",
        ),
    }
}

/// Registers the edge's families so a scrape lists them before any request.
pub fn register() {
    LazyLock::force(&METRICS);
}

/// A method label: the standard methods by name, anything else `other` (a client may
/// send any token as a method).
pub fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", |known| match *known {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            Method::CONNECT => "CONNECT",
            _ => "TRACE",
        })
}

/// `1xx`..`5xx`.
pub fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The middleware counting and timing every request (a layer of the whole router).
pub async fn record_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    METRICS
        .duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
            method,
        })
        .observe(started.elapsed().as_secs_f64());
    METRICS
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status_class: status_class(response.status()),
        })
        .inc();
    response
}

/// Counts one request `limiter` turned away.
pub fn rate_limited(limiter: &'static str) {
    METRICS
        .rate_limited
        .get_or_create(&LimiterLabels { limiter })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_statuses_map_to_bounded_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(status_class(http::StatusCode::NOT_FOUND), "4xx");
        assert_eq!(status_class(http::StatusCode::BAD_GATEWAY), "5xx");
        assert_eq!(status_class(http::StatusCode::CREATED), "2xx");
    }
}

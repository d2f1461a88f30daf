//! One server span per HTTP request, named by the route template (`POST
//! /api/instances/{userId}`, never the raw path), continuing the caller's W3C `traceparent`
//! or starting a trace. Attributes follow the OpenTelemetry HTTP conventions; no header
//! value, token, query or body is ever recorded.

use std::time::Duration;

use axum::extract::MatchedPath;
use http::{Request, Response};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{MakeSpan, OnResponse, TraceLayer},
};
use tracing::{Span, field::Empty};

use clawfleet_kit::trace_context;

/// The tower layer that traces every request of the edge.
pub type HttpTraceLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    HttpServerSpan,
    (),
    RecordHttpStatus,
    (),
    (),
    (),
>;

/// The tracing layer for the edge's router.
pub fn layer() -> HttpTraceLayer {
    TraceLayer::new_for_http()
        .make_span_with(HttpServerSpan)
        .on_request(())
        .on_response(RecordHttpStatus)
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

/// Makes the server span of a request.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpServerSpan;

impl<B> MakeSpan<B> for HttpServerSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let method = request.method().as_str();
        // A request no route matched is named by its method alone: the raw path is
        // unbounded and may carry anything.
        let template = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let span = tracing::info_span!(
            "http.server",
            otel.name = match template {
                Some(template) => format!("{method} {template}"),
                None => method.to_owned(),
            },
            otel.kind = "server",
            http.request.method = method,
            url.template = template,
            http.route = template,
            http.response.status_code = Empty,
            otel.status_code = Empty,
        );
        trace_context::continue_from(&span, request.headers());
        span
    }
}

/// Records the response status; a 5xx marks the span as an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordHttpStatus;

impl<B> OnResponse<B> for RecordHttpStatus {
    fn on_response(self, response: &Response<B>, _latency: Duration, span: &Span) {
        let status = response.status();
        // As i64: OpenTelemetry has no unsigned integers (a u64 would become a string).
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
}

#[cfg(test)]
#[path = "http_tracing_tests.rs"]
mod tests;

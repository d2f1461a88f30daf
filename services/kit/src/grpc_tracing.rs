//! The one tracing layer of every gRPC server (added by [`crate::server`]): each call
//! becomes a server span named `<package.Service>/<Method>` that continues the caller's
//! W3C trace context from the request metadata, with the OpenTelemetry RPC attributes
//! (`rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`) and the
//! authenticated caller's role and principal (`clawfleet.caller.role`,
//! `clawfleet.caller.principal`, recorded by the access layer). Health checks and
//! reflection get no span: probes every few seconds would bury the real traces.

use std::time::Duration;

use http::{HeaderMap, Request, Response};
use tower_http::{
    classify::{GrpcErrorsAsFailures, SharedClassifier},
    trace::{MakeSpan, OnEos, OnResponse, TraceLayer},
};
use tracing::{Span, field::Empty};

use crate::{
    identity::{ROLE_METADATA_KEY, Role},
    trace_context,
};

/// The tower layer that traces every call of a gRPC server.
pub type GrpcServerTraceLayer = TraceLayer<
    SharedClassifier<GrpcErrorsAsFailures>,
    GrpcServerSpan,
    (),
    RecordGrpcStatus,
    (),
    RecordGrpcStatus,
    (),
>;

/// The tracing layer for a gRPC server.
pub fn server_layer() -> GrpcServerTraceLayer {
    TraceLayer::new_for_grpc()
        .make_span_with(GrpcServerSpan)
        .on_request(())
        .on_response(RecordGrpcStatus)
        .on_body_chunk(())
        .on_eos(RecordGrpcStatus)
        .on_failure(())
}

/// `(rpc.service, rpc.method)` of a gRPC request path `/<package.Service>/<Method>`.
pub fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// Services whose calls are not traced: probes and tooling, not requests.
fn is_untraced(service: &str) -> bool {
    service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.")
}

/// Makes the server span of a call.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcServerSpan;

impl<B> MakeSpan<B> for GrpcServerSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let Some((service, method)) = service_and_method(request.uri().path()) else {
            return Span::none();
        };
        if is_untraced(service) {
            return Span::none();
        }
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = format_args!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
            // Recorded by the access layer once the caller is authenticated: what a
            // request's metadata claims is not yet who it is.
            clawfleet.caller.role = Empty,
            clawfleet.caller.principal = Empty,
        );
        trace_context::continue_from(&span, request.headers());
        span
    }
}

/// The role the calling service stamped (`app`, `operator`, `service`), only when it is
/// one of those: a metadata value is never copied into a span as it came.
pub fn caller_role(headers: &HeaderMap) -> Option<&'static str> {
    let name = headers.get(ROLE_METADATA_KEY)?.to_str().ok()?;
    Role::from_name(name).map(Role::as_str)
}

/// Records `grpc-status` on the span: from the response headers of a trailers-only
/// answer (errors), or from the trailers at the end of the stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordGrpcStatus;

impl<B> OnResponse<B> for RecordGrpcStatus {
    fn on_response(self, response: &Response<B>, _latency: Duration, span: &Span) {
        record_status(response.headers(), span);
    }
}

impl OnEos for RecordGrpcStatus {
    fn on_eos(self, trailers: Option<&HeaderMap>, _duration: Duration, span: &Span) {
        if let Some(trailers) = trailers {
            record_status(trailers, span);
        }
    }
}

/// The numeric gRPC status in `headers`, if there is one.
pub fn grpc_status(headers: &HeaderMap) -> Option<i64> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

fn record_status(headers: &HeaderMap, span: &Span) {
    record_status_on(headers, span, server_failed);
}

/// Server spans are errors only for the codes that mean the server failed
/// (docs/product/traces.md, "Status").
fn server_failed(code: i64) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// Records the `grpc-status` in `headers` on `span`, marking it an error when `failed`
/// says the code is one for this side of the call.
pub(crate) fn record_status_on(headers: &HeaderMap, span: &Span, failed: fn(i64) -> bool) {
    if let Some(code) = grpc_status(headers) {
        span.record("rpc.grpc.status_code", code);
        if failed(code) {
            span.record("otel.status_code", "ERROR");
        }
    }
}

#[cfg(test)]
#[path = "grpc_tracing_tests.rs"]
mod tests;

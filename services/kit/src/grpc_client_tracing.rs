//! The one tracing layer of every gRPC client channel (built by [`crate::client`]): each
//! call becomes a client span named `<package.Service>/<Method>` with the OpenTelemetry
//! RPC attributes, and the span's W3C trace context goes into the request metadata, so
//! the server's span (see [`crate::grpc_tracing`]) becomes its child. Injecting here,
//! under the client span, is what makes the server span a child of the call rather than
//! of whatever the caller was doing.

use std::time::Duration;

use http::{HeaderMap, Request, Response};
use tonic::{body::Body, transport::Channel};
use tower::{Layer, util::MapRequest};
use tower_http::{
    classify::{GrpcErrorsAsFailures, SharedClassifier},
    trace::{MakeSpan, OnEos, OnResponse, Trace, TraceLayer},
};
use tracing::{Span, field::Empty};

use crate::{
    grpc_tracing::{caller_role, record_status_on, service_and_method},
    trace_context,
};

/// Writes the current (client) span's trace context into the request's metadata.
type InjectContext = fn(Request<Body>) -> Request<Body>;

/// A gRPC channel whose calls are traced as client spans.
pub type GrpcChannel = Trace<
    MapRequest<Channel, InjectContext>,
    SharedClassifier<GrpcErrorsAsFailures>,
    GrpcClientSpan,
    (),
    RecordClientStatus,
    (),
    RecordClientStatus,
    (),
>;

/// Wraps `channel` so every call through it is traced.
pub fn traced(channel: Channel) -> GrpcChannel {
    let inject: InjectContext = inject_context;
    TraceLayer::new_for_grpc()
        .make_span_with(GrpcClientSpan)
        .on_request(())
        .on_response(RecordClientStatus)
        .on_body_chunk(())
        .on_eos(RecordClientStatus)
        .on_failure(())
        .layer(MapRequest::new(channel, inject))
}

fn inject_context(mut request: Request<Body>) -> Request<Body> {
    // The trace layer calls the inner service inside the client span, so the current
    // span here is the call's own.
    trace_context::inject_current(request.headers_mut());
    request
}

/// Makes the client span of a call.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcClientSpan;

impl<B> MakeSpan<B> for GrpcClientSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let Some((service, method)) = service_and_method(request.uri().path()) else {
            return Span::none();
        };
        tracing::info_span!(
            "grpc.client",
            otel.name = format_args!("{service}/{method}"),
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
            clawfleet.caller.role = caller_role(request.headers()),
        )
    }
}

/// Records `grpc-status` on the client span; every status but OK makes it an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordClientStatus;

impl<B> OnResponse<B> for RecordClientStatus {
    fn on_response(self, response: &Response<B>, _latency: Duration, span: &Span) {
        record_status(response.headers(), span);
    }
}

impl OnEos for RecordClientStatus {
    fn on_eos(self, trailers: Option<&HeaderMap>, _duration: Duration, span: &Span) {
        if let Some(trailers) = trailers {
            record_status(trailers, span);
        }
    }
}

fn record_status(headers: &HeaderMap, span: &Span) {
    // On the client side every code but OK is an error (docs/product/traces.md,
    // "Status").
    record_status_on(headers, span, |code| code != 0);
}

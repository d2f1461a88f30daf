//! The one metrics layer of every gRPC server (added by [`crate::server::serve_grpc`]):
//! `clawfleet_grpc_server_requests_total` by service, method and status class,
//! `clawfleet_grpc_server_request_duration_seconds` by service and method (for a stream,
//! until its trailers), and `clawfleet_grpc_server_in_flight_requests` by service.
//!
//! Labels stay bounded whatever a client sends: a service the server does not serve is
//! `other`, and a call answered Unimplemented (an unknown method) is `other/other`.
//! Health checks and reflection are not counted: probes are not requests.

use std::{
    pin::Pin,
    sync::{Arc, LazyLock},
    task::{Context, Poll, ready},
    time::Instant,
};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
};
use tower::{Layer, Service};

use super::registry::{self, MakeHistogram};
use crate::grpc_tracing::{grpc_status, service_and_method};

/// Label value standing for any service or method outside the known set.
pub const OTHER: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    rpc_service: String,
    rpc_method: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    rpc_service: String,
    rpc_method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    rpc_service: String,
}

struct GrpcServerMetrics {
    requests: Family<CallLabels, Counter>,
    duration: Family<MethodLabels, Histogram, MakeHistogram>,
    in_flight: Family<ServiceLabels, Gauge>,
}

static METRICS: LazyLock<GrpcServerMetrics> = LazyLock::new(|| GrpcServerMetrics {
    requests: registry::counter(
        "clawfleet_grpc_server_requests",
        "gRPC calls handled, by service, method and status class (ok, client_error, server_error, cancelled).",
    ),
    duration: registry::histogram(
        "clawfleet_grpc_server_request_duration_seconds",
        "Time from a gRPC call's arrival to its status (for a stream, its end).",
        || Histogram::new(super::buckets::REQUEST_SECONDS.iter().copied()),
    ),
    in_flight: registry::gauge(
        "clawfleet_grpc_server_in_flight_requests",
        "gRPC calls being handled now (open streams included).",
    ),
});

/// Registers the families so a scrape lists them before the first call.
pub fn register() {
    LazyLock::force(&METRICS);
}

/// The class of a numeric gRPC status: the codes that mean the server failed follow
/// the OpenTelemetry convention for server spans (UNKNOWN, DEADLINE_EXCEEDED,
/// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS).
pub fn status_class(code: i64) -> &'static str {
    match code {
        0 => "ok",
        2 | 4 | 12 | 13 | 14 | 15 => "server_error",
        _ => "client_error",
    }
}

/// Health checks and reflection: probes and tooling, not requests.
fn is_probe(service: &str) -> bool {
    service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.")
}

/// The tower layer for a server serving `services` (their fully qualified names).
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    services: Arc<[&'static str]>,
}

/// The metrics layer of a gRPC server serving `services`.
pub fn server_layer(services: &[&'static str]) -> GrpcMetricsLayer {
    register();
    // A zero per served service: a scrape before the first call names them.
    for service in services.iter().filter(|service| !is_probe(service)) {
        METRICS
            .in_flight
            .get_or_create(&ServiceLabels {
                rpc_service: (*service).to_owned(),
            })
            .inc_by(0);
    }
    GrpcMetricsLayer {
        services: services.into(),
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            services: self.services.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
    services: Arc<[&'static str]>,
}

impl<S> GrpcMetrics<S> {
    /// The call's labels, or `None` for calls not counted (probes, reflection).
    fn start<B>(&self, request: &Request<B>) -> Option<CallRecord> {
        let (service, method) = service_and_method(request.uri().path()).unwrap_or((OTHER, OTHER));
        if is_probe(service) {
            return None;
        }
        let (service, method) = match self.services.iter().find(|known| **known == service) {
            Some(known) => (*known, method),
            None => (OTHER, OTHER),
        };
        Some(CallRecord::start(service, method))
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<MetricsBody<ResBody>>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let record = self.start(&request);
        MetricsFuture {
            inner: self.inner.call(request),
            record,
        }
    }
}

/// One call being counted; recorded exactly once: at its status, or as `cancelled`
/// when dropped before one (the client went away).
struct CallRecord {
    service: &'static str,
    method: String,
    started: Instant,
    done: bool,
}

impl CallRecord {
    fn start(service: &'static str, method: &str) -> Self {
        METRICS
            .in_flight
            .get_or_create(&ServiceLabels {
                rpc_service: service.to_owned(),
            })
            .inc();
        Self {
            service,
            method: method.to_owned(),
            started: Instant::now(),
            done: false,
        }
    }

    fn finish(&mut self, status_class: &'static str, unimplemented: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        METRICS
            .in_flight
            .get_or_create(&ServiceLabels {
                rpc_service: self.service.to_owned(),
            })
            .dec();
        // An unknown method is answered Unimplemented by the router: its name came from
        // the client and is not kept.
        let (service, method) = if unimplemented {
            (OTHER.to_owned(), OTHER.to_owned())
        } else {
            (self.service.to_owned(), std::mem::take(&mut self.method))
        };
        METRICS
            .duration
            .get_or_create(&MethodLabels {
                rpc_service: service.clone(),
                rpc_method: method.clone(),
            })
            .observe(self.started.elapsed().as_secs_f64());
        METRICS
            .requests
            .get_or_create(&CallLabels {
                rpc_service: service,
                rpc_method: method,
                status_class,
            })
            .inc();
    }

    /// Records the status in `headers` if they carry one; whether they did.
    fn finish_from(&mut self, headers: &HeaderMap) -> bool {
        match grpc_status(headers) {
            Some(code) => {
                self.finish(status_class(code), code == 12);
                true
            }
            None => false,
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.finish("cancelled", false);
    }
}

pin_project_lite::pin_project! {
    /// The response future: records a trailers-only answer (every error) at once.
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        record: Option<CallRecord>,
    }
}

impl<F, B, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<MetricsBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(context));
        let mut record = this.record.take();
        match result {
            Ok(response) => {
                if let Some(call) = record.as_mut()
                    && call.finish_from(response.headers())
                {
                    record = None;
                }
                Poll::Ready(Ok(response.map(|inner| MetricsBody { inner, record })))
            }
            Err(error) => {
                if let Some(mut call) = record {
                    call.finish("server_error", false);
                }
                Poll::Ready(Err(error))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The response body: records the status found in the trailers.
    pub struct MetricsBody<B> {
        #[pin]
        inner: B,
        record: Option<CallRecord>,
    }
}

impl<B: Body> Body for MetricsBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(context));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(trailers), Some(call)) = (frame.trailers_ref(), this.record.as_mut()) {
                    call.finish_from(trailers);
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.record.as_mut() {
                    call.finish("server_error", false);
                }
            }
            None => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "grpc_server_tests.rs"]
mod tests;

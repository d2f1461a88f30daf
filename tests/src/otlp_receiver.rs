//! A real OTLP/gRPC trace receiver on loopback: the OpenTelemetry proto's `TraceService`
//! served with tonic, keeping every span it is sent (or only counting them, for
//! benchmarks that send many).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, transport::server::TcpIncoming};

/// The spans a receiver got.
#[derive(Clone, Default)]
pub struct OtlpReceiver {
    spans: Arc<Mutex<Vec<Span>>>,
    received: Arc<AtomicU64>,
    keep: bool,
}

#[tonic::async_trait]
impl TraceService for OtlpReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        if self.keep {
            let mut kept = self.spans.lock().unwrap();
            let before = kept.len();
            kept.extend(spans);
            self.received
                .fetch_add((kept.len() - before) as u64, Ordering::Relaxed);
        } else {
            self.received
                .fetch_add(spans.count() as u64, Ordering::Relaxed);
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl OtlpReceiver {
    /// A receiver that keeps every span, serving on a free loopback port.
    pub async fn serve() -> (OtlpReceiver, SocketAddr) {
        Self::start(true).await
    }

    /// A receiver that only counts spans.
    pub async fn serve_counting() -> (OtlpReceiver, SocketAddr) {
        Self::start(false).await
    }

    /// Serves on a thread of its own with its own runtime, so decoding spans never
    /// takes a worker from the caller's runtime (a benchmark's load generator).
    async fn start(keep: bool) -> (OtlpReceiver, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let receiver = OtlpReceiver {
            keep,
            ..OtlpReceiver::default()
        };
        let service = TraceServiceServer::new(receiver.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(TcpIncoming::from(listener))
                    .await
            })
        });
        (receiver, address)
    }

    /// The spans of `trace_id` once `wanted` of them have arrived (the batch exporter
    /// sends every few seconds), or what arrived within 30 s.
    pub async fn trace(&self, trace_id: &str, wanted: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|span| hex(&span.trace_id) == trace_id)
                .cloned()
                .collect();
            if wanted(&spans) || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every span kept so far.
    pub fn all(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// How many spans arrived, kept or not.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Lower-case hex of trace and span ids.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

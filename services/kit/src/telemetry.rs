//! Logs and traces: JSON logs on stderr (or text for people), and OTLP trace export
//! (gRPC or HTTP/protobuf) when an OTLP endpoint is set (see [`crate::otel_settings`]); log lines inside a traced span carry its
//! `trace_id` and `span_id`.

use std::io::IsTerminal;

use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::{
    config::{self, EnvSource, keys},
    log_trace_ids::{RecordTraceIds, WithTraceIds},
    otel_settings::{ExportSettings, Protocol},
};

/// Keeps the trace exporter alive; flushes it when dropped.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("trace export shutdown failed: {error}");
        }
    }
}

/// Installs the global subscriber for `service_name`. Call once per process.
pub fn init(service_name: &str, env: &dyn EnvSource) -> TelemetryGuard {
    let filter_text = config::optional(env, keys::RUST_LOG)
        .unwrap_or_else(|| "info,h2=warn,hyper=warn,tower=warn,opentelemetry=warn".to_owned());
    let filter = EnvFilter::try_new(&filter_text).unwrap_or_else(|_| EnvFilter::new("info"));
    let text_logs = wants_text_logs(
        config::optional(env, keys::CLAWFLEET_LOG_FORMAT).as_deref(),
        std::io::stderr().is_terminal(),
    );
    // The filter sits on the log layer only, so spans stay available to the OTLP layer
    // and trace context propagation never breaks on a filtered span.
    // Lines inside a traced span carry its trace_id and span_id.
    let log_layer = if text_logs {
        tracing_subscriber::fmt::layer()
            .event_format(WithTraceIds::new(tracing_subscriber::fmt::format(), false))
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        let json = tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(false);
        tracing_subscriber::fmt::layer()
            .json()
            .event_format(WithTraceIds::new(json, true))
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };

    let provider = match ExportSettings::from_env(env, service_name) {
        Ok(Some(settings)) => match build_provider(settings) {
            Ok(provider) => Some(provider),
            Err(error) => {
                eprintln!("otlp export disabled: {error}");
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            eprintln!("otlp export disabled: {error}");
            None
        }
    };
    let otel_layer = provider.as_ref().map(|provider| {
        // No per-span code location, thread, target or busy/idle timing: attributes
        // nobody reads on these spans, paid for on every request (bench-traces).
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("clawfleet"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(EnvFilter::new(
                "info,h2=off,hyper=off,tower=off,opentelemetry=off",
            ))
    });
    // Libraries that propagate through the global API speak W3C trace context too.
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let _ = tracing_subscriber::registry()
        .with(log_layer)
        .with(otel_layer)
        .with(provider.as_ref().map(|_| RecordTraceIds))
        .try_init();
    TelemetryGuard { provider }
}

/// Text for a person at a terminal, JSON for log collectors; `CLAWFLEET_LOG_FORMAT`
/// (`text` or `json`) decides when set.
fn wants_text_logs(format: Option<&str>, stderr_is_terminal: bool) -> bool {
    match format {
        Some("text") => true,
        Some("json") => false,
        _ => stderr_is_terminal,
    }
}

fn build_provider(
    settings: ExportSettings,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = match settings.protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&settings.endpoint)
            .build()?,
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(&settings.endpoint)
            .build()?,
    };
    let resource = Resource::builder_empty()
        .with_attributes(
            settings
                .resource_attributes
                .into_iter()
                .map(|(key, value)| KeyValue::new(key, value)),
        )
        .with_service_name(settings.service_name)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(settings.sampler)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}

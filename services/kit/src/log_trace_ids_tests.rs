use std::{
    io,
    sync::{Arc, Mutex},
};

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{fmt::MakeWriter, layer::SubscriberExt};

use super::*;

fn ids() -> TraceIds {
    TraceIds {
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
        span_id: "00f067aa0ba902b7".to_owned(),
    }
}

#[test]
fn json_lines_get_the_ids_as_their_last_keys() {
    assert_eq!(
        with_ids("{\"message\":\"hi\"}\n", &ids(), true),
        "{\"message\":\"hi\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":\"00f067aa0ba902b7\"}\n"
    );
    assert_eq!(
        with_ids("{}", &ids(), true),
        "{\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":\"00f067aa0ba902b7\"}"
    );
    assert_eq!(with_ids("not json\n", &ids(), true), "not json\n");
}

#[test]
fn text_lines_end_with_the_ids() {
    assert_eq!(
        with_ids("INFO hi\n", &ids(), false),
        "INFO hi trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7\n"
    );
}

/// Collects what the log layer writes.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn logged_lines(
    json: bool,
    log: impl FnOnce() -> (String, String),
) -> (Vec<String>, String, String) {
    let lines = Lines::default();
    let provider = SdkTracerProvider::builder().build();
    let log_layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .event_format(WithTraceIds::new(
                tracing_subscriber::fmt::format().json().flatten_event(true),
                true,
            ))
            .with_writer(lines.clone())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .event_format(WithTraceIds::new(
                tracing_subscriber::fmt::format().with_ansi(false),
                false,
            ))
            .with_writer(lines.clone())
            .boxed()
    };
    let subscriber = tracing_subscriber::registry()
        .with(log_layer)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(RecordTraceIds);
    let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, log);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    (text.lines().map(str::to_owned).collect(), trace_id, span_id)
}

fn log_in_and_out_of_a_span() -> (String, String) {
    tracing::info!("outside");
    let span = tracing::info_span!("work");
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span.in_scope(|| tracing::info!("inside"));
    (
        span_context.trace_id().to_string(),
        span_context.span_id().to_string(),
    )
}

#[test]
fn json_lines_inside_a_span_carry_its_trace_and_span_ids() {
    let (lines, trace_id, span_id) = logged_lines(true, log_in_and_out_of_a_span);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let outside: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(outside.get("trace_id").is_none());
    let inside: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(inside["message"], "inside");
    assert_eq!(inside["trace_id"], trace_id.as_str());
    assert_eq!(inside["span_id"], span_id.as_str());
    assert_ne!(trace_id, "00000000000000000000000000000000");
}

#[test]
fn text_lines_inside_a_span_carry_its_trace_and_span_ids() {
    let (lines, trace_id, span_id) = logged_lines(false, log_in_and_out_of_a_span);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(!lines[0].contains("trace_id="));
    assert!(
        lines[1].ends_with(&format!("inside trace_id={trace_id} span_id={span_id}")),
        "{}",
        lines[1]
    );
}

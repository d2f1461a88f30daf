//! Logs join traces: every log line written inside a traced span carries that trace's
//! `trace_id` and the innermost traced span's `span_id`, in both log formats (JSON keys,
//! or `trace_id=… span_id=…` at the end of a text line), so a log line leads to its
//! trace and a trace to its logs.
//!
//! The ids are read once, when a span is first entered (its trace context is final by
//! then), and kept in the span's extensions: while an event is being formatted the
//! OpenTelemetry context cannot be asked for, as the dispatcher is busy with the event.

use std::fmt;

use tracing::{Event, Subscriber, span};
use tracing_subscriber::{
    Layer,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::Context,
    registry::LookupSpan,
};

use crate::trace_context;

/// The trace and span ids of one span, in hex.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TraceIds {
    trace_id: String,
    span_id: String,
}

/// Remembers each traced span's ids on its first entry. Sits beside the
/// OpenTelemetry layer in the subscriber.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordTraceIds;

impl<S> Layer<S> for RecordTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if span.extensions().get::<Option<TraceIds>>().is_some() {
            return;
        }
        // The entered span is the current one here.
        let ids =
            trace_context::current_ids().map(|(trace_id, span_id)| TraceIds { trace_id, span_id });
        // `replace`: two threads may enter a new span at once.
        span.extensions_mut().replace(ids);
    }
}

/// Wraps a log line format and adds the ids of the innermost traced span.
#[derive(Clone, Debug)]
pub struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceIds<F> {
    /// `json`: the lines of `inner` are JSON objects; otherwise text.
    pub fn new(inner: F, json: bool) -> Self {
        Self { inner, json }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = ctx.event_scope().and_then(|scope| {
            scope.into_iter().find_map(|span| {
                span.extensions()
                    .get::<Option<TraceIds>>()
                    .cloned()
                    .flatten()
            })
        });
        let Some(ids) = ids else {
            return self.inner.format_event(ctx, writer, event);
        };
        // Colours are dropped on these lines: a line is only ever traced when traces
        // are exported, which is for collectors rather than terminals.
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&with_ids(&line, &ids, self.json))
    }
}

/// `line` with the ids added: as the last keys of a JSON object, or at the end of text.
fn with_ids(line: &str, ids: &TraceIds, json: bool) -> String {
    let body = line.trim_end_matches('\n');
    let newline = &line[body.len()..];
    let TraceIds { trace_id, span_id } = ids;
    if !json {
        return format!("{body} trace_id={trace_id} span_id={span_id}{newline}");
    }
    match body.strip_suffix('}') {
        Some(open) if open.trim_end().ends_with('{') => {
            format!("{open}\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}{newline}")
        }
        Some(open) => {
            format!("{open},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}{newline}")
        }
        None => line.to_owned(),
    }
}

#[cfg(test)]
#[path = "log_trace_ids_tests.rs"]
mod tests;

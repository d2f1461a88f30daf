//! Spans around what a runtime does (docs/product/traces.md, "Lifecycle"): every apply,
//! delete, exec and endpoint lookup, on either runtime, is a span carrying the runtime's
//! name, the instance id and the outcome. Wrapping the runtime once here keeps the spans
//! out of both implementations and out of every call site.

use tracing::{Instrument, Span, field::Empty};

use super::{
    DataRetention, ExecOutput, ExecRequest, GatewayEndpoint, Observed, Runtime, RuntimeError,
    SharedRuntime,
};
use crate::{instance_id::InstanceId, model::InstanceSpec};

/// A runtime whose operations are traced.
pub struct TracedRuntime {
    inner: SharedRuntime,
}

impl TracedRuntime {
    pub fn new(inner: SharedRuntime) -> Self {
        Self { inner }
    }

    fn span(&self, operation: &'static str, id: &InstanceId) -> Span {
        tracing::info_span!(
            "runtime",
            otel.name = format_args!("runtime {operation}"),
            clawfleet.runtime = self.inner.name(),
            clawfleet.runtime.operation = operation,
            clawfleet.instance.id = %id,
            clawfleet.runtime.purge = Empty,
            error.type = Empty,
            otel.status_code = Empty,
        )
    }
}

/// Marks `span` failed with the kind of `result`'s error (never its message).
fn record<T>(span: &Span, result: &Result<T, RuntimeError>) {
    if let Err(error) = result {
        span.record("error.type", error_kind(error));
        span.record("otel.status_code", "ERROR");
    }
}

fn error_kind(error: &RuntimeError) -> &'static str {
    match error {
        RuntimeError::NotFound(_) => "not_found",
        RuntimeError::NotRunning { .. } => "not_running",
        RuntimeError::InvalidExec(_) => "invalid_exec",
        RuntimeError::Io(_) => "io",
        RuntimeError::Unavailable(_) => "unavailable",
        RuntimeError::Misconfigured(_) => "misconfigured",
        RuntimeError::ShuttingDown => "shutting_down",
    }
}

#[tonic::async_trait]
impl Runtime for TracedRuntime {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn apply(&self, spec: &InstanceSpec) -> Result<(), RuntimeError> {
        let span = self.span("apply", &spec.id);
        let result = self.inner.apply(spec).instrument(span.clone()).await;
        record(&span, &result);
        result
    }

    fn applies_in_background(&self) -> bool {
        self.inner.applies_in_background()
    }

    async fn submit(&self, spec: &InstanceSpec, owner: &str) -> Result<(), RuntimeError> {
        if !self.inner.applies_in_background() {
            // Applied at once (the local runtime): traced as the apply it is.
            return self.apply(spec).await;
        }
        let span = self.span("submit", &spec.id);
        let result = self
            .inner
            .submit(spec, owner)
            .instrument(span.clone())
            .await;
        record(&span, &result);
        result
    }

    async fn delete(&self, id: &InstanceId, retention: DataRetention) -> Result<(), RuntimeError> {
        let span = self.span("delete", id);
        span.record("clawfleet.runtime.purge", retention == DataRetention::Purge);
        let result = self
            .inner
            .delete(id, retention)
            .instrument(span.clone())
            .await;
        record(&span, &result);
        result
    }

    fn observe(&self, id: &InstanceId) -> Observed {
        self.inner.observe(id)
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<InstanceId> {
        self.inner.subscribe()
    }

    async fn gateway_endpoint(
        &self,
        id: &InstanceId,
        gateway_token: &str,
    ) -> Result<GatewayEndpoint, RuntimeError> {
        let span = self.span("gateway_endpoint", id);
        let result = self
            .inner
            .gateway_endpoint(id, gateway_token)
            .instrument(span.clone())
            .await;
        record(&span, &result);
        result
    }

    async fn exec(
        &self,
        id: &InstanceId,
        request: ExecRequest,
    ) -> Result<ExecOutput, RuntimeError> {
        // Nothing of the command line is recorded: it is the caller's business and may
        // hold a pairing code.
        let span = self.span("exec", id);
        let result = self.inner.exec(id, request).instrument(span.clone()).await;
        record(&span, &result);
        result
    }

    fn known_instances(&self) -> Vec<InstanceId> {
        self.inner.known_instances()
    }

    fn state_dir(&self, id: &InstanceId) -> Result<std::path::PathBuf, RuntimeError> {
        self.inner.state_dir(id)
    }

    fn gateway_version(&self) -> String {
        self.inner.gateway_version()
    }

    fn set_leading(&self, leading: bool) {
        self.inner.set_leading(leading);
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

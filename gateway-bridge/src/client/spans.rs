//! The spans of a gateway client (docs/product/traces.md, "Bridge"): one per call (method,
//! instance, outcome, the gateway's error code; time waiting for a connection, queued
//! behind the connection's wire window, and in all on the gateway) and one per connect attempt (trigger, outcome, why the previous
//! connection ended). Only closed vocabularies reach attributes: a gateway is hostile,
//! so its free text (error messages, close reasons) never does.

use tracing::{Span, field::Empty};

use super::ClientError;
use crate::{connection::CloseReason, metrics::method_label};

/// What made a connect attempt happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trigger {
    /// A call or subscribe that found no open connection: part of that request's trace.
    Request,
    /// The supervisor reconnecting in the background: a trace of its own.
    Reconnect,
}

/// The span of one gateway call; its parent is the current span (the gRPC `Call`).
pub(super) fn call_span(instance_id: &str, method: &str) -> Span {
    tracing::info_span!(
        "gateway.call",
        otel.name = format_args!("gateway {}", method_label(method)),
        otel.kind = "client",
        clawfleet.instance.id = instance_id,
        clawfleet.gateway.method = method_label(method),
        clawfleet.gateway.outcome = Empty,
        clawfleet.gateway.error_code = Empty,
        clawfleet.gateway.connect_wait_ms = Empty,
        clawfleet.gateway.queue_wait_ms = Empty,
        clawfleet.gateway.call_ms = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// Records how a call ended on its span.
pub(super) fn record_call_outcome<T>(span: &Span, result: &Result<T, ClientError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(error) => {
            span.record("error.type", error_kind(error));
            span.record("otel.status_code", "ERROR");
            if let ClientError::Gateway(error) | ClientError::Auth(error) = error {
                span.record("clawfleet.gateway.error_code", code_label(&error.code));
            }
            error_kind(error)
        }
    };
    span.record("clawfleet.gateway.outcome", outcome);
}

/// The span of one connect attempt: a child of the request that needed it, or a new root
/// for a background reconnect.
pub(super) fn connect_span(
    instance_id: &str,
    attempt: u64,
    trigger: Trigger,
    previous_close: Option<&CloseReason>,
) -> Span {
    let trigger_label = match trigger {
        Trigger::Request => "request",
        Trigger::Reconnect => "reconnect",
    };
    let close = previous_close.map(CloseReason::label);
    let close_code = match previous_close {
        Some(CloseReason::Remote { code, .. }) => Some(i64::from(*code)),
        _ => None,
    };
    macro_rules! connect_span {
        ($($parent:tt)*) => {
            tracing::info_span!(
                $($parent)*
                "gateway.connect",
                otel.name = "gateway connect",
                otel.kind = "client",
                clawfleet.instance.id = instance_id,
                clawfleet.gateway.attempt = attempt,
                clawfleet.gateway.trigger = trigger_label,
                clawfleet.gateway.previous_close = close,
                clawfleet.gateway.previous_close_code = close_code,
                clawfleet.gateway.outcome = Empty,
                error.type = Empty,
                otel.status_code = Empty,
            )
        };
    }
    match trigger {
        Trigger::Request => connect_span!(),
        Trigger::Reconnect => connect_span!(parent: None,),
    }
}

/// Records how a connect attempt ended on its span.
pub(super) fn record_connect_outcome<T>(span: &Span, result: &Result<T, ClientError>) {
    match result {
        Ok(_) => span.record("clawfleet.gateway.outcome", "connected"),
        Err(error) => {
            span.record("error.type", error_kind(error));
            span.record("otel.status_code", "ERROR");
            span.record("clawfleet.gateway.outcome", error_kind(error))
        }
    };
}

/// The kind of a client error, as a closed vocabulary.
pub(super) fn error_kind(error: &ClientError) -> &'static str {
    match error {
        ClientError::NotFound(_) => "not_found",
        ClientError::Unavailable(_) => "unavailable",
        ClientError::NotRunning(_) => "not_running",
        ClientError::InvalidInstance(_) => "invalid_instance",
        ClientError::DeadlineExceeded => "deadline_exceeded",
        ClientError::Overloaded => "overloaded",
        ClientError::Gateway(_) => "gateway_error",
        ClientError::ScopesMissing(_) => "scopes_missing",
        ClientError::PairingRequired { .. } => "pairing_required",
        ClientError::PayloadTooLarge => "payload_too_large",
        ClientError::Auth(_) => "auth_refused",
    }
}

/// A gateway error code (`NOT_PAIRED`, `UNAVAILABLE`, ...) as an attribute; anything that
/// does not look like one is `other`, so a hostile gateway cannot write into the trace.
fn code_label(code: &str) -> &str {
    let code_shaped = (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte == b'_' || byte.is_ascii_digit());
    if code_shaped { code } else { "other" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_code_shaped_gateway_codes_become_attributes() {
        assert_eq!(code_label("NOT_PAIRED"), "NOT_PAIRED");
        assert_eq!(code_label("sk-ant-secret"), "other");
        assert_eq!(code_label(""), "other");
        assert_eq!(code_label(&"A".repeat(65)), "other");
    }
}

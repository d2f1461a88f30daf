//! How lifecycle failures reach callers: store and runtime errors mapped to the kit's
//! error codes, with messages a caller can act on.

use clawfleet_kit::{
    error::{ErrorCode, ServiceError},
    identity::Caller,
};
use tonic::{Request, Status};

use crate::{instance_id::InstanceId, runtime::RuntimeError, store::StoreError};

/// When to retry after the runtime's backend was unavailable (apiserver outages and
/// throttling usually pass within seconds).
pub(super) const RUNTIME_RETRY_AFTER_SECONDS: u32 = 5;
pub(super) fn parse_id(text: &str) -> Result<InstanceId, ServiceError> {
    Ok(InstanceId::parse(text)?)
}

pub(crate) fn store_error(error: StoreError) -> ServiceError {
    match error {
        StoreError::AlreadyExists(id) => ServiceError::new(
            ErrorCode::AlreadyExists,
            format!("instance {id} already exists"),
        ),
        StoreError::QuotaExceeded { owned, kept, quota } => ServiceError::new(
            ErrorCode::FailedPrecondition,
            quota_message(owned, kept, quota),
        ),
        other => ServiceError::internal(other),
    }
}

/// The quota refusal; kept data of deleted instances is named, since it is not visible
/// in the caller's instance list.
fn quota_message(owned: usize, kept: usize, quota: usize) -> String {
    let plural = |count: usize| if count == 1 { "" } else { "s" };
    if kept == 0 {
        return format!(
            "your plan allows {quota} instance{}, and you have {owned}; delete one or upgrade your plan",
            plural(quota)
        );
    }
    format!(
        "your plan allows {quota} instance{}, and you have {owned} plus the kept data of {kept} deleted instance{}, which counts until it is purged; wait for the purge or upgrade your plan (a delete with preservePvc=false frees its slot at once)",
        plural(quota),
        plural(kept)
    )
}

pub(crate) fn runtime_error(error: RuntimeError) -> ServiceError {
    match error {
        RuntimeError::NotFound(id) => ServiceError::not_found(format!("instance {id} not found")),
        RuntimeError::NotRunning { id, reason } => {
            ServiceError::unavailable(format!("instance {id} is not running: {reason}"))
                .with_retry_after(2)
        }
        RuntimeError::InvalidExec(message) => ServiceError::invalid_argument(message),
        RuntimeError::ShuttingDown => ServiceError::unavailable("the platform is shutting down"),
        RuntimeError::Io(error) => ServiceError::internal(error),
        RuntimeError::Unavailable(message) => {
            ServiceError::unavailable(message).with_retry_after(RUNTIME_RETRY_AFTER_SECONDS)
        }
        RuntimeError::Misconfigured(message) => {
            // Not the caller's fault and not transient: the operator reading this error (or
            // the log) must learn which permission or setting to fix, so it is named.
            tracing::error!(error = %message, "the runtime is misconfigured");
            ServiceError::new(ErrorCode::Internal, message)
        }
    }
}

pub(super) fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    Caller::of(request).cloned()
}

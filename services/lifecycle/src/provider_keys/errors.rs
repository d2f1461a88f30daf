//! How provider failures reach callers: each is retryable and says what happened,
//! never the management key or a key value.

use clawfleet_kit::error::{ErrorCode, ServiceError};

use super::ProviderError;

/// Retry hint when the provider gave none.
const RETRY_AFTER_SECONDS: u32 = 5;
/// Retry hint when the platform's management key was refused (an operator must act).
const MISCONFIGURED_RETRY_AFTER_SECONDS: u32 = 60;

/// `error`, met while `doing` (e.g. "creating your AI key"), as a caller should see it.
pub fn provider_error(doing: &str, error: ProviderError) -> ServiceError {
    match error {
        ProviderError::Unauthorized => {
            tracing::error!(%error, "OpenRouter refused the management key; check OPENROUTER_MANAGEMENT_KEY");
            ServiceError::unavailable(format!(
                "the model provider refused the platform's credentials while {doing}; nothing was changed, try again later"
            ))
            .with_retry_after(MISCONFIGURED_RETRY_AFTER_SECONDS)
        }
        ProviderError::RateLimited {
            retry_after_seconds,
        } => ServiceError::new(
            ErrorCode::ResourceExhausted,
            format!("the model provider is busy while {doing}; nothing was changed, try again shortly"),
        )
        .with_retry_after(retry_after_seconds.unwrap_or(RETRY_AFTER_SECONDS).max(1)),
        ProviderError::Timeout => ServiceError::unavailable(format!(
            "the model provider did not answer in time while {doing}; nothing was changed, try again"
        ))
        .with_retry_after(RETRY_AFTER_SECONDS),
        ProviderError::Unavailable(_) | ProviderError::Connect(_) | ProviderError::NotFound
        | ProviderError::Protocol(_) => {
            tracing::warn!(%error, "OpenRouter call failed");
            ServiceError::unavailable(format!(
                "the model provider is unavailable while {doing}; nothing was changed, try again"
            ))
            .with_retry_after(RETRY_AFTER_SECONDS)
        }
    }
}

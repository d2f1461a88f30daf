//! The auth service's metrics: sign-ins by provider (`password`, `google`, `apple`)
//! and outcome, and refresh tokens presented again after rotation (a stolen token, or
//! a client that lost the reply). No label names a user.

use std::sync::LazyLock;

use clawfleet_kit::metrics;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};

use crate::error::AuthError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabels {
    provider: &'static str,
    outcome: &'static str,
}

struct AuthMetrics {
    sign_ins: Family<SignInLabels, Counter>,
    refresh_reuse: Counter,
}

static METRICS: LazyLock<AuthMetrics> = LazyLock::new(|| {
    let refresh_reuse = Counter::default();
    metrics::register(
        "clawfleet_auth_refresh_token_reuse_detections",
        "Rotated refresh tokens presented again; each revokes its token family.",
        refresh_reuse.clone(),
    );
    let sign_ins: Family<SignInLabels, Counter> = metrics::counter(
        "clawfleet_auth_sign_ins",
        "Sign-ins by provider (password, google, apple) and outcome (success, rejected: bad credentials or token, error: the service failed).",
    );
    // Zeros from the start, so the failure-spike alert sees the first ones.
    for provider in ["password", "google", "apple"] {
        for outcome in ["success", "rejected", "error"] {
            sign_ins
                .get_or_create(&SignInLabels { provider, outcome })
                .inc_by(0);
        }
    }
    AuthMetrics {
        sign_ins,
        refresh_reuse,
    }
});

/// Registers the families so a scrape lists them before the first sign-in.
pub fn register() {
    LazyLock::force(&METRICS);
}

/// The outcome label of a sign-in's result.
pub fn outcome<T>(result: &Result<T, AuthError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(AuthError::Internal(_)) => "error",
        Err(_) => "rejected",
    }
}

/// Counts one sign-in through `provider`.
pub fn sign_in<T>(provider: &'static str, result: &Result<T, AuthError>) {
    METRICS
        .sign_ins
        .get_or_create(&SignInLabels {
            provider,
            outcome: outcome(result),
        })
        .inc();
}

/// Counts one refresh token presented again after it was rotated.
pub fn refresh_reuse_detected() {
    METRICS.refresh_reuse.inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_separate_refusals_from_failures() {
        assert_eq!(outcome::<()>(&Ok(())), "success");
        assert_eq!(
            outcome::<()>(&Err(AuthError::InvalidCredentials)),
            "rejected"
        );
        assert_eq!(
            outcome::<()>(&Err(AuthError::Internal("db".into()))),
            "error"
        );
    }
}

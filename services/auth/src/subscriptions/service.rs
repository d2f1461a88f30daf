//! The subscription operations: a user's current plan (read from RevenueCat when the
//! last read is older than the cache time), webhook events, and operators' plans. The
//! caller (the edge) applies any change to the user's instances.

use std::sync::Arc;

use clawfleet_kit::{
    error::{ErrorCode, ServiceError},
    plan::Plan,
};

use super::{
    config::{EntitlementPlans, RevenueCatConfig},
    entitlements::{EventFacts, state_from_entitlements, state_from_event},
    revenuecat::{RevenueCatClient, RevenueCatError},
};
use crate::{
    providers::jwks::HttpClient,
    sessions::now_ms,
    store::{AuthStore, EventRecording, ReceivedEvent, StoreError, SubscriptionRecord},
};

/// Longest event id, user id or event type accepted from a webhook.
const MAX_EVENT_FIELD_CHARS: usize = 200;
/// Said when RevenueCat failed without a retry hint of its own.
const RETRY_AFTER_SECONDS: u32 = 5;

/// Why a subscription operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("user not found")]
    UserNotFound,
    #[error("{0}")]
    InvalidArgument(String),
    #[error(
        "plans follow revenuecat subscriptions on this platform; change the subscription instead"
    )]
    ManagedByRevenueCat,
    #[error(transparent)]
    RevenueCat(#[from] RevenueCatError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SubscriptionError> for ServiceError {
    fn from(error: SubscriptionError) -> Self {
        match error {
            SubscriptionError::UserNotFound => ServiceError::not_found("user not found"),
            SubscriptionError::InvalidArgument(message) => ServiceError::invalid_argument(message),
            SubscriptionError::ManagedByRevenueCat => {
                ServiceError::new(ErrorCode::FailedPrecondition, error.to_string())
            }
            SubscriptionError::RevenueCat(RevenueCatError::RateLimited {
                retry_after_seconds,
            }) => ServiceError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "the subscription service is busy; nothing was changed; retry in {retry_after_seconds} s"
                ),
            )
            .with_retry_after(retry_after_seconds),
            SubscriptionError::RevenueCat(cause) => {
                // The cause (a refused key, a status) is the operator's to see, in the log.
                tracing::warn!(error = %cause, "revenuecat read failed");
                ServiceError::unavailable(format!(
                    "cannot read the subscription from revenuecat right now; nothing was changed; retry in {RETRY_AFTER_SECONDS} s"
                ))
                .with_retry_after(RETRY_AFTER_SECONDS)
            }
            SubscriptionError::Store(cause) => ServiceError::internal(cause),
        }
    }
}

impl From<SubscriptionError> for tonic::Status {
    fn from(error: SubscriptionError) -> Self {
        ServiceError::from(error).into()
    }
}

/// One webhook event, as the edge passes it on.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub id: String,
    pub event_type: String,
    pub app_user_id: String,
    pub entitlement_ids: Vec<String>,
    pub event_timestamp_ms: i64,
    pub expiration_at_ms: Option<i64>,
    pub grace_period_expiration_at_ms: Option<i64>,
}

/// Plans from RevenueCat (when configured) or from operators.
#[derive(Debug)]
pub struct Subscriptions {
    store: Arc<AuthStore>,
    revenuecat: Option<RevenueCatClient>,
    plans: EntitlementPlans,
    cache_ms: i64,
}

impl Subscriptions {
    pub fn new(store: Arc<AuthStore>, config: &RevenueCatConfig, http: HttpClient) -> Self {
        let revenuecat = config.secret_key.clone().map(|secret_key| {
            RevenueCatClient::new(http, &config.base_url, secret_key, config.timeout)
        });
        Self {
            store,
            revenuecat,
            plans: config.entitlement_plans.clone(),
            cache_ms: i64::try_from(config.cache.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// True when RevenueCat decides plans.
    pub fn revenuecat_configured(&self) -> bool {
        self.revenuecat.is_some()
    }

    /// The user's subscription now, and whether this read changed it. With RevenueCat
    /// configured and the last read older than the cache time, RevenueCat is asked; if
    /// it fails, nothing is changed and the error says when to retry.
    pub async fn current(
        &self,
        user_id: &str,
    ) -> Result<(SubscriptionRecord, bool), SubscriptionError> {
        let record = self
            .store
            .subscription_of(user_id)
            .await?
            .ok_or(SubscriptionError::UserNotFound)?;
        let Some(revenuecat) = &self.revenuecat else {
            return Ok((record, false));
        };
        let now = now_ms();
        if now.saturating_sub(record.checked_at_ms) < self.cache_ms {
            return Ok((record, false));
        }
        let read = revenuecat.subscriber(user_id, now).await?;
        let state = state_from_entitlements(&self.plans, &read.entitlements, now);
        let (record, changed) = self
            .store
            .record_subscriber_read(user_id, state, read.request_date_ms.min(now))
            .await?
            .ok_or(SubscriptionError::UserNotFound)?;
        if changed {
            tracing::info!(
                user_id,
                plan = record.state.plan.as_str(),
                active = record.state.active,
                "plan changed by a revenuecat read"
            );
        }
        Ok((record, changed))
    }

    /// Records one webhook event (docs/product/subscriptions.md#webhook-events).
    pub async fn apply_event(
        &self,
        event: &WebhookEvent,
    ) -> Result<EventRecording, SubscriptionError> {
        for (name, value) in [
            ("id", &event.id),
            ("type", &event.event_type),
            ("app_user_id", &event.app_user_id),
        ] {
            if value.trim().is_empty() || value.chars().count() > MAX_EVENT_FIELD_CHARS {
                return Err(SubscriptionError::InvalidArgument(format!(
                    "event {name} must be 1 to {MAX_EVENT_FIELD_CHARS} characters"
                )));
            }
        }
        if event.event_timestamp_ms <= 0 {
            return Err(SubscriptionError::InvalidArgument(
                "event_timestamp_ms must be a positive unix time in milliseconds".to_owned(),
            ));
        }
        let now = now_ms();
        let state = state_from_event(
            &self.plans,
            &EventFacts {
                event_type: &event.event_type,
                entitlement_ids: &event.entitlement_ids,
                expiration_at_ms: event.expiration_at_ms,
                grace_period_expiration_at_ms: event.grace_period_expiration_at_ms,
            },
            now,
        );
        let recording = self
            .store
            .record_subscription_event(
                &ReceivedEvent {
                    event_id: &event.id,
                    user_id: &event.app_user_id,
                    event_type: &event.event_type,
                    event_timestamp_ms: event.event_timestamp_ms,
                    received_at_ms: now,
                },
                state,
            )
            .await?;
        tracing::info!(
            event_id = %event.id.escape_debug(),
            event_type = %event.event_type.escape_debug(),
            outcome = outcome_name(&recording),
            "revenuecat event"
        );
        Ok(recording)
    }

    /// Sets the plan by hand; refused while RevenueCat decides plans, so the two never
    /// overwrite each other.
    pub async fn set_by_operator(
        &self,
        user_id: &str,
        plan: Plan,
    ) -> Result<(SubscriptionRecord, bool), SubscriptionError> {
        if self.revenuecat.is_some() {
            return Err(SubscriptionError::ManagedByRevenueCat);
        }
        let result = self
            .store
            .set_plan_by_operator(user_id, plan, now_ms())
            .await?
            .ok_or(SubscriptionError::UserNotFound)?;
        tracing::info!(user_id, plan = plan.as_str(), "plan set by an operator");
        Ok(result)
    }
}

/// The outcome's name in logs and the `subscription_events` table.
pub fn outcome_name(recording: &EventRecording) -> &'static str {
    match recording {
        EventRecording::Applied { .. } => "applied",
        EventRecording::Duplicate(_) => "duplicate",
        EventRecording::Stale(_) => "stale",
        EventRecording::Ignored(_) => "ignored",
        EventRecording::UnknownUser => "unknown_user",
    }
}

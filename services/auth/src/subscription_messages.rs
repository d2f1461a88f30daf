//! Subscription messages of the AuthService contract, to and from the store's records.

use clawfleet_contracts::auth::v1::{
    ApplySubscriptionEventRequest, ApplySubscriptionEventResponse, Subscription,
    SubscriptionEventOutcome,
};
use clawfleet_kit::{
    error::ServiceError,
    identity::{Caller, Role},
    plan::Plan,
};

use crate::{
    store::{EventRecording, SubscriptionRecord},
    subscriptions::service::WebhookEvent,
};

fn timestamp(millis: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn subscription_message(record: SubscriptionRecord) -> Subscription {
    Subscription {
        user_id: record.user_id,
        plan: record.state.plan.to_proto() as i32,
        active: record.state.active,
        entitlements: record.state.entitlements,
        expires_at: record.state.expires_at_ms.map(timestamp),
        source: record.source.as_str().to_owned(),
    }
}

/// Whose subscription a caller reads: app users only their own (anyone else's is
/// NotFound, as if it did not exist); others must name the user.
pub fn subscription_owner(caller: &Caller, user_id: &str) -> Result<String, ServiceError> {
    let user_id = user_id.trim();
    match (caller.role, user_id.is_empty()) {
        (Role::App, true) => Ok(caller.subject.clone()),
        (Role::App, false) if user_id != caller.subject => {
            Err(ServiceError::not_found("user not found"))
        }
        (_, true) => Err(ServiceError::invalid_argument(
            "user_id is required for callers that are not app users",
        )),
        (_, false) => Ok(user_id.to_owned()),
    }
}

/// A plan an operator chose; unspecified is refused rather than read as free.
pub fn plan_of(value: i32) -> Result<Plan, ServiceError> {
    if value == clawfleet_contracts::common::v1::Plan::Unspecified as i32 {
        return Err(ServiceError::invalid_argument(
            "plan is required: free, pro or enterprise",
        ));
    }
    Plan::from_proto(value).map_err(|error| ServiceError::invalid_argument(error.to_string()))
}

pub fn webhook_event(request: ApplySubscriptionEventRequest) -> WebhookEvent {
    WebhookEvent {
        id: request.id,
        event_type: request.r#type,
        app_user_id: request.app_user_id,
        entitlement_ids: request.entitlement_ids,
        event_timestamp_ms: request.event_timestamp_ms,
        expiration_at_ms: request.expiration_at_ms,
        grace_period_expiration_at_ms: request.grace_period_expiration_at_ms,
    }
}

pub fn event_response(recording: EventRecording) -> ApplySubscriptionEventResponse {
    let (outcome, record) = match recording {
        EventRecording::Applied { record, .. } => (SubscriptionEventOutcome::Applied, Some(record)),
        EventRecording::Duplicate(record) => (SubscriptionEventOutcome::Duplicate, record),
        EventRecording::Stale(record) => (SubscriptionEventOutcome::Stale, Some(record)),
        EventRecording::Ignored(record) => (SubscriptionEventOutcome::Ignored, Some(record)),
        EventRecording::UnknownUser => (SubscriptionEventOutcome::UnknownUser, None),
    };
    ApplySubscriptionEventResponse {
        outcome: outcome as i32,
        subscription: record.map(subscription_message),
    }
}

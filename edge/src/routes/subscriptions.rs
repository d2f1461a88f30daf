//! Plans and subscriptions (docs/product/subscriptions.md): RevenueCat's webhook
//! (`POST /webhooks/revenuecat`, its own `Authorization` header), the operators' plan
//! route (`PUT /api/users/{userId}/plan`) and the app user's own subscription
//! (`GET /users/me/subscription`). Every change is applied to the user's instances
//! through the lifecycle (`crate::plans`).

use axum::{
    Json,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, header},
};
use clawfleet_contracts::auth::v1::{
    ApplySubscriptionEventRequest, SetUserPlanRequest, SubscriptionEventOutcome,
};
use clawfleet_kit::{error::ErrorCode, identity::Caller, plan::Plan as KitPlan};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{instances::plan_name, with_json_405};
use crate::{
    error::ApiError,
    extract::{ApiJson, optional_integer},
    openapi::schemas::{ErrorResponses, SubscriptionJson, WebhookAnswerJson, plan_schema},
    plans,
    principal::Principal,
    state::EdgeState,
};

/// RevenueCat's events are a few kilobytes; anything much larger is not one.
const WEBHOOK_BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The webhook, checked by its own header instead of a user's token or the API key.
pub fn webhook_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new()
        .routes(with_json_405(routes!(revenuecat_webhook)))
        .route_layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT_BYTES))
}

/// Operators' routes under `/api` (the API key is checked in front of them).
pub fn operator_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new().routes(with_json_405(routes!(set_user_plan)))
}

/// The app user's own subscription (behind the access-token check).
pub fn user_routes() -> OpenApiRouter<EdgeState> {
    OpenApiRouter::new().routes(with_json_405(routes!(my_subscription)))
}

/// A RevenueCat webhook delivery: `{"api_version", "event": {...}}`. Fields the platform
/// does not use are accepted and ignored, as RevenueCat adds fields over time.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookBody {
    #[serde(default)]
    #[allow(dead_code)] // Documented and accepted; every version so far has one shape.
    api_version: Option<String>,
    event: WebhookEventBody,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookEventBody {
    /// RevenueCat's event id; retries of a delivery carry the same one.
    #[schema(pattern = r"^[^\x00-\x1f\x7f]{1,200}$")]
    id: String,
    /// INITIAL_PURCHASE, RENEWAL, CANCELLATION, UNCANCELLATION, EXPIRATION, PRODUCT_CHANGE,
    /// BILLING_ISSUE, ...
    #[serde(rename = "type")]
    #[schema(pattern = r"^[^\x00-\x1f\x7f]{1,200}$")]
    event_type: String,
    /// The user id the app configured RevenueCat with (absent on TRANSFER events).
    #[serde(default)]
    #[schema(pattern = r"^[^\x00-\x1f\x7f]{1,200}$", nullable)]
    app_user_id: Option<String>,
    #[serde(default)]
    #[schema(max_items = 64, nullable)]
    entitlement_ids: Option<Vec<String>>,
    /// When the event happened (Unix milliseconds); decides the order of events.
    #[serde(deserialize_with = "optional_integer")]
    #[schema(required = true, value_type = i64, minimum = 1, maximum = 9007199254740991_i64)]
    event_timestamp_ms: Option<u64>,
    #[serde(default, deserialize_with = "optional_integer")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 9007199254740991_i64)]
    expiration_at_ms: Option<u64>,
    #[serde(default, deserialize_with = "optional_integer")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 9007199254740991_i64)]
    grace_period_expiration_at_ms: Option<u64>,
}

/// Largest event time accepted: the largest integer JSON carries exactly (2^53 - 1), far
/// past any real date.
const MAX_EVENT_MILLIS: u64 = 9_007_199_254_740_991;

/// Unix milliseconds as the auth contract carries them.
fn millis(value: u64) -> Result<i64, ApiError> {
    if value > MAX_EVENT_MILLIS {
        return Err(ApiError::invalid_argument(format!(
            "event times must be unix milliseconds of at most {MAX_EVENT_MILLIS}"
        )));
    }
    i64::try_from(value)
        .map_err(|_| ApiError::invalid_argument("event times must be unix milliseconds"))
}

fn check_event_text(name: &str, value: &str) -> Result<(), ApiError> {
    let well_formed = (1..=200).contains(&value.chars().count())
        && !value.chars().any(|character| character.is_ascii_control());
    if well_formed {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "event.{name} must be 1 to 200 characters without control characters"
        )))
    }
}

/// Records one RevenueCat event and applies the user's resulting plan at once. Retries
/// and events older than the newest applied change nothing; either way the user's
/// current plan is applied again, so a delivery retried after a failure completes.
#[utoipa::path(post, path = "/webhooks/revenuecat", tag = "webhooks",
    security(("revenuecatWebhook" = [])),
    request_body = WebhookBody,
    responses((status = 200, body = WebhookAnswerJson), ErrorResponses))]
async fn revenuecat_webhook(
    State(state): State<EdgeState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<Json<Value>, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    match state.is_revenuecat_webhook(presented) {
        None => {
            return Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                "revenuecat webhooks are not configured (REVENUECAT_WEBHOOK_AUTHORIZATION)",
            ));
        }
        Some(false) => {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "invalid webhook authorization",
            ));
        }
        Some(true) => {}
    }
    let event = body.event;
    check_event_text("id", &event.id)?;
    check_event_text("type", &event.event_type)?;
    let event_timestamp_ms = match event.event_timestamp_ms {
        Some(millis) if millis >= 1 => millis,
        _ => {
            return Err(ApiError::invalid_argument(
                "event.event_timestamp_ms must be a positive unix time in milliseconds",
            ));
        }
    };
    let entitlement_ids = event.entitlement_ids.unwrap_or_default();
    if entitlement_ids.len() > 64 {
        return Err(ApiError::invalid_argument(
            "event.entitlement_ids may list at most 64 entitlements",
        ));
    }
    let event_timestamp_ms = millis(event_timestamp_ms)?;
    let expiration_at_ms = event.expiration_at_ms.map(millis).transpose()?;
    let grace_period_expiration_at_ms = event
        .grace_period_expiration_at_ms
        .map(millis)
        .transpose()?;
    let Some(app_user_id) = event.app_user_id else {
        // TRANSFER and similar events name no one user; there is nothing to apply.
        return Ok(Json(json!({"outcome": "ignored"})));
    };
    check_event_text("app_user_id", &app_user_id)?;
    let answer = state
        .auth()
        .apply_subscription_event(ApplySubscriptionEventRequest {
            id: event.id,
            r#type: event.event_type,
            app_user_id,
            entitlement_ids,
            event_timestamp_ms,
            expiration_at_ms,
            grace_period_expiration_at_ms,
        })
        .await?;
    let outcome = match SubscriptionEventOutcome::try_from(answer.outcome) {
        Ok(SubscriptionEventOutcome::Applied) => "applied",
        Ok(SubscriptionEventOutcome::Duplicate) => "duplicate",
        Ok(SubscriptionEventOutcome::Stale) => "stale",
        Ok(SubscriptionEventOutcome::Ignored) => "ignored",
        Ok(SubscriptionEventOutcome::UnknownUser) => "unknown_user",
        _ => {
            return Err(ApiError::internal(
                "auth service answered without an outcome",
            ));
        }
    };
    let Some(subscription) = answer.subscription else {
        return Ok(Json(json!({ "outcome": outcome })));
    };
    // The edge acts as itself: nobody signed in sent this.
    let owned = plans::apply(&state, &Caller::service("edge"), &subscription).await?;
    let mut body = plans::subscription_json(&subscription, owned);
    body["outcome"] = json!(outcome);
    Ok(Json(body))
}

/// The operators' plan body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    #[serde(deserialize_with = "required_plan_name")]
    #[schema(schema_with = plan_schema)]
    plan: KitPlan,
}

/// A plan name from the kit's table; `null` and other names are refused by name.
fn required_plan_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<KitPlan, D::Error> {
    plan_name(deserializer)?
        .ok_or_else(|| serde::de::Error::custom("plan must be free, pro or enterprise"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
pub struct UserPath {
    /// The app user's id (`usr_...`).
    #[param(pattern = r"^[A-Za-z0-9_-]{1,100}$")]
    user_id: String,
}

/// Sets an app user's plan by hand (only while RevenueCat does not decide plans) and
/// applies it to their instances at once. A downgrade deletes nothing; the answer says
/// what to do when the user now has more instances than the plan allows.
#[utoipa::path(put, path = "/api/users/{userId}/plan", tag = "manager",
    security(("apiKey" = [])), params(UserPath), request_body = PlanBody,
    responses((status = 200, body = SubscriptionJson), ErrorResponses))]
async fn set_user_plan(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
    path: Result<Path<UserPath>, axum::extract::rejection::PathRejection>,
    ApiJson(body): ApiJson<PlanBody>,
) -> Result<Json<Value>, ApiError> {
    let Ok(Path(UserPath { user_id })) = path else {
        return Err(ApiError::invalid_argument(
            "the user id in the path is not valid",
        ));
    };
    let valid = (1..=100).contains(&user_id.len())
        && user_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if !valid {
        return Err(ApiError::invalid_argument(
            "userId must be 1 to 100 letters, digits, '_' or '-'",
        ));
    }
    let plan = body.plan;
    let subscription = state
        .auth()
        .set_user_plan(
            &caller,
            SetUserPlanRequest {
                user_id,
                plan: plan.to_proto() as i32,
            },
        )
        .await?;
    let owned = plans::apply(&state, &caller, &subscription).await?;
    Ok(Json(plans::subscription_json(&subscription, owned)))
}

/// My plan and subscription, read through RevenueCat when it decides plans (cached
/// briefly); a change found here is applied to my instances at once.
#[utoipa::path(get, path = "/users/me/subscription", tag = "auth",
    security(("accessToken" = [])),
    responses((status = 200, body = SubscriptionJson), ErrorResponses))]
async fn my_subscription(
    State(state): State<EdgeState>,
    Principal(caller): Principal,
) -> Result<Json<Value>, ApiError> {
    let (subscription, owned) = current_plan(&state, &caller).await?;
    Ok(Json(plans::subscription_json(&subscription, owned)))
}

/// The app user's current subscription, applied to their instances first when the read
/// changed it; with the count of their instances when it was applied.
pub(super) async fn current_plan(
    state: &EdgeState,
    caller: &Caller,
) -> Result<(clawfleet_contracts::auth::v1::Subscription, Option<usize>), ApiError> {
    let answer = state.auth().subscription(caller, "").await?;
    let subscription = answer
        .subscription
        .ok_or_else(|| ApiError::internal("auth service answered without a subscription"))?;
    let owned = if answer.changed {
        plans::apply(state, &Caller::service("edge"), &subscription).await?
    } else {
        None
    };
    Ok((subscription, owned))
}

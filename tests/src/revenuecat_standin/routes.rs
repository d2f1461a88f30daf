//! `GET /v1/subscribers/{app_user_id}`: checks the secret key, answers a queued fault
//! if there is one, else the subscriber JSON.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::state::{Fault, Shared};

pub(super) async fn subscriber(
    State(shared): State<Arc<Shared>>,
    Path(app_user_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fault = {
        let mut state = shared.lock();
        state.requests.push(app_user_id.clone());
        state.faults.pop_front()
    };
    let expected = format!("Bearer {}", shared.secret_key);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes());
    if !authorized {
        return error(401, "Invalid API key.");
    }
    match fault {
        Some(Fault::Status(status)) => return error(status, "Something went wrong."),
        Some(Fault::RateLimited {
            retry_after_seconds,
        }) => {
            let mut response = error(429, "Too many requests.");
            response.headers_mut().insert(
                header::RETRY_AFTER,
                retry_after_seconds.to_string().parse().expect("digits"),
            );
            return response;
        }
        Some(Fault::Silence(duration)) => tokio::time::sleep(duration).await,
        None => {}
    }
    let now = OffsetDateTime::now_utc();
    let entitlements: Map<String, Value> = shared
        .lock()
        .subscribers
        .entry(app_user_id.clone())
        .or_default()
        .iter()
        .map(|(id, entitlement)| {
            (
                id.clone(),
                json!({
                    "expires_date": entitlement.expires_ms.map(date),
                    "grace_period_expires_date": entitlement.grace_period_expires_ms.map(date),
                    "product_identifier": entitlement.product_identifier,
                    "purchase_date": date(entitlement.purchase_ms),
                }),
            )
        })
        .collect();
    let body = json!({
        "request_date": now.format(&Rfc3339).expect("now formats"),
        "request_date_ms": now.unix_timestamp_nanos() / 1_000_000,
        "subscriber": {
            "entitlements": entitlements,
            "first_seen": now.format(&Rfc3339).expect("now formats"),
            "last_seen": now.format(&Rfc3339).expect("now formats"),
            "management_url": null,
            "non_subscriptions": {},
            "original_app_user_id": app_user_id,
            "original_application_version": null,
            "original_purchase_date": null,
            "other_purchases": {},
            "subscriptions": {},
        }
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `2026-01-05T10:00:00Z` from Unix milliseconds.
fn date(millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .expect("a representable time")
        .format(&Rfc3339)
        .expect("formats")
}

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

//! Webhook events shaped as RevenueCat sends them, and their delivery.

use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::control::now_ms;
use crate::http::{HttpClient, Reply};

/// One event; [`WebhookEvent::to_json`] adds the fields RevenueCat always sends.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub id: String,
    /// INITIAL_PURCHASE, RENEWAL, CANCELLATION, EXPIRATION, PRODUCT_CHANGE, ...
    pub event_type: String,
    pub app_user_id: String,
    pub entitlement_ids: Vec<String>,
    pub event_timestamp_ms: i64,
    pub expiration_at_ms: Option<i64>,
}

impl WebhookEvent {
    /// An event of `event_type` for `app_user_id`'s `entitlement`, happening now, whose
    /// period ends in 30 days.
    pub fn new(id: &str, event_type: &str, app_user_id: &str, entitlement: &str) -> Self {
        let now = now_ms();
        Self {
            id: id.to_owned(),
            event_type: event_type.to_owned(),
            app_user_id: app_user_id.to_owned(),
            entitlement_ids: vec![entitlement.to_owned()],
            event_timestamp_ms: now,
            expiration_at_ms: Some(now + 30 * 86_400_000),
        }
    }

    /// The event at another time (for deliveries out of order).
    pub fn at(mut self, event_timestamp_ms: i64) -> Self {
        self.event_timestamp_ms = event_timestamp_ms;
        self
    }

    /// The delivery body: `{"api_version": "1.0", "event": {...}}`.
    pub fn to_json(&self) -> Value {
        let purchased_at = self.event_timestamp_ms - 4_000;
        json!({
            "api_version": "1.0",
            "event": {
                "id": self.id,
                "type": self.event_type,
                "app_id": "app1234567890",
                "app_user_id": self.app_user_id,
                "original_app_user_id": self.app_user_id,
                "aliases": [self.app_user_id],
                "entitlement_id": null,
                "entitlement_ids": self.entitlement_ids,
                "event_timestamp_ms": self.event_timestamp_ms,
                "purchased_at_ms": purchased_at,
                "expiration_at_ms": self.expiration_at_ms,
                "environment": "SANDBOX",
                "period_type": "NORMAL",
                "product_id": "clawbox.pro.monthly",
                "presented_offering_id": null,
                "transaction_id": format!("{}000", self.event_timestamp_ms),
                "original_transaction_id": format!("{purchased_at}000"),
                "is_family_share": false,
                "country_code": "US",
                "currency": "USD",
                "price": 9.99,
                "price_in_purchased_currency": 9.99,
                "store": "APP_STORE",
                "takehome_percentage": 0.7,
                "commission_percentage": 0.3,
                "subscriber_attributes": {},
                "offer_code": null,
            }
        })
    }
}

/// POSTs `event` to `{edge_url}/webhooks/revenuecat` with `authorization` as the whole
/// `Authorization` header (`None`: no header).
pub async fn deliver(
    client: &HttpClient,
    edge_url: &str,
    authorization: Option<&str>,
    event: &WebhookEvent,
) -> Reply {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(format!("{edge_url}/webhooks/revenuecat"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(authorization) = authorization {
        builder = builder.header(header::AUTHORIZATION, authorization);
    }
    let request = builder
        .body(Full::new(event.to_json().to_string().into()))
        .expect("a well-formed request");
    let response = client.request(request).await.expect("the edge answers");
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("a body").to_bytes(),
    }
}

//! A RevenueCat stand-in on loopback: the subscriber API the auth service reads
//! (`REVENUECAT_BASE_URL` points here) and a webhook sender that delivers events to the
//! edge as RevenueCat does.
//!
//! `GET /v1/subscribers/{app_user_id}` needs `Authorization: Bearer <secret key>` and
//! answers `{"request_date", "request_date_ms", "subscriber": {"entitlements": {"<id>":
//! {"expires_date", "grace_period_expires_date", "product_identifier",
//! "purchase_date"}}, "subscriptions", "non_subscriptions", "first_seen",
//! "original_app_user_id", ...}}`; an unknown subscriber is created empty, as RevenueCat
//! does. Faults queued by a test answer the next requests instead: 401, 429 with
//! `Retry-After`, a 5xx, or silence longer than the client waits.
//!
//! Webhook events are `{"api_version": "1.0", "event": {"id", "type", "app_user_id",
//! "entitlement_ids", "event_timestamp_ms", "expiration_at_ms", ...}}` POSTed with the
//! configured `Authorization` header.

mod control; // the handle tests hold: start, grant and expire entitlements, queue faults
mod routes; // `GET /v1/subscribers/{app_user_id}`: key check, faults, the subscriber JSON
mod state; // subscribers and their entitlements, queued faults, recorded requests
mod webhook; // real-shaped webhook events and their delivery to the edge

pub use control::RevenueCatStandIn;
pub use state::Fault;
pub use webhook::{WebhookEvent, deliver};

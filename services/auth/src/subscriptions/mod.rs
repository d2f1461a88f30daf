//! Subscriptions decide plans (docs/product/subscriptions.md): RevenueCat's subscriber
//! API and webhook events when it is configured, operators' choices otherwise.

pub mod config; // RevenueCat settings from the environment, the entitlement → plan table
pub mod entitlements; // the plan and standing that entitlements or one event grant
pub mod revenuecat; // the client of RevenueCat's `GET /v1/subscribers/{app_user_id}`
pub mod service; // reads (cached), webhook events and operator plans, with their errors

pub use config::{EntitlementPlans, RevenueCatConfig};
pub use service::{SubscriptionError, Subscriptions};

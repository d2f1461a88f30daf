//! The auth service (`clawfleet.auth.v1.AuthService`): app users, their passwords and
//! Google/Apple identities, access JWTs and rotating refresh-token families
//! (docs/product/app-api.md#sign-in-and-tokens).
//!
//! The access token itself lives in `clawfleet_kit::access_token`, because the edge
//! verifies it too.

pub mod account_deletion; // re-authentication (password or fresh provider token), then deletion
pub mod accounts; // the operations behind the RPCs: sign-up, log-in, provider sign-in, refresh
pub mod digest; // SHA-256 and hex, for stored refresh-token digests
pub mod error; // the service's errors and their gRPC codes
pub mod metrics; // sign-ins by provider and outcome, refresh-token reuse
pub mod password; // argon2id hashing on the blocking pool, behind a semaphore
pub mod providers; // Google and Apple ID-token verification against their JWKS
pub mod purge; // periodic deletion of fully expired refresh-token families
pub mod server; // configuration from the environment and assembly
pub mod service; // the gRPC handlers
pub mod sessions; // token pairs, refresh rotation with reuse detection, log-out
pub mod store; // users, identities, refresh tokens and subscriptions on SQLite or PostgreSQL
pub mod subscription_messages; // Subscription and webhook-event messages to and from store records
pub mod subscriptions; // plans from RevenueCat (subscriber reads, webhook events) or operators
pub mod successor_seal; // a rotated token's successor, sealed so only that token opens it
pub mod validation; // emails, passwords and names, checked before any query

pub use server::{AuthConfig, AuthServer, AuthStartError};

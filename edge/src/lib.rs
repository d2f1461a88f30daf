//! The clawfleet edge: the REST APIs clients use, over the platform's gRPC services.
//!
//! It serves the App API for the mobile app (docs/product/app-api.md: `/auth/*` sign-up and sign-in,
//! `/users/me`, and `/instances/...` with an access JWT, each user seeing only their own
//! instances), the manager-compatible operator API under `/api` (docs/product/manager-api.md, API key), and
//! `/health`; with `EDGE_DOCS=true` the OpenAPI document generated from the handlers.
//!
//! - [`config`]: [`EdgeConfig`], read from the environment;
//! - [`server`]: [`serve`], the listener loop with graceful shutdown;
//! - [`routes`]: [`router`], the routes and the layers they share;
//! - [`state`]: [`EdgeState`], what handlers share;
//! - [`error`]: [`ApiError`](error::ApiError), the JSON error shape;
//! - `auth`: the API-key check; `access`: the access-JWT check; `principal`: who a
//!   request acts for; `rate_limit`: the `/auth/*` rate limit;
//! - `auth_service`: the gRPC client of the auth service;
//! - `extract`: extractors that reject with JSON errors;
//! - `instance_json`: instances as the manager's JSON;
//! - `instance_cache`: the watch-fed replica that answers single-instance reads;
//! - `lifecycle`: the gRPC client of the lifecycle service;
//! - `bridge`: the gRPC client of the gateway bridge (RPC passthrough, VNC tunnel).

#![forbid(unsafe_code)]

mod access;
mod auth;
mod auth_service;
mod bridge;
mod channels;
pub mod config;
pub mod error;
mod extract;
mod instance_cache;
mod instance_json;
mod lifecycle;
pub mod openapi;
mod principal;
mod rate_limit;
pub mod routes;
pub mod server;
pub mod state;
mod upstream;
pub mod verified_tokens;

pub use config::EdgeConfig;
pub use routes::router;
pub use server::{EdgeError, serve};
pub use state::EdgeState;
pub use upstream::UpstreamClientError;

#[cfg(test)]
mod test_support;

//! The clawfleet edge: the REST APIs clients use, over the platform's gRPC services.
//!
//! Today it serves the manager-compatible operator API (SPEC §3): `/health`, and under
//! `/api` (API key required) instances created, listed, read, deleted, stopped, started
//! and watched through the lifecycle service.
//!
//! - [`config`]: [`EdgeConfig`], read from the environment;
//! - [`server`]: [`serve`], the listener loop with graceful shutdown;
//! - [`routes`]: [`router`], the routes and the layers they share;
//! - [`state`]: [`EdgeState`], what handlers share;
//! - [`error`]: [`ApiError`](error::ApiError), the JSON error shape;
//! - `auth`: the API-key check;
//! - `extract`: extractors that reject with JSON errors;
//! - `instance_json`: instances as the manager's JSON;
//! - `instance_cache`: the watch-fed replica that answers single-instance reads;
//! - `lifecycle`: the gRPC client of the lifecycle service;
//! - `bridge`: the gRPC client of the gateway bridge (RPC passthrough, VNC tunnel).

#![forbid(unsafe_code)]

mod auth;
mod bridge;
mod channels;
pub mod config;
pub mod error;
mod extract;
mod instance_cache;
mod instance_json;
mod lifecycle;
pub mod routes;
pub mod server;
pub mod state;
mod upstream;

pub use config::EdgeConfig;
pub use routes::router;
pub use server::{EdgeError, serve};
pub use state::EdgeState;
pub use upstream::UpstreamClientError;

#[cfg(test)]
mod test_support;

//! The clawfleet edge: the REST APIs clients use, over the platform's gRPC services.
//!
//! It serves the App API for the mobile app (docs/product/app-api.md: `/auth/*` sign-up and sign-in,
//! `/users/me`, and `/instances/...` with an access JWT, each user seeing only their own
//! instances), the manager-compatible operator API under `/api` (docs/product/manager-api.md, API key), and
//! `/health`; with `EDGE_DOCS=true` the OpenAPI document generated from the handlers.

#![forbid(unsafe_code)]

mod access; // the access-JWT check of the App API
mod app_errors; // internal error details kept from app users (logged instead)
mod auth; // the API-key check of the manager API
mod auth_service; // the gRPC client of the auth service
mod bridge; // the gRPC client of the gateway bridge (RPC passthrough, VNC tunnel)
mod channels; // the gRPC client of the channels service
pub mod config; // EdgeConfig, read from the environment
pub mod error; // ApiError: the kit's error rendered as the JSON error shape
mod extract; // extractors that reject with JSON errors (bodies, queries, instance ids)
mod http_tracing; // one server span per request, named by its route template
mod instance_cache; // the watch-fed replica that answers single-instance reads
mod instance_json; // instances as the manager's JSON
mod lifecycle; // the gRPC client of the lifecycle service
mod limits; // abuse limits: client address via trusted proxies, per-user and per-account budgets
mod metrics; // requests by route template, method and status class; rate-limited requests
pub mod openapi; // the OpenAPI document generated from the handlers, and its schemas
mod plans; // applying a user's plan to their instances, and what to say when over quota
mod principal; // who a request acts for
mod rate_limit; // the per-client budget of /auth/*
pub mod routes; // the router: every route with its OpenAPI entry, and shared layers
pub mod server; // serve: the listener loop with graceful shutdown
pub mod state; // EdgeState: what handlers share
#[cfg(test)]
mod test_support; // a router over in-process stand-ins, for unit tests
mod upstream; // gRPC channels to the services, with their deadlines
pub mod verified_tokens; // access tokens already verified, remembered until they expire

pub use config::EdgeConfig;
pub use routes::router;
pub use server::{EdgeError, serve};
pub use state::EdgeState;
pub use upstream::UpstreamClientError;

//! Shared plumbing for every clawfleet service, and nothing else:
//!
//! - [`config`]: env keys as named constants, read through an env map;
//! - [`telemetry`]: JSON logs and OTLP trace export;
//! - [`server`]: gRPC bootstrap with health, reflection (v1 and v1alpha) and graceful shutdown;
//! - [`identity`]: who is calling (platform API key, internal credential, caller metadata);
//! - [`error`]: the one table from error codes to gRPC and HTTP statuses;
//! - [`secret`]: random tokens and constant-time comparison;
//! - [`access_token`]: the app's HS256 access JWT, issued by auth and verified by the edge.

pub mod access_token;
pub mod config;
pub mod error;
pub mod identity;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod telemetry;

//! The auth service (`clawfleet.auth.v1.AuthService`): app users, their passwords and
//! Google/Apple identities, access JWTs and rotating refresh-token families (docs/product/app-api.md#sign-in-and-tokens).
//!
//! - [`validation`]: emails, passwords and names, checked before any query;
//! - [`password`]: argon2id hashing on the blocking pool;
//! - [`store`]: users, identities and refresh tokens on SQLite or PostgreSQL;
//! - [`providers`]: Google and Apple ID-token verification against their JWKS;
//! - [`sessions`]: token pairs, refresh rotation with reuse detection, log-out;
//! - [`accounts`]: the operations behind the RPCs; [`purge`]: expired-token cleanup;
//! - [`service`]: the gRPC handlers; [`server`]: configuration and assembly;
//! - [`error`]: the service's errors and their codes; [`digest`]: SHA-256 and hex.
//!
//! The access token itself lives in `clawfleet_kit::access_token`, because the edge
//! verifies it too.

pub mod accounts;
pub mod digest;
pub mod error;
pub mod password;
pub mod providers;
pub mod purge;
pub mod server;
pub mod service;
pub mod sessions;
pub mod store;
pub mod validation;

pub use server::{AuthConfig, AuthServer, AuthStartError};

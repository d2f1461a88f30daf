//! Harness for cross-service tests and benchmarks: runs the real `clawfleet up` binary
//! (edge + lifecycle, real gRPC between them, real `openclaw` gateways) on loopback
//! with its own data dir, and talks to it over REST and gRPC like a user would.

pub mod app_user;
pub mod grpc;
pub mod http;
pub mod load;
pub mod platform;
pub mod scenario;
pub mod telegram_standin;
pub mod tools;

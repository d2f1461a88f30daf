//! Harness for cross-service tests and benchmarks: starts the platform (the mesh of
//! `clawfleet up` in the test process, or the real binary) with real gRPC between its
//! services and real `openclaw` gateways on loopback, each with its own data dir, and
//! talks to it over REST and gRPC like a user would.

pub mod app_user;
pub mod blackhole;
pub mod grpc;
pub mod http;
pub mod load;
pub mod log_sink;
pub mod platform;
pub mod raw_http;
pub mod scenario;
pub mod telegram_standin;
pub mod tools;

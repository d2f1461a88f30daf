//! Harness for cross-service tests and benchmarks: starts the platform (the mesh of
//! `clawfleet up` in the test process, or the real binary) with real gRPC between its
//! services and real `openclaw` gateways on loopback, each with its own data dir, and
//! talks to it over REST and gRPC like a user would.

pub mod app_user; // an app user signing up or in over the App API, then calling it
pub mod blackhole; // a TCP proxy that can swallow its traffic like a dead network path
pub mod grpc; // gRPC clients of the platform, authenticated as the operator
pub mod http; // a small HTTP/1.1 client for tests and benchmarks
pub mod load; // closed-loop load with p50, p99 and requests per second
pub mod log_sink; // logs of in-process platforms, written to the latest one's data dir
pub mod openrouter_standin; // an OpenRouter key-provisioning API stand-in on loopback
pub mod otlp_receiver; // a real OTLP/gRPC trace receiver on loopback
pub mod platform; // a running platform: the in-process mesh or the real binary
pub mod prometheus; // scraping /metrics, reading samples, promtool checks, names in PromQL
pub mod raw_http; // the lightest HTTP/1.1 GET client, for benchmarks
pub mod revenuecat_standin; // RevenueCat's subscriber API and webhook sender on loopback
pub mod scenario; // shared steps: operator REST calls, waiting for a phase
pub mod split_mesh; // every service its own process, edge/auth/channels/bridge replicated
pub mod telegram_standin; // a Telegram Bot API stand-in on loopback
pub mod tools; // where the binaries the tests drive live (clawfleet, openclaw, grpcurl, kubectl, promtool)

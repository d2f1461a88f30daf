//! Prometheus metrics of the process: one registry, the layers and collectors every
//! service shares, and the `/metrics` exposition. The metric list, with names, labels
//! and meaning, is in the README ("Metrics"); `docs/monitoring.md` covers scraping.
//!
//! Every family is registered once per process into [`registry`], the first time the
//! component that owns it starts: in `clawfleet up` (all services in one process) one
//! scrape shows them all; a service run alone shows its own and the shared ones.

pub mod buckets; // histogram bucket bounds, in seconds
pub mod exposition; // GET /metrics: OpenMetrics or the 0.0.4 text format, by Accept
pub mod grpc_server; // the tower layer counting and timing every gRPC call a server handles
pub mod kubernetes_api; // the tower layer counting the Kubernetes API calls of a kube client
pub mod process; // CPU seconds, resident memory, open fds and start time read from /proc
pub mod registry; // the process's one registry and the helpers that register into it

pub use registry::{counter, gauge, histogram, register, register_collector};

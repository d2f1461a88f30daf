//! The Kubernetes runtime against the Kubernetes API server on loopback
//! (`clawfleet-kube-apiserver`). One test binary for all of it: each separate binary
//! linked the whole runtime, the client and the server again, which cost CI minutes
//! and gigabytes of disk.

mod support;

mod accept;
mod bench;
mod bench_replicas;
mod deletion;
mod exec;
mod failures;
mod golden;
mod ingress;
mod leader;
mod lean;
mod metrics;
mod phases;
mod rbac;
mod reconcile;
mod resolve;
mod runtime;

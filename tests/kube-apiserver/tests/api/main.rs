//! The loopback Kubernetes API server driven by kube-rs, as the lifecycle service drives
//! a real one. One test binary, so the server and client are linked once.

mod common;

mod controller;
mod crud;
mod exec;
mod faults;
mod watch;

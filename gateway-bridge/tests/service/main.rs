//! The bridge's gRPC service, started in-process against the crate's scripted gateway and a
//! stand-in lifecycle service: how its streams and calls behave while the bridge stops.

mod support;

mod app_callers;
mod clean_stop;

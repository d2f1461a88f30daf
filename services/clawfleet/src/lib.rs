//! The one clawfleet binary's library side: the wiring that runs the whole platform in
//! one process, shared by `clawfleet up` and by the cross-service tests, which start the
//! mesh inside the test process.

#![forbid(unsafe_code)]

pub mod backup_settings; // where backups go and the key sealing them
pub mod confine; // `clawfleet instance confine`: a local tenant's process, confined, then exec
mod dockerfiles; // tests: the Dockerfiles against the toolchain pins and the manifests
pub mod install_progress; // one line per first-use install step, with size and time
pub mod instance; // `clawfleet instance run`: the one entrypoint of every gateway
mod key_table_tests; // tests: the kit's key table against the services' loaders
pub mod mesh; // every service on its own loopback port, started and stopped together
pub mod service_credentials; // each calling service's token and the digests, derived from one root
pub mod settings; // data dir, listen host, ports, credentials and per-service config
pub mod toolchain; // finds or installs Node and the pinned openclaw for the local runtime

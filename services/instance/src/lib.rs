//! The instance side of clawfleet: what runs inside a gateway's pod, and what the local
//! runtime starts for each instance, through one entrypoint, `clawfleet instance run`
//! (docs/product/runtimes.md#one-entrypoint).

pub mod children; // child processes and the reaping of every one of them
pub mod confine; // a local tenant's uid, Landlock ruleset and no_new_privs
pub mod display; // Xvfb + x11vnc + websockify: the instance's desktop over NoVNC
pub mod runner; // `clawfleet instance run`: state dir, display, gateway, signals, exit status
pub mod state_dir; // the gateway's state dir and the platform's keys in its config

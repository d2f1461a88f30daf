//! `clawfleet instance confine --spec <json> [--log] -- <program> <args>`: confines this
//! process as a local tenant (docs/product/local-confinement.md) and executes `program`
//! in its place, so the program and everything it starts stay confined. The local
//! runtime runs every in-instance command through it, and `clawfleet instance run`
//! starts the gateway through it.
//!
//! It must run before any other thread exists (Landlock restricts the calling thread
//! only), so `main` calls it before the async runtime starts.

use std::{ffi::OsString, os::unix::process::CommandExt, process::Command};

use clap::Args;
use clawfleet_instance::confine::{CONFINEMENT_ENV, Confinement};
use nix::sys::stat::{Mode, umask};

/// A confined process's exit status when it could not be confined or executed (the
/// shell's "cannot execute").
pub const EXIT_NOT_CONFINED: u8 = 126;

#[derive(Args)]
pub struct ConfineArgs {
    /// The confinement, as JSON (what the local runtime hands over).
    #[arg(long)]
    spec: String,
    /// Say on stderr what the kernel enforces (the gateway's log); in-instance commands
    /// keep their stderr to themselves.
    #[arg(long)]
    log: bool,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

/// Confines this process and executes the command; returns only on failure.
pub fn confine_and_exec(args: ConfineArgs) -> u8 {
    let confinement = match Confinement::from_json(&args.spec) {
        Ok(confinement) => confinement,
        Err(error) => return refuse(&format!("the confinement is not valid json: {error}")),
    };
    private_umask();
    let enforced = match confinement.apply() {
        Ok(enforced) => enforced,
        Err(error) => return refuse(&error.to_string()),
    };
    if args.log {
        eprintln!(
            "clawfleet instance confine: landlock {} enforced ({}), no_new_privs {}, uid {}, bind ports {:?}, connect denied {:?}",
            enforced.landlock,
            enforced.abi,
            enforced.no_new_privs,
            enforced.uid,
            confinement.bind_ports,
            confinement.connect_denied,
        );
    }
    let Some((program, rest)) = args.command.split_first() else {
        return refuse("no command to run");
    };
    let error = Command::new(program).args(rest).exec();
    refuse(&format!(
        "could not execute {}: {error}",
        program.to_string_lossy()
    ))
}

/// Drops to the tenant's identity when `clawfleet instance run` was started by the local
/// runtime with one, before the runner prepares the tenant's state dir (as root it would
/// follow links the tenant planted there) and starts anything.
pub fn become_tenant_if_asked() -> Result<(), String> {
    let Ok(spec) = std::env::var(CONFINEMENT_ENV) else {
        return Ok(());
    };
    private_umask();
    let confinement = Confinement::from_json(&spec)
        .map_err(|error| format!("{CONFINEMENT_ENV} is not valid json: {error}"))?;
    match confinement.identity {
        Some(identity) => identity
            .become_tenant()
            .map_err(|error| format!("could not switch to uid {}: {error}", identity.uid)),
        None => Ok(()),
    }
}

/// Files a tenant's processes create are theirs alone, whatever umask the platform had.
fn private_umask() {
    umask(Mode::from_bits_truncate(0o077));
}

fn refuse(message: &str) -> u8 {
    eprintln!("clawfleet instance confine: {message}");
    EXIT_NOT_CONFINED
}

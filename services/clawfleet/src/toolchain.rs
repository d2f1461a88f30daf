//! Finds the `openclaw` CLI that local gateways run, installing it on first use.
//!
//! In order: `OPENCLAW_BIN`; a project-local install in the toolchain dir; an
//! `openclaw` on PATH whose Node is new enough; otherwise Node ≥ 24 (npm package
//! `node-linux-<arch>`) and the pinned `openclaw` are installed with npm into the
//! toolchain dir, with npm's progress shown.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use clawfleet_kit::config::{self, EnvSource, keys};
use clawfleet_lifecycle::runtime::local::OpenclawCommand;

/// The OpenClaw release the platform is tested with.
pub const OPENCLAW_VERSION: &str = "2026.9.6";
/// The oldest Node major version OpenClaw runs on.
pub const MINIMUM_NODE_MAJOR: u32 = 24;
/// Default toolchain dir, relative to the working directory.
pub const DEFAULT_TOOLCHAIN_DIR: &str = ".clawfleet/toolchain";

#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("OPENCLAW_BIN points to {0}, which does not exist")]
    MissingBin(PathBuf),
    #[error(
        "npm is needed to install node and openclaw on first use (apt-get install -y npm): {0}"
    )]
    NoNpm(std::io::Error),
    #[error("{step} failed with {status}")]
    StepFailed {
        step: String,
        status: std::process::ExitStatus,
    },
    #[error("cannot create toolchain dir {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Resolves the `openclaw` command, installing it when needed.
pub fn resolve_openclaw(env: &dyn EnvSource) -> Result<OpenclawCommand, ToolchainError> {
    let toolchain_dir = config::optional(env, keys::CLAWFLEET_TOOLCHAIN_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TOOLCHAIN_DIR));
    let toolchain_dir = absolute(&toolchain_dir);
    let local = ProjectToolchain::new(&toolchain_dir);

    if let Some(bin) = config::optional(env, keys::OPENCLAW_BIN) {
        let program = absolute(Path::new(&bin));
        if !program.exists() {
            return Err(ToolchainError::MissingBin(program));
        }
        // An npm-installed `openclaw` runs under `#!/usr/bin/env node`: put our Node first
        // when we have one.
        let path_prefix = local.node_bin_dir().into_iter().collect();
        return Ok(OpenclawCommand {
            program,
            path_prefix,
        });
    }
    if local.is_installed() {
        return Ok(local.command());
    }
    if let Some(program) = openclaw_on_path_with_new_node() {
        return Ok(OpenclawCommand {
            program,
            path_prefix: Vec::new(),
        });
    }
    local.install()?;
    Ok(local.command())
}

/// Node and openclaw installed with npm under one directory.
struct ProjectToolchain {
    dir: PathBuf,
}

impl ProjectToolchain {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn node_package() -> String {
        let arch = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            _ => "x64",
        };
        format!("node-linux-{arch}")
    }

    fn node_bin_dir(&self) -> Option<PathBuf> {
        let dir = self
            .dir
            .join("node_modules")
            .join(Self::node_package())
            .join("bin");
        dir.join("node").exists().then_some(dir)
    }

    fn openclaw_bin(&self) -> PathBuf {
        self.dir.join("node_modules").join(".bin").join("openclaw")
    }

    fn marker(&self) -> PathBuf {
        self.dir
            .join(format!(".installed-openclaw-{OPENCLAW_VERSION}"))
    }

    fn is_installed(&self) -> bool {
        self.marker().exists() && self.openclaw_bin().exists() && self.node_bin_dir().is_some()
    }

    fn command(&self) -> OpenclawCommand {
        OpenclawCommand {
            program: self.openclaw_bin(),
            path_prefix: self.node_bin_dir().into_iter().collect(),
        }
    }

    fn install(&self) -> Result<(), ToolchainError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| ToolchainError::Dir {
            path: self.dir.clone(),
            source,
        })?;
        let node_spec = format!("{}@{MINIMUM_NODE_MAJOR}", Self::node_package());
        eprintln!(
            "clawfleet: first use: installing Node {MINIMUM_NODE_MAJOR} and openclaw {OPENCLAW_VERSION} into {}",
            self.dir.display()
        );
        eprintln!("clawfleet: [1/2] npm install {node_spec}");
        self.npm(&[&node_spec], None)?;
        let node_dir = self.node_bin_dir();
        let openclaw_spec = format!("openclaw@{OPENCLAW_VERSION}");
        eprintln!(
            "clawfleet: [2/2] npm install {openclaw_spec} (about 300 packages; this takes a minute)"
        );
        self.npm(&[&openclaw_spec], node_dir.as_deref())?;
        std::fs::write(self.marker(), OPENCLAW_VERSION).map_err(|source| ToolchainError::Dir {
            path: self.marker(),
            source,
        })?;
        eprintln!("clawfleet: toolchain ready");
        Ok(())
    }

    fn npm(&self, packages: &[&str], node_dir: Option<&Path>) -> Result<(), ToolchainError> {
        let mut command = Command::new("npm");
        command
            .arg("install")
            .arg("--prefix")
            .arg(&self.dir)
            .args([
                "--no-audit",
                "--no-fund",
                "--progress=true",
                "--loglevel=http",
            ])
            .args(packages);
        if let Some(node_dir) = node_dir {
            let system = std::env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![node_dir.to_path_buf()];
            paths.extend(std::env::split_paths(&system));
            if let Ok(joined) = std::env::join_paths(paths) {
                command.env("PATH", joined);
            }
        }
        let status = command.status().map_err(ToolchainError::NoNpm)?;
        if status.success() {
            Ok(())
        } else {
            Err(ToolchainError::StepFailed {
                step: format!("npm install {}", packages.join(" ")),
                status,
            })
        }
    }
}

/// An `openclaw` on PATH, when the `node` on PATH is at least [`MINIMUM_NODE_MAJOR`].
fn openclaw_on_path_with_new_node() -> Option<PathBuf> {
    let system = std::env::var_os("PATH")?;
    let program = std::env::split_paths(&system)
        .map(|dir| dir.join("openclaw"))
        .find(|candidate| candidate.is_file())?;
    let output = Command::new("node").arg("--version").output().ok()?;
    let version = String::from_utf8_lossy(&output.stdout);
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()?;
    (major >= MINIMUM_NODE_MAJOR).then_some(program)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

//! Finds the `openclaw` CLI that local gateways run, installing it on first use.
//!
//! In order: `OPENCLAW_BIN`; a project-local install in the toolchain dir; an
//! `openclaw` on PATH whose Node is new enough; otherwise Node ≥ 24 (npm package
//! `node-linux-<arch>`) and the pinned `openclaw` are installed with npm into the
//! toolchain dir, with npm's progress shown.
//!
//! The WhatsApp channel is not in the `openclaw` package: it is the plugin
//! `@openclaw/whatsapp`. It is installed once into `<toolchain dir>/plugins` (an npm
//! project of its own, next to openclaw so the plugin's `openclaw` peer resolves to it)
//! and every gateway loads it from there through `plugins.load.paths`, instead of
//! `openclaw plugins install` putting a copy of about 80 MB into each state dir. A
//! toolchain installed before the plugin was part of it gets the plugin on its next use.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use clawfleet_kit::config::{self, EnvSource, keys};

use crate::install_progress::{Step, log_tail};
use clawfleet_lifecycle::runtime::local::OpenclawCommand;

/// The OpenClaw release the platform is tested with.
pub const OPENCLAW_VERSION: &str = "2026.9.6";
/// The oldest Node major version OpenClaw runs on.
pub const MINIMUM_NODE_MAJOR: u32 = 24;
/// Default toolchain dir, relative to the working directory.
pub const DEFAULT_TOOLCHAIN_DIR: &str = ".clawfleet/toolchain";
/// The WhatsApp channel plugin, released together with openclaw.
pub const WHATSAPP_PLUGIN_PACKAGE: &str = "@openclaw/whatsapp";
pub const WHATSAPP_PLUGIN_VERSION: &str = OPENCLAW_VERSION;
/// The image library the plugin's WhatsApp client (baileys) expects as a peer. `openclaw
/// plugins install @openclaw/whatsapp@2026.9.6` adds this version to its plugin project.
const SHARP_SPEC: &str = "sharp@0.35.5";
/// The npm project holding the plugins, inside the toolchain dir.
const PLUGINS_DIR: &str = "plugins";

#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("OPENCLAW_BIN points to {0}, which does not exist")]
    MissingBin(PathBuf),
    #[error(
        "npm is needed to install node and openclaw on first use (apt-get install -y npm): {0}"
    )]
    NoNpm(std::io::Error),
    #[error("{step} failed with {status}; the end of npm's log:\n{log_tail}")]
    StepFailed {
        step: String,
        status: std::process::ExitStatus,
        log_tail: String,
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
            plugin_paths: local.plugin_paths_for_foreign_openclaw(),
        });
    }
    if local.is_installed() {
        if !local.whatsapp_plugin_installed()
            && let Err(error) = local.install_whatsapp_plugin()
        {
            // Node and openclaw work without it (an offline machine keeps running); the
            // next start tries again.
            eprintln!(
                "clawfleet: could not install the WhatsApp plugin ({error}); gateways run without WhatsApp"
            );
        }
        return Ok(local.command());
    }
    if let Some(program) = openclaw_on_path_with_new_node() {
        return Ok(OpenclawCommand {
            program,
            path_prefix: Vec::new(),
            plugin_paths: local.plugin_paths_for_foreign_openclaw(),
        });
    }
    local.install()?;
    Ok(local.command())
}

/// The toolchain installed in `CLAWFLEET_TOOLCHAIN_DIR`, if it is: never installs
/// anything (a pod's root filesystem is read-only, and its image carries the toolchain).
pub fn installed_openclaw(env: &dyn EnvSource) -> Option<OpenclawCommand> {
    let toolchain_dir = config::optional(env, keys::CLAWFLEET_TOOLCHAIN_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TOOLCHAIN_DIR));
    let local = ProjectToolchain::new(&absolute(&toolchain_dir));
    local.is_installed().then(|| local.command())
}

/// Where the WhatsApp plugin's package lies in a toolchain dir (what gateways load).
pub fn whatsapp_plugin_dir(toolchain_dir: &Path) -> PathBuf {
    let mut dir = toolchain_dir.join(PLUGINS_DIR).join("node_modules");
    dir.extend(WHATSAPP_PLUGIN_PACKAGE.split('/'));
    dir
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

    /// Written once Node and openclaw are installed.
    fn marker(&self) -> PathBuf {
        self.dir
            .join(format!(".installed-openclaw-{OPENCLAW_VERSION}"))
    }

    /// Written once the WhatsApp plugin is installed: a toolchain without it (one
    /// installed before the plugin was part of the toolchain) gets it on its next use.
    fn whatsapp_marker(&self) -> PathBuf {
        self.dir
            .join(format!(".installed-whatsapp-{WHATSAPP_PLUGIN_VERSION}"))
    }

    fn plugins_dir(&self) -> PathBuf {
        self.dir.join(PLUGINS_DIR)
    }

    fn whatsapp_plugin_dir(&self) -> PathBuf {
        whatsapp_plugin_dir(&self.dir)
    }

    /// Node and openclaw are installed.
    fn is_installed(&self) -> bool {
        self.marker().exists() && self.openclaw_bin().exists() && self.node_bin_dir().is_some()
    }

    fn whatsapp_plugin_installed(&self) -> bool {
        self.whatsapp_marker().exists()
            && self
                .whatsapp_plugin_dir()
                .join("openclaw.plugin.json")
                .exists()
    }

    fn plugin_paths(&self) -> Vec<PathBuf> {
        if self.whatsapp_plugin_installed() {
            vec![self.whatsapp_plugin_dir()]
        } else {
            Vec::new()
        }
    }

    /// The plugins for an `openclaw` that is not this toolchain's: the ones installed
    /// here, if any. None are installed for it: its version may not match the plugin's.
    fn plugin_paths_for_foreign_openclaw(&self) -> Vec<PathBuf> {
        let paths = self.plugin_paths();
        if paths.is_empty() {
            eprintln!(
                "clawfleet: no WhatsApp plugin in {}, so gateways run without WhatsApp \
                 (the project toolchain, used when OPENCLAW_BIN is unset and no openclaw is on PATH, installs it)",
                self.dir.display()
            );
        }
        paths
    }

    fn command(&self) -> OpenclawCommand {
        OpenclawCommand {
            program: self.openclaw_bin(),
            path_prefix: self.node_bin_dir().into_iter().collect(),
            plugin_paths: self.plugin_paths(),
        }
    }

    fn install(&self) -> Result<(), ToolchainError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| ToolchainError::Dir {
            path: self.dir.clone(),
            source,
        })?;
        let node_spec = format!("{}@{MINIMUM_NODE_MAJOR}", Self::node_package());
        eprintln!(
            "clawfleet: first use: installing Node {MINIMUM_NODE_MAJOR}, openclaw {OPENCLAW_VERSION} \
             and its WhatsApp plugin into {} (npm's log: {})",
            self.dir.display(),
            self.install_log().display()
        );
        let step = Step::new(1, format!("Node {MINIMUM_NODE_MAJOR}"), &self.dir);
        step.finish(self.npm(&self.dir, &[&node_spec], &[], None))?;
        let node_dir = self.node_bin_dir();
        let openclaw_spec = format!("openclaw@{OPENCLAW_VERSION}");
        let step = Step::new(2, format!("openclaw {OPENCLAW_VERSION}"), &self.dir);
        step.finish(self.npm(&self.dir, &[&openclaw_spec], &[], node_dir.as_deref()))?;
        write_marker(&self.marker(), OPENCLAW_VERSION)?;
        self.install_whatsapp_plugin()?;
        eprintln!("clawfleet: toolchain ready");
        Ok(())
    }

    /// Step 3: the WhatsApp plugin, once, into its own npm project under the toolchain
    /// dir. Like `openclaw plugins install`, without running install scripts; its
    /// `openclaw` peer is optional and resolves to the toolchain's openclaw (a parent
    /// `node_modules`), so npm does not install a second openclaw.
    fn install_whatsapp_plugin(&self) -> Result<(), ToolchainError> {
        let plugins_dir = self.plugins_dir();
        std::fs::create_dir_all(&plugins_dir).map_err(|source| ToolchainError::Dir {
            path: plugins_dir.clone(),
            source,
        })?;
        let plugin_spec = format!("{WHATSAPP_PLUGIN_PACKAGE}@{WHATSAPP_PLUGIN_VERSION}");
        let node_dir = self.node_bin_dir();
        let step = Step::new(
            3,
            format!("WhatsApp plugin {WHATSAPP_PLUGIN_VERSION} (shared by every gateway)"),
            &plugins_dir,
        );
        step.finish(self.npm(
            &plugins_dir,
            &[&plugin_spec, SHARP_SPEC],
            &["--save-exact", "--ignore-scripts"],
            node_dir.as_deref(),
        ))?;
        write_marker(&self.whatsapp_marker(), WHATSAPP_PLUGIN_VERSION)
    }

    fn npm(
        &self,
        prefix: &Path,
        packages: &[&str],
        extra_args: &[&str],
        node_dir: Option<&Path>,
    ) -> Result<(), ToolchainError> {
        // npm's own per-request log goes to a file; a person sees one line per step.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.install_log())
            .map_err(|source| ToolchainError::Dir {
                path: self.install_log(),
                source,
            })?;
        let log_for_stderr = log.try_clone().map_err(|source| ToolchainError::Dir {
            path: self.install_log(),
            source,
        })?;
        let mut command = Command::new("npm");
        command
            .arg("install")
            .arg("--prefix")
            .arg(prefix)
            .args([
                "--no-audit",
                "--no-fund",
                "--progress=false",
                "--loglevel=http",
            ])
            .args(extra_args)
            .args(packages)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr);
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
                log_tail: log_tail(&self.install_log()),
            })
        }
    }

    fn install_log(&self) -> PathBuf {
        self.dir.join("install.log")
    }
}

fn write_marker(path: &Path, version: &str) -> Result<(), ToolchainError> {
    std::fs::write(path, version).map_err(|source| ToolchainError::Dir {
        path: path.to_path_buf(),
        source,
    })
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

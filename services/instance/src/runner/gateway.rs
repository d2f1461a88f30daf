//! The `openclaw gateway run` command line and environment.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
    process::Stdio,
};

use clawfleet_kit::config::keys;

/// Where the gateway listens and what runs it.
#[derive(Debug, Clone)]
pub struct GatewayCommand {
    /// The `openclaw` executable.
    pub program: PathBuf,
    /// `lan` in a pod (the bridge comes from another pod), `loopback` locally.
    pub bind: String,
    pub port: u16,
    /// Locally: the gateway is started through `clawfleet instance confine`.
    pub confined_by: Option<ConfinedBy>,
}

/// How the gateway is confined (docs/product/local-confinement.md).
#[derive(Debug, Clone)]
pub struct ConfinedBy {
    /// The `clawfleet` executable.
    pub executable: PathBuf,
    /// The confinement, as JSON.
    pub spec: String,
}

/// The display the gateway's browsers draw on.
pub struct GatewayDisplay<'a> {
    /// `DISPLAY`.
    pub name: &'a str,
    /// `XAUTHORITY`: the display lets in only holders of its cookie.
    pub xauthority: &'a Path,
}

impl GatewayCommand {
    /// `openclaw gateway run --bind <bind> --port <port>`, with the runner's environment
    /// less its own settings (the token is in the config file, where a rotation reaches
    /// it; an environment copy would go stale), and `DISPLAY` when there is one. Its
    /// output is the runner's. Confined, it runs as `clawfleet instance confine --spec
    /// <json> --log -- openclaw gateway run ...`.
    pub fn command(&self, display: Option<GatewayDisplay<'_>>) -> Command {
        let mut command = match &self.confined_by {
            Some(confined_by) => {
                let mut command = Command::new(&confined_by.executable);
                command
                    .args(["instance", "confine", "--log", "--spec"])
                    .arg(&confined_by.spec)
                    .arg("--")
                    .arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        command.args([
            "gateway",
            "run",
            "--bind",
            &self.bind,
            "--port",
            &self.port.to_string(),
        ]);
        for name in runner_only_variables(std::env::vars_os().map(|(name, _)| name)) {
            command.env_remove(name);
        }
        match display {
            Some(display) => command
                .env("DISPLAY", display.name)
                .env("XAUTHORITY", display.xauthority),
            None => command.env_remove("DISPLAY").env_remove("XAUTHORITY"),
        };
        command.stdin(Stdio::null());
        command
    }
}

/// The variables of the runner's environment that are its own settings.
fn runner_only_variables(names: impl Iterator<Item = OsString>) -> Vec<OsString> {
    names
        .filter(|name| {
            name.to_str().is_some_and(|name| {
                name.starts_with("CLAWFLEET_")
                    || name == keys::OPENCLAW_GATEWAY_TOKEN
                    || name == keys::OPENCLAW_BIN
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runners_own_settings_stay_with_it() {
        let names = [
            "CLAWFLEET_BASE_CONFIG",
            "CLAWFLEET_PLATFORM_DEVICE_ID",
            "OPENCLAW_GATEWAY_TOKEN",
            "OPENCLAW_BIN",
            "OPENCLAW_STATE_DIR",
            "ANTHROPIC_API_KEY",
            "PATH",
        ]
        .map(OsString::from);
        let removed = runner_only_variables(names.into_iter());
        assert_eq!(
            removed,
            [
                "CLAWFLEET_BASE_CONFIG",
                "CLAWFLEET_PLATFORM_DEVICE_ID",
                "OPENCLAW_GATEWAY_TOKEN",
                "OPENCLAW_BIN"
            ]
            .map(OsString::from)
        );
    }
}

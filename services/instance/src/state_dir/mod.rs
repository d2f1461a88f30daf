//! Prepares a gateway's state dir before it starts (docs/product/instances.md#state-directory):
//! `credentials/` and `state/` exist with mode 700, and `openclaw.json` exists with mode
//! 600 carrying the platform's keys ([`platform_keys`]) laid over whatever the user
//! changed through the gateway, the instance's token at `gateway.auth.token` (the
//! gateway hot-applies a new one, so rewriting it rotates the token of a running
//! gateway), and the shared plugins (see [`plugins`]).
//!
//! The platform's keys hold whatever the file holds: a file that is not JSON, or JSON but
//! not an object, is moved aside to `openclaw.json.unreadable` (kept for the user to
//! recover by hand) and the gateway starts from the platform's keys alone. A gateway that
//! would skip its token check because its config could not be read is never started.

mod keys;
mod plugins;
#[cfg(test)]
mod tests;

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use clawfleet_kit::{
    private_file::{PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, write_private},
    secret::{ExposeSecret, SecretString},
};
use serde_json::{Value, json};

pub use self::keys::platform_keys;
use self::keys::{enforced_keys, merge};

/// The config file in the state dir (and the ConfigMap key on Kubernetes).
pub const CONFIG_FILE: &str = "openclaw.json";
/// Where an unreadable config is moved, beside the config file.
pub const UNREADABLE_CONFIG_FILE: &str = "openclaw.json.unreadable";

/// What the platform puts into a gateway's config.
pub struct PlatformConfig {
    /// The platform's keys ([`platform_keys`]); a JSON object.
    pub base: Value,
    /// Written to `gateway.auth.token`.
    pub gateway_token: SecretString,
    /// Plugin package directories installed once for every gateway.
    pub plugin_paths: Vec<PathBuf>,
}

/// What [`prepare_state_dir`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prepared {
    /// The config file was written (it changed, or did not exist).
    pub written: bool,
    /// An unreadable config was moved here.
    pub set_aside: Option<PathBuf>,
}

/// Creates or updates the state dir.
pub fn prepare_state_dir(state_dir: &Path, platform: &PlatformConfig) -> std::io::Result<Prepared> {
    for dir in [
        state_dir.to_path_buf(),
        state_dir.join("credentials"),
        state_dir.join("state"),
    ] {
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
    }
    let config_path = state_dir.join(CONFIG_FILE);
    let mut prepared = Prepared::default();
    let existing = match fs::read_to_string(&config_path) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(value @ Value::Object(_)) => Some(value),
            Ok(_) | Err(_) => {
                prepared.set_aside = Some(set_aside(state_dir, &config_path)?);
                None
            }
        },
        // Not UTF-8: not JSON either.
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
            prepared.set_aside = Some(set_aside(state_dir, &config_path)?);
            None
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    let mut config = existing.clone().unwrap_or_else(|| json!({}));
    apply_platform_config(&mut config, platform);
    if existing.as_ref() == Some(&config) {
        fs::set_permissions(&config_path, fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
        return Ok(prepared);
    }
    write_private(
        &config_path,
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )?;
    prepared.written = true;
    Ok(prepared)
}

/// Moves an unreadable config out of the gateway's way, kept owner-only for the user.
fn set_aside(state_dir: &Path, config_path: &Path) -> std::io::Result<PathBuf> {
    let aside = state_dir.join(UNREADABLE_CONFIG_FILE);
    fs::rename(config_path, &aside)?;
    fs::set_permissions(&aside, fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
    tracing::warn!(path = %config_path.display(), moved_to = %aside.display(), "gateway config is not a json object; starting from the platform's keys");
    Ok(aside)
}

/// Lays the platform's keys, the token and the shared plugins over `config`.
fn apply_platform_config(config: &mut Value, platform: &PlatformConfig) {
    if platform.base.is_object() {
        merge(config, &platform.base);
    }
    merge(config, &enforced_keys(&platform.base));
    merge(
        config,
        &json!({"gateway": {"auth": {"token": platform.gateway_token.expose_secret()}}}),
    );
    plugins::apply_shared_plugins(config, &plugins::shared_plugins(&platform.plugin_paths));
}

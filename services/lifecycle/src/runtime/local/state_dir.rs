//! Prepares a gateway's state dir before it starts (SPEC §4): `credentials/` and
//! `state/` exist with mode 700, `openclaw.json` exists with mode 600 and says
//! `gateway.mode=local`, `auth.mode=token` with the instance's token, and the
//! instance's default model. Rewriting the token of a running gateway rotates it: the
//! gateway hot-applies `gateway.auth.token`.
//!
//! An existing config (a reattached instance, or one the user changed through the
//! gateway) is kept; only the keys the platform owns are set.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use serde_json::{Map, Value, json};

const CONFIG_FILE: &str = "openclaw.json";

/// Creates or updates the state dir; returns true when the config file was written.
pub fn prepare_state_dir(
    state_dir: &Path,
    model: &str,
    gateway_token: &str,
) -> std::io::Result<bool> {
    for dir in [
        state_dir.to_path_buf(),
        state_dir.join("credentials"),
        state_dir.join("state"),
    ] {
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    }
    let config_path = state_dir.join(CONFIG_FILE);
    let existing = match fs::read_to_string(&config_path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    let mut config = match existing.as_deref().map(serde_json::from_str::<Value>) {
        None => json!({}),
        Some(Ok(value @ Value::Object(_))) => value,
        Some(_) => {
            // JSON5 written by hand: leave it alone rather than lose the user's edits.
            tracing::warn!(path = %config_path.display(), "gateway config is not plain json; leaving it unchanged");
            fs::set_permissions(&config_path, fs::Permissions::from_mode(0o600))?;
            return Ok(false);
        }
    };
    let before = config.clone();
    apply_platform_keys(&mut config, model, gateway_token);
    if existing.is_some() && config == before {
        fs::set_permissions(&config_path, fs::Permissions::from_mode(0o600))?;
        return Ok(false);
    }
    write_private_file(
        &config_path,
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )?;
    Ok(true)
}

/// Sets the keys the platform owns; everything else is left as it is.
fn apply_platform_keys(config: &mut Value, model: &str, gateway_token: &str) {
    let gateway = object_at(config, "gateway");
    gateway.insert("mode".into(), json!("local"));
    let auth = object_at_map(gateway, "auth");
    auth.insert("mode".into(), json!("token"));
    auth.insert("token".into(), json!(gateway_token));
    if !model.is_empty() {
        let agents = object_at(config, "agents");
        let defaults = object_at_map(agents, "defaults");
        defaults.insert("model".into(), json!(model));
    }
}

fn object_at<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let map = value.as_object_mut().expect("config root is an object");
    object_at_map(map, key)
}

fn object_at_map<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = map.entry(key.to_owned()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("just made an object")
}

/// Writes `bytes` to `path` atomically with mode 600.
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("json.clawfleet-tmp");
    {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::set_permissions(&temporary, fs::Permissions::from_mode(0o600))?;
    fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_fresh_state_dir_gets_the_layout_and_base_config() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(prepare_state_dir(&state, "anthropic/claude-sonnet-4-5", "tok-1").unwrap());
        assert_eq!(mode(&state.join("credentials")), 0o700);
        assert_eq!(mode(&state.join("state")), 0o700);
        assert_eq!(mode(&state.join(CONFIG_FILE)), 0o600);
        let config: Value =
            serde_json::from_str(&fs::read_to_string(state.join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(config["gateway"]["mode"], "local");
        assert_eq!(config["gateway"]["auth"]["mode"], "token");
        assert_eq!(config["gateway"]["auth"]["token"], "tok-1");
        assert_eq!(
            config["agents"]["defaults"]["model"],
            "anthropic/claude-sonnet-4-5"
        );
    }

    #[test]
    fn existing_user_settings_survive_and_unchanged_configs_are_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir_all(&state).unwrap();
        fs::write(
            state.join(CONFIG_FILE),
            r#"{"channels":{"telegram":{"botToken":"1:abc"}},"gateway":{"mode":"remote"}}"#,
        )
        .unwrap();
        assert!(prepare_state_dir(&state, "", "tok-1").unwrap());
        let config: Value =
            serde_json::from_str(&fs::read_to_string(state.join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(config["channels"]["telegram"]["botToken"], "1:abc");
        assert_eq!(config["gateway"]["mode"], "local");
        assert!(!prepare_state_dir(&state, "", "tok-1").unwrap());
        // A new token is a change: it is written.
        assert!(prepare_state_dir(&state, "", "tok-2").unwrap());
    }

    #[test]
    fn hand_written_json5_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir_all(&state).unwrap();
        let text = "{ // comment\n gateway: { mode: 'local' } }";
        fs::write(state.join(CONFIG_FILE), text).unwrap();
        assert!(!prepare_state_dir(&state, "x/y", "tok-1").unwrap());
        assert_eq!(fs::read_to_string(state.join(CONFIG_FILE)).unwrap(), text);
    }
}

//! Prepares a gateway's state dir before it starts (docs/product/instances.md#state-directory): `credentials/` and
//! `state/` exist with mode 700, `openclaw.json` exists with mode 600 and says
//! `gateway.mode=local`, `auth.mode=token` with the instance's token, and the
//! instance's default model. Rewriting the token of a running gateway rotates it: the
//! gateway hot-applies `gateway.auth.token`.
//!
//! Plugins installed once beside the runtime's openclaw (the WhatsApp channel, see
//! `clawfleet toolchain`) are listed in `plugins.load.paths`, and enabled in
//! `plugins.entries.<id>` the way `openclaw plugins install` enables them, so every
//! gateway loads the shared copy instead of downloading its own into the state dir.
//!
//! An existing config (a reattached instance, or one the user changed through the
//! gateway) is kept; only the keys the platform owns are set.

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use serde_json::{Map, Value, json};

const CONFIG_FILE: &str = "openclaw.json";
/// The manifest at the root of an OpenClaw plugin package; it names the plugin's id.
const PLUGIN_MANIFEST: &str = "openclaw.plugin.json";

/// Creates or updates the state dir; returns true when the config file was written.
///
/// `plugin_paths` are plugin package directories every gateway loads (see the module
/// docs); a directory without a plugin manifest is skipped.
pub fn prepare_state_dir(
    state_dir: &Path,
    model: &str,
    gateway_token: &str,
    plugin_paths: &[PathBuf],
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
    let plugins = shared_plugins(plugin_paths);
    apply_platform_keys(&mut config, model, gateway_token, &plugins);
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

/// A plugin installed once for all gateways.
#[derive(Debug)]
struct SharedPlugin {
    /// The plugin id from its manifest (`whatsapp`).
    id: String,
    /// Its package directory, as written into `plugins.load.paths`.
    path: String,
}

fn shared_plugins(paths: &[PathBuf]) -> Vec<SharedPlugin> {
    paths
        .iter()
        .filter_map(|path| {
            let Some(id) = plugin_id_at(path) else {
                tracing::warn!(path = %path.display(), "no plugin manifest here; gateways do not load it");
                return None;
            };
            Some(SharedPlugin {
                id,
                path: path.to_string_lossy().into_owned(),
            })
        })
        .collect()
}

/// The id in the plugin manifest of a package directory.
fn plugin_id_at(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path.join(PLUGIN_MANIFEST)).ok()?;
    let manifest: Value = serde_json::from_str(&text).ok()?;
    manifest
        .get("id")?
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// Sets the keys the platform owns; everything else is left as it is.
fn apply_platform_keys(
    config: &mut Value,
    model: &str,
    gateway_token: &str,
    plugins: &[SharedPlugin],
) {
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
    if !plugins.is_empty() {
        apply_shared_plugins(object_at(config, "plugins"), plugins);
    }
}

/// Lists the shared plugins in `plugins.load.paths` and enables them.
///
/// Other load paths stay, except another copy of a shared plugin: a directory whose
/// manifest has the same id, or a path that no longer exists and ends in the same
/// package name (the shared copy from before the toolchain moved). Two copies of one
/// id conflict, and a missing one makes the gateway try to install the plugin itself.
/// An `enabled` the user set (say `false`) is kept, as `openclaw plugins install` keeps it.
fn apply_shared_plugins(section: &mut Map<String, Value>, plugins: &[SharedPlugin]) {
    let load = object_at_map(section, "load");
    let listed = match load.remove("paths") {
        Some(Value::Array(paths)) => paths,
        Some(Value::String(path)) => vec![Value::String(path)],
        _ => Vec::new(),
    };
    let mut paths: Vec<Value> = Vec::with_capacity(listed.len() + plugins.len());
    for entry in listed {
        let superseded = entry.as_str().is_some_and(|path| {
            plugins
                .iter()
                .any(|plugin| path != plugin.path && is_other_copy(Path::new(path), plugin))
        });
        if !superseded && !paths.contains(&entry) {
            paths.push(entry);
        }
    }
    for plugin in plugins {
        let path = json!(plugin.path);
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    load.insert("paths".into(), Value::Array(paths));
    let entries = object_at_map(section, "entries");
    for plugin in plugins {
        object_at_map(entries, &plugin.id)
            .entry("enabled")
            .or_insert(json!(true));
    }
}

/// Whether `path` holds (or held) another copy of `plugin`.
fn is_other_copy(path: &Path, plugin: &SharedPlugin) -> bool {
    if path.exists() {
        return plugin_id_at(path).is_some_and(|id| id == plugin.id);
    }
    package_name(path).is_some_and(|name| Some(name) == package_name(Path::new(&plugin.path)))
}

/// The last two components of a package directory (`@openclaw/whatsapp`).
fn package_name(path: &Path) -> Option<(&std::ffi::OsStr, &std::ffi::OsStr)> {
    let name = path.file_name()?;
    let parent = path.parent()?.file_name()?;
    Some((parent, name))
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

    fn read_config(state: &Path) -> Value {
        serde_json::from_str(&fs::read_to_string(state.join(CONFIG_FILE)).unwrap()).unwrap()
    }

    /// A plugin package directory laid out like the toolchain's.
    fn plugin_package(root: &Path, id: &str) -> PathBuf {
        let dir = root.join("plugins/node_modules/@openclaw").join(id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(PLUGIN_MANIFEST),
            format!(r#"{{"id":"{id}","channels":["{id}"]}}"#),
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_fresh_state_dir_gets_the_layout_and_base_config() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(prepare_state_dir(&state, "anthropic/claude-sonnet-4-5", "tok-1", &[]).unwrap());
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
        assert!(prepare_state_dir(&state, "", "tok-1", &[]).unwrap());
        let config: Value =
            serde_json::from_str(&fs::read_to_string(state.join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(config["channels"]["telegram"]["botToken"], "1:abc");
        assert_eq!(config["gateway"]["mode"], "local");
        assert!(!prepare_state_dir(&state, "", "tok-1", &[]).unwrap());
        // A new token is a change: it is written.
        assert!(prepare_state_dir(&state, "", "tok-2", &[]).unwrap());
    }

    #[test]
    fn hand_written_json5_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir_all(&state).unwrap();
        let text = "{ // comment\n gateway: { mode: 'local' } }";
        fs::write(state.join(CONFIG_FILE), text).unwrap();
        assert!(!prepare_state_dir(&state, "x/y", "tok-1", &[]).unwrap());
        assert_eq!(fs::read_to_string(state.join(CONFIG_FILE)).unwrap(), text);
    }

    #[test]
    fn shared_plugins_are_loaded_from_their_one_copy_and_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let whatsapp = plugin_package(&dir.path().join("toolchain"), "whatsapp");
        let state = dir.path().join("state");
        assert!(prepare_state_dir(&state, "", "tok-1", std::slice::from_ref(&whatsapp)).unwrap());
        let config = read_config(&state);
        assert_eq!(
            config["plugins"]["load"]["paths"],
            json!([whatsapp.to_str().unwrap()])
        );
        assert_eq!(config["plugins"]["entries"]["whatsapp"]["enabled"], true);
        // Applying it again changes nothing.
        assert!(!prepare_state_dir(&state, "", "tok-1", std::slice::from_ref(&whatsapp)).unwrap());
    }

    #[test]
    fn the_users_plugin_settings_are_kept_beside_the_shared_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let whatsapp = plugin_package(&dir.path().join("toolchain"), "whatsapp");
        let own = plugin_package(&dir.path().join("mine"), "voice-call");
        let state = dir.path().join("state");
        fs::create_dir_all(&state).unwrap();
        let user_config = json!({
            "plugins": {
                "allow": ["voice-call", "whatsapp"],
                "load": {"paths": [own.to_str().unwrap(), "~/not-here/my-plugin"]},
                "entries": {
                    "whatsapp": {"enabled": false, "config": {"pluginHooks": {}}},
                    "voice-call": {"enabled": true, "config": {"provider": "twilio"}}
                }
            }
        });
        fs::write(state.join(CONFIG_FILE), user_config.to_string()).unwrap();
        assert!(prepare_state_dir(&state, "", "tok-1", std::slice::from_ref(&whatsapp)).unwrap());
        let config = read_config(&state);
        assert_eq!(
            config["plugins"]["load"]["paths"],
            json!([
                own.to_str().unwrap(),
                "~/not-here/my-plugin",
                whatsapp.to_str().unwrap()
            ])
        );
        // The user turned WhatsApp off: that stays.
        assert_eq!(config["plugins"]["entries"]["whatsapp"]["enabled"], false);
        assert_eq!(
            config["plugins"]["entries"]["whatsapp"]["config"],
            json!({"pluginHooks": {}})
        );
        assert_eq!(
            config["plugins"]["entries"]["voice-call"],
            user_config["plugins"]["entries"]["voice-call"]
        );
        assert_eq!(
            config["plugins"]["allow"],
            json!(["voice-call", "whatsapp"])
        );
        assert!(!prepare_state_dir(&state, "", "tok-1", std::slice::from_ref(&whatsapp)).unwrap());
    }

    #[test]
    fn other_copies_of_a_shared_plugin_give_way_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let whatsapp = plugin_package(&dir.path().join("toolchain"), "whatsapp");
        // A second copy on disk, and the shared copy from before the toolchain moved.
        let copy = plugin_package(&dir.path().join("elsewhere"), "whatsapp");
        let moved = dir
            .path()
            .join("old-toolchain/plugins/node_modules/@openclaw/whatsapp");
        let state = dir.path().join("state");
        fs::create_dir_all(&state).unwrap();
        fs::write(
            state.join(CONFIG_FILE),
            json!({"plugins": {
                "load": {"paths": [moved.to_str().unwrap(), copy.to_str().unwrap(), "/opt/other"]},
                "entries": {"whatsapp": {"enabled": true}}
            }})
            .to_string(),
        )
        .unwrap();
        assert!(prepare_state_dir(&state, "", "tok-1", std::slice::from_ref(&whatsapp)).unwrap());
        let config = read_config(&state);
        assert_eq!(
            config["plugins"]["load"]["paths"],
            json!(["/opt/other", whatsapp.to_str().unwrap()])
        );
    }

    #[test]
    fn without_shared_plugins_the_plugin_settings_are_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(prepare_state_dir(&state, "", "tok-1", &[]).unwrap());
        assert!(read_config(&state).get("plugins").is_none());
        // A directory that holds no plugin is not listed either.
        let empty = dir.path().join("not-a-plugin");
        fs::create_dir_all(&empty).unwrap();
        assert!(!prepare_state_dir(&state, "", "tok-1", &[empty]).unwrap());
        assert!(read_config(&state).get("plugins").is_none());
    }
}

//! Plugins installed once beside openclaw (the WhatsApp channel, see `clawfleet
//! toolchain`): every gateway lists them in `plugins.load.paths` and enables them in
//! `plugins.entries.<id>` the way `openclaw plugins install` does, so it loads the shared
//! copy instead of downloading its own into the state dir.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use super::keys::merge;

/// The manifest at the root of an OpenClaw plugin package; it names the plugin's id.
pub(super) const PLUGIN_MANIFEST: &str = "openclaw.plugin.json";

/// A plugin installed once for all gateways.
#[derive(Debug)]
pub(super) struct SharedPlugin {
    /// The plugin id from its manifest (`whatsapp`).
    id: String,
    /// Its package directory, as written into `plugins.load.paths`.
    path: String,
}

/// The plugins in `paths`; a directory without a plugin manifest is skipped.
pub(super) fn shared_plugins(paths: &[PathBuf]) -> Vec<SharedPlugin> {
    paths
        .iter()
        .filter_map(|path| {
            let Some(id) = plugin_id_at(path) else {
                tracing::warn!(path = %path.display(), "no plugin manifest here; the gateway does not load it");
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

/// Lists the shared plugins in `plugins.load.paths` and enables them.
///
/// Other load paths stay, except another copy of a shared plugin: a directory whose
/// manifest has the same id, or a path that no longer exists and ends in the same
/// package name (the shared copy from before the toolchain moved). Two copies of one
/// id conflict, and a missing one makes the gateway try to install the plugin itself.
/// An `enabled` the user set (say `false`) is kept, as `openclaw plugins install` keeps it.
pub(super) fn apply_shared_plugins(config: &mut Value, plugins: &[SharedPlugin]) {
    if plugins.is_empty() {
        return;
    }
    let section = config.get("plugins");
    let listed = match section
        .and_then(|plugins| plugins.get("load"))
        .and_then(|load| load.get("paths"))
    {
        Some(Value::Array(paths)) => paths.clone(),
        Some(Value::String(path)) => vec![Value::String(path.clone())],
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
    let mut entries = serde_json::Map::new();
    for plugin in plugins {
        let enabled = section
            .and_then(|plugins| plugins.get("entries"))
            .and_then(|entries| entries.get(&plugin.id))
            .and_then(|entry| entry.get("enabled"))
            .cloned()
            .unwrap_or(json!(true));
        entries.insert(plugin.id.clone(), json!({"enabled": enabled}));
    }
    merge(
        config,
        &json!({"plugins": {"load": {"paths": paths}, "entries": entries}}),
    );
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

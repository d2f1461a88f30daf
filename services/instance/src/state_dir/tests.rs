use std::os::unix::fs::PermissionsExt;

use super::{plugins::PLUGIN_MANIFEST, *};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read_config(state: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(state.join(CONFIG_FILE)).unwrap()).unwrap()
}

fn platform(model: &str, token: &str, plugin_paths: &[PathBuf]) -> PlatformConfig {
    PlatformConfig {
        base: platform_keys(model, &[]),
        gateway_token: token.into(),
        plugin_paths: plugin_paths.to_vec(),
    }
}

fn prepare(state: &Path, model: &str, token: &str, plugin_paths: &[PathBuf]) -> Prepared {
    prepare_state_dir(state, &platform(model, token, plugin_paths)).unwrap()
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
fn a_fresh_state_dir_gets_the_layout_and_the_platforms_keys() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    assert!(prepare(&state, "anthropic/claude-sonnet-4-5", "tok-1", &[]).written);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("credentials")), 0o700);
    assert_eq!(mode(&state.join("state")), 0o700);
    assert_eq!(mode(&state.join(CONFIG_FILE)), 0o600);
    let config = read_config(&state);
    assert_eq!(config["gateway"]["mode"], "local");
    assert_eq!(config["gateway"]["auth"]["mode"], "token");
    assert_eq!(config["gateway"]["auth"]["token"], "tok-1");
    assert_eq!(config["gateway"]["trustedProxies"], json!([]));
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
        r#"{"channels":{"telegram":{"botToken":"1:abc"}},"gateway":{"mode":"remote","port":1}}"#,
    )
    .unwrap();
    assert!(prepare(&state, "", "tok-1", &[]).written);
    let config = read_config(&state);
    assert_eq!(config["channels"]["telegram"]["botToken"], "1:abc");
    assert_eq!(config["gateway"]["mode"], "local");
    assert_eq!(config["gateway"]["port"], 1);
    assert!(!prepare(&state, "", "tok-1", &[]).written);
    // A new token is a change: it is written.
    assert!(prepare(&state, "", "tok-2", &[]).written);
    assert_eq!(read_config(&state)["gateway"]["auth"]["token"], "tok-2");
}

/// What the user set against the platform's keys does not hold: no auth, a trusted
/// proxy of their own, or a `gateway` that is not an object.
#[test]
fn the_platforms_keys_win_over_the_users() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir_all(&state).unwrap();
    for user in [
        json!({"gateway": {"auth": {"mode": "none", "token": "mine"}, "trustedProxies": ["0.0.0.0/0"]}}),
        json!({"gateway": "off"}),
        json!({"gateway": {"auth": ["none"]}}),
    ] {
        fs::write(state.join(CONFIG_FILE), user.to_string()).unwrap();
        let proxies = vec!["10.0.0.7".to_owned()];
        let platform = PlatformConfig {
            base: platform_keys("", &proxies),
            gateway_token: "tok-1".into(),
            plugin_paths: Vec::new(),
        };
        prepare_state_dir(&state, &platform).unwrap();
        let config = read_config(&state);
        assert_eq!(config["gateway"]["auth"]["mode"], "token", "{user}");
        assert_eq!(config["gateway"]["auth"]["token"], "tok-1", "{user}");
        assert_eq!(
            config["gateway"]["trustedProxies"],
            json!(["10.0.0.7"]),
            "{user}"
        );
    }
}

/// Whatever the base config says, the token check and the proxy list are enforced.
#[test]
fn a_base_config_cannot_turn_the_token_check_off() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for base in [
        json!({"gateway": {"auth": {"mode": "none"}, "mode": "remote"}}),
        json!({}),
        json!("not an object"),
    ] {
        let platform = PlatformConfig {
            base: base.clone(),
            gateway_token: "tok-1".into(),
            plugin_paths: Vec::new(),
        };
        prepare_state_dir(&state, &platform).unwrap();
        let config = read_config(&state);
        assert_eq!(config["gateway"]["auth"]["mode"], "token", "{base}");
        assert_eq!(config["gateway"]["mode"], "local", "{base}");
        assert_eq!(config["gateway"]["trustedProxies"], json!([]), "{base}");
    }
}

/// A file that is not JSON (hand-written JSON5, a truncated write, binary) or is JSON but
/// not an object is moved aside, and the gateway starts from the platform's keys.
#[test]
fn a_config_that_is_not_a_json_object_is_moved_aside_and_replaced() {
    for (name, bytes) in [
        (
            "json5",
            b"{ // comment\n gateway: { auth: { mode: 'none' } } }".to_vec(),
        ),
        ("truncated", br#"{"gateway": {"auth""#.to_vec()),
        ("array", b"[1, 2]".to_vec()),
        ("null", b"null".to_vec()),
        ("empty", Vec::new()),
        ("binary", vec![0xff, 0xfe, 0x00]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir_all(&state).unwrap();
        fs::write(state.join(CONFIG_FILE), &bytes).unwrap();
        let prepared = prepare(&state, "x/y", "tok-1", &[]);
        assert!(prepared.written, "{name}");
        let aside = state.join(UNREADABLE_CONFIG_FILE);
        assert_eq!(
            prepared.set_aside.as_deref(),
            Some(aside.as_path()),
            "{name}"
        );
        assert_eq!(fs::read(&aside).unwrap(), bytes, "{name}");
        assert_eq!(mode(&aside), 0o600, "{name}");
        let config = read_config(&state);
        assert_eq!(config["gateway"]["auth"]["mode"], "token", "{name}");
        assert_eq!(config["gateway"]["auth"]["token"], "tok-1", "{name}");
        assert_eq!(config["agents"]["defaults"]["model"], "x/y", "{name}");
        assert_eq!(mode(&state.join(CONFIG_FILE)), 0o600, "{name}");
    }
}

#[test]
fn shared_plugins_are_loaded_from_their_one_copy_and_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let whatsapp = plugin_package(&dir.path().join("toolchain"), "whatsapp");
    let state = dir.path().join("state");
    assert!(prepare(&state, "", "tok-1", std::slice::from_ref(&whatsapp)).written);
    let config = read_config(&state);
    assert_eq!(
        config["plugins"]["load"]["paths"],
        json!([whatsapp.to_str().unwrap()])
    );
    assert_eq!(config["plugins"]["entries"]["whatsapp"]["enabled"], true);
    // Applying it again changes nothing.
    assert!(!prepare(&state, "", "tok-1", std::slice::from_ref(&whatsapp)).written);
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
    assert!(prepare(&state, "", "tok-1", std::slice::from_ref(&whatsapp)).written);
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
    assert!(!prepare(&state, "", "tok-1", std::slice::from_ref(&whatsapp)).written);
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
    assert!(prepare(&state, "", "tok-1", std::slice::from_ref(&whatsapp)).written);
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
    assert!(prepare(&state, "", "tok-1", &[]).written);
    assert!(read_config(&state).get("plugins").is_none());
    // A directory that holds no plugin is not listed either.
    let empty = dir.path().join("not-a-plugin");
    fs::create_dir_all(&empty).unwrap();
    assert!(!prepare(&state, "", "tok-1", &[empty]).written);
    assert!(read_config(&state).get("plugins").is_none());
}

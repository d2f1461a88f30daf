//! The keys the platform owns in a gateway's `openclaw.json`
//! (docs/product/instances.md#state-directory), and the merge that lays them over the
//! config a user changed through the gateway.

use serde_json::{Map, Value, json};

/// The platform's keys for an instance: `gateway.mode=local`, `gateway.auth.mode=token`,
/// the exact trusted proxies (none when the gateway is reached only over loopback), and
/// the instance's default model when it has one. The token is not here: it comes from
/// `OPENCLAW_GATEWAY_TOKEN` when the gateway starts (see [`super::PlatformConfig`]).
///
/// The Kubernetes runtime puts this in the instance's ConfigMap and the local runtime in
/// a file beside the instance; either way `clawfleet instance run` reads it from
/// `CLAWFLEET_BASE_CONFIG`.
pub fn platform_keys(model: &str, trusted_proxies: &[String]) -> Value {
    let mut keys = json!({
        "gateway": {
            "mode": "local",
            "auth": {"mode": "token"},
            "trustedProxies": trusted_proxies,
        }
    });
    if !model.is_empty() {
        keys["agents"] = json!({"defaults": {"model": model}});
    }
    keys
}

/// What holds whatever base config was given: a gateway that accepts connections without
/// the token, or trusts proxy headers from anyone, is never started.
pub(super) fn enforced_keys(base: &Value) -> Value {
    let trusted_proxies = base
        .get("gateway")
        .and_then(|gateway| gateway.get("trustedProxies"))
        .filter(|proxies| proxies.is_array())
        .cloned()
        .unwrap_or_else(|| json!([]));
    json!({
        "gateway": {
            "mode": "local",
            "auth": {"mode": "token"},
            "trustedProxies": trusted_proxies,
        }
    })
}

/// Lays `from` over `into`: objects merge key by key (a non-object in `into` becomes an
/// object first), anything else (arrays included) replaces what was there.
pub(super) fn merge(into: &mut Value, from: &Value) {
    let Value::Object(from) = from else {
        *into = from.clone();
        return;
    };
    if !into.is_object() {
        *into = Value::Object(Map::new());
    }
    if let Value::Object(into) = into {
        for (key, value) in from {
            merge(into.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

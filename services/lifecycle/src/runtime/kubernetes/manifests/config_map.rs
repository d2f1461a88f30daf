//! The base gateway config (docs/product/instances.md#state-directory): the keys the platform owns in `openclaw.json`.
//! An init container merges them into the config on the PVC before the gateway
//! starts (see [`super::state_dir`]), so what the user changed through the gateway
//! survives. The token is not here: the gateway reads it from its environment.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

use super::metadata;
use crate::{
    model::InstanceSpec,
    runtime::kubernetes::{config::KubernetesConfig, kinds::ObjectKind},
};

/// The ConfigMap key, and the file name in the state dir.
pub const CONFIG_FILE: &str = "openclaw.json";

/// `gateway.mode=local`, `gateway.auth.mode=token`, the exact trusted proxies, and the
/// instance's default model when it has one.
pub fn base_gateway_config(config: &KubernetesConfig, spec: &InstanceSpec) -> Value {
    let mut base = json!({
        "gateway": {
            "mode": "local",
            "auth": {"mode": "token"},
            "trustedProxies": config.trusted_proxies,
        }
    });
    if !spec.model.is_empty() {
        base["agents"] = json!({"defaults": {"model": spec.model}});
    }
    base
}

pub fn config_map(config: &KubernetesConfig, spec: &InstanceSpec) -> ConfigMap {
    let text = serde_json::to_string_pretty(&base_gateway_config(config, spec))
        .expect("json values serialise");
    ConfigMap {
        metadata: metadata(config, ObjectKind::ConfigMap, &spec.id),
        data: Some(BTreeMap::from([(CONFIG_FILE.to_owned(), text)])),
        ..ConfigMap::default()
    }
}

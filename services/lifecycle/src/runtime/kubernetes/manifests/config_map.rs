//! The base gateway config (docs/product/instances.md#state-directory): the keys the
//! platform owns in `openclaw.json`. The gateway container's entrypoint, `clawfleet
//! instance run`, reads it from the mounted ConfigMap (`CLAWFLEET_BASE_CONFIG`) and lays it
//! over the config on the PVC before the gateway starts, so what the user changed through
//! the gateway survives. The token is not here: the runner takes it from the Secret.

use std::collections::BTreeMap;

use clawfleet_instance::state_dir::platform_keys;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;

use super::metadata;
use crate::{
    model::InstanceSpec,
    runtime::kubernetes::{config::KubernetesConfig, kinds::ObjectKind},
};

pub use clawfleet_instance::state_dir::CONFIG_FILE;

/// `gateway.mode=local`, `gateway.auth.mode=token`, the exact trusted proxies, and the
/// instance's default model when it has one: the same keys the local runtime gives.
pub fn base_gateway_config(config: &KubernetesConfig, spec: &InstanceSpec) -> Value {
    platform_keys(&spec.model, &config.trusted_proxies)
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

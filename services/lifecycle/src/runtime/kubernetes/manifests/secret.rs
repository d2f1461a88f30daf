//! The instance Secret: the gateway token and the provider API keys, all read by the
//! gateway as environment variables.

use std::collections::BTreeMap;

use clawfleet_kit::config::keys;
use k8s_openapi::{ByteString, api::core::v1::Secret};

use super::metadata;
use crate::{
    model::InstanceSpec,
    runtime::kubernetes::{config::KubernetesConfig, kinds::ObjectKind},
};

/// Written as `data` (never `stringData`, which the apiserver folds into `data`, so an
/// apply of it would never match what is stored).
pub fn secret(config: &KubernetesConfig, spec: &InstanceSpec) -> Secret {
    let mut data: BTreeMap<String, ByteString> = spec
        .secrets
        .iter()
        .map(|(name, value)| (name.clone(), ByteString(value.as_bytes().to_vec())))
        .collect();
    data.insert(
        keys::OPENCLAW_GATEWAY_TOKEN.to_owned(),
        ByteString(spec.gateway_token.as_bytes().to_vec()),
    );
    Secret {
        metadata: metadata(config, ObjectKind::Secret, &spec.id),
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

//! What the standard `OTEL_*` variables ask of trace export (docs/product/traces.md,
//! "Configuration"): where to send (`OTEL_EXPORTER_OTLP_ENDPOINT`, or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` used as given), over which protocol
//! (`OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc`, the default, or `http/protobuf`), which traces
//! to keep (`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`; the default keeps every
//! trace and follows the caller's decision) and what to say about the process
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`). Read through the platform's env map,
//! so in-process tests configure it like a deployment does.

use opentelemetry_sdk::trace::Sampler;

use crate::config::{self, EnvSource, keys};

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// Everything trace export needs, read from the environment.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// The URL spans are sent to (for HTTP, the full `/v1/traces` URL).
    pub endpoint: String,
    pub protocol: Protocol,
    pub sampler: Sampler,
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES` pairs, percent-decoded.
    pub resource_attributes: Vec<(String, String)>,
}

/// A setting that cannot be honoured; export stays off rather than guess.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL {0:?} is not supported (use grpc or http/protobuf)")]
    Protocol(String),
    #[error("OTEL_TRACES_SAMPLER {0:?} is not supported")]
    Sampler(String),
    #[error("OTEL_TRACES_SAMPLER_ARG {0:?} is not a ratio between 0 and 1")]
    SamplerArg(String),
    #[error("OTEL_RESOURCE_ATTRIBUTES entry {0:?} is not key=value")]
    ResourceAttribute(String),
}

impl ExportSettings {
    /// The export settings, or `None` when no endpoint is set (export off).
    pub fn from_env(
        env: &dyn EnvSource,
        default_service_name: &str,
    ) -> Result<Option<Self>, SettingsError> {
        let protocol = match config::optional(env, keys::OTEL_EXPORTER_OTLP_PROTOCOL).as_deref() {
            None | Some("grpc") => Protocol::Grpc,
            Some("http/protobuf") => Protocol::HttpProtobuf,
            Some(other) => return Err(SettingsError::Protocol(other.to_owned())),
        };
        let endpoint = match (
            config::optional(env, keys::OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
            config::optional(env, keys::OTEL_EXPORTER_OTLP_ENDPOINT),
        ) {
            (Some(traces_endpoint), _) => traces_endpoint,
            (None, Some(base)) if protocol == Protocol::HttpProtobuf => {
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, Some(base)) => base,
            (None, None) => return Ok(None),
        };
        let sampler = sampler(
            config::optional(env, keys::OTEL_TRACES_SAMPLER).as_deref(),
            config::optional(env, keys::OTEL_TRACES_SAMPLER_ARG).as_deref(),
        )?;
        let resource_attributes = config::optional(env, keys::OTEL_RESOURCE_ATTRIBUTES)
            .map(|text| resource_attributes(&text))
            .transpose()?
            .unwrap_or_default();
        let service_name = config::optional(env, keys::OTEL_SERVICE_NAME)
            .or_else(|| {
                resource_attributes
                    .iter()
                    .find(|(key, _)| key == "service.name")
                    .map(|(_, value)| value.clone())
            })
            .unwrap_or_else(|| default_service_name.to_owned());
        Ok(Some(Self {
            endpoint,
            protocol,
            sampler,
            service_name,
            resource_attributes,
        }))
    }
}

/// The sampler the two sampler variables name; unset, every trace is kept and a
/// caller's decision is followed.
fn sampler(name: Option<&str>, argument: Option<&str>) -> Result<Sampler, SettingsError> {
    let ratio = || -> Result<f64, SettingsError> {
        match argument {
            None => Ok(1.0),
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|ratio| (0.0..=1.0).contains(ratio))
                .ok_or_else(|| SettingsError::SamplerArg(text.to_owned())),
        }
    };
    Ok(match name.unwrap_or("parentbased_always_on") {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
        }
        other => return Err(SettingsError::Sampler(other.to_owned())),
    })
}

/// `key1=value1,key2=value2`, values percent-encoded, as the specification writes them.
fn resource_attributes(text: &str) -> Result<Vec<(String, String)>, SettingsError> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (key, value) = entry
                .split_once('=')
                .filter(|(key, _)| !key.trim().is_empty())
                .ok_or_else(|| SettingsError::ResourceAttribute(entry.to_owned()))?;
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .map_err(|_| SettingsError::ResourceAttribute(entry.to_owned()))?;
            Ok((key.trim().to_owned(), value.into_owned()))
        })
        .collect()
}

#[cfg(test)]
#[path = "otel_settings_tests.rs"]
mod tests;

use super::*;
use crate::config::EnvMap;

fn settings(pairs: &[(&str, &str)]) -> Result<Option<ExportSettings>, SettingsError> {
    let env = EnvMap::from_pairs(pairs.iter().copied());
    ExportSettings::from_env(&env, "clawfleet-edge")
}

#[test]
fn without_an_endpoint_nothing_is_exported() {
    assert!(settings(&[]).unwrap().is_none());
}

#[test]
fn grpc_is_the_default_and_keeps_every_trace_following_the_caller() {
    let settings = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")])
        .unwrap()
        .unwrap();
    assert_eq!(settings.protocol, Protocol::Grpc);
    assert_eq!(settings.endpoint, "http://127.0.0.1:4317");
    assert_eq!(settings.service_name, "clawfleet-edge");
    assert!(matches!(settings.sampler, Sampler::ParentBased(_)));
}

#[test]
fn http_protobuf_sends_to_the_traces_path_unless_a_traces_endpoint_is_given() {
    let base = settings(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(base.protocol, Protocol::HttpProtobuf);
    assert_eq!(base.endpoint, "http://127.0.0.1:4318/v1/traces");
    let explicit = settings(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:9999/custom",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(explicit.endpoint, "http://collector:9999/custom");
}

#[test]
fn samplers_follow_the_standard_names() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
    let ratio = settings(&[
        endpoint,
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ])
    .unwrap()
    .unwrap();
    let described = format!("{:?}", ratio.sampler);
    assert!(
        described.starts_with("ParentBased(") && described.contains("TraceIdRatioBased(0.25)"),
        "{described}"
    );
    assert_eq!(
        settings(&[endpoint, ("OTEL_TRACES_SAMPLER", "sometimes")]).unwrap_err(),
        SettingsError::Sampler("sometimes".to_owned())
    );
    assert_eq!(
        settings(&[
            endpoint,
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5")
        ])
        .unwrap_err(),
        SettingsError::SamplerArg("1.5".to_owned())
    );
    assert_eq!(
        settings(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).unwrap_err(),
        SettingsError::Protocol("http/json".to_owned())
    );
}

#[test]
fn resource_attributes_are_decoded_and_may_name_the_service() {
    let settings = settings(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=prod, service.name=edge%20eu,k8s.pod.name=edge-1",
        ),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(settings.service_name, "edge eu");
    assert!(
        settings
            .resource_attributes
            .contains(&("deployment.environment.name".to_owned(), "prod".to_owned()))
    );
    assert!(
        super::resource_attributes("novalue")
            .unwrap_err()
            .to_string()
            .contains("novalue")
    );
}

//! The optional service TLS component (`deploy/components/service-tls`), rendered into the
//! dev overlay the way an operator adds it (`service_tls_overlay/`): every service points
//! `CLAWFLEET_TLS_*` into a mounted Secret that a Certificate of the platform CA writes;
//! each Certificate names every host its callers dial and serves both ways; the gRPC
//! services' probes no longer use the kubelet's plaintext gRPC probe. That the binary
//! speaks TLS with such settings is tests/tests/service_tls.rs.

use std::collections::BTreeSet;

use clawfleet_kit::{config::keys, service_keys::Service};
use serde_json::Value;

use crate::render::{of_kind, test_overlay};

fn rendered() -> Vec<Value> {
    test_overlay("service_tls_overlay")
}

/// The Deployment whose container runs `service`.
fn deployment(documents: &[Value], service: Service) -> &Value {
    of_kind(documents, "Deployment")
        .into_iter()
        .find(|deployment| {
            deployment["spec"]["template"]["spec"]["containers"][0]["args"][0]
                == service.subcommand()
        })
        .unwrap_or_else(|| panic!("no Deployment runs {service:?}"))
}

/// The value of `name` in the container's env.
fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == name)
        .and_then(|entry| entry["value"].as_str())
}

/// The host part of every `*_ADDR` the rendered ConfigMaps give any service.
fn dialled_hosts(documents: &[Value]) -> BTreeSet<String> {
    of_kind(documents, "ConfigMap")
        .into_iter()
        .filter_map(|map| map["data"].as_object())
        .flat_map(|data| data.iter())
        .filter(|(key, _)| key.ends_with("_ADDR"))
        .filter_map(|(_, value)| {
            value
                .as_str()?
                .rsplit_once(':')
                .map(|(host, _)| host.to_owned())
        })
        .collect()
}

#[test]
fn every_service_reads_its_certificate_from_the_secret_its_certificate_writes() {
    let documents = rendered();
    let certificates = of_kind(&documents, "Certificate");
    assert_eq!(certificates.len(), Service::ALL.len(), "one per service");
    for service in Service::ALL {
        let deployment = deployment(&documents, service);
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let files = [
            keys::CLAWFLEET_TLS_CERT_FILE,
            keys::CLAWFLEET_TLS_KEY_FILE,
            keys::CLAWFLEET_TLS_CA_FILE,
        ]
        .map(|key| env_value(container, key).unwrap_or_else(|| panic!("{service:?} has no {key}")));
        let mount = container["volumeMounts"]
            .as_array()
            .expect("volume mounts")
            .iter()
            .find(|mount| {
                files
                    .iter()
                    .all(|file| file.starts_with(mount["mountPath"].as_str().unwrap_or("-")))
            })
            .unwrap_or_else(|| panic!("{service:?}: no mount holds {files:?}"));
        assert_eq!(mount["readOnly"], true, "{service:?}");
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|volume| volume["name"] == mount["name"])
            .expect("the mounted volume");
        let secret = volume["secret"]["secretName"]
            .as_str()
            .expect("a Secret volume");
        // cert-manager's key names: tls.crt, tls.key, ca.crt.
        let base = mount["mountPath"].as_str().unwrap();
        assert_eq!(
            files,
            ["tls.crt", "tls.key", "ca.crt"].map(|name| format!("{base}/{name}")),
            "{service:?}"
        );
        let certificate = certificates
            .iter()
            .find(|certificate| certificate["spec"]["secretName"] == secret)
            .unwrap_or_else(|| panic!("{service:?}: no Certificate writes {secret}"));
        let usages = certificate["spec"]["usages"].as_array().expect("usages");
        for usage in ["server auth", "client auth"] {
            assert!(
                usages.iter().any(|value| value == usage),
                "{service:?}: {usage}"
            );
        }
    }
}

#[test]
fn every_dialled_host_is_named_by_the_certificate_of_the_service_behind_it() {
    let documents = rendered();
    let hosts = dialled_hosts(&documents);
    assert!(
        !hosts.is_empty(),
        "the ConfigMaps name the services' addresses"
    );
    let named: BTreeSet<String> = of_kind(&documents, "Certificate")
        .into_iter()
        .flat_map(|certificate| {
            certificate["spec"]["dnsNames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect();
    for host in &hosts {
        assert!(named.contains(host), "no certificate names {host}");
    }
}

#[test]
fn grpc_services_are_probed_without_the_plaintext_grpc_probe() {
    let documents = rendered();
    for service in [
        Service::Lifecycle,
        Service::Bridge,
        Service::Channels,
        Service::Auth,
    ] {
        let container =
            &deployment(&documents, service)["spec"]["template"]["spec"]["containers"][0];
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            let probe_spec = &container[probe];
            assert!(
                probe_spec["grpc"].is_null(),
                "{service:?} {probe} still uses grpc"
            );
            assert_eq!(
                probe_spec["tcpSocket"]["port"].as_u64(),
                Some(u64::from(service.default_port())),
                "{service:?} {probe}"
            );
        }
    }
}

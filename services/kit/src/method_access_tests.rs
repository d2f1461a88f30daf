use std::collections::BTreeSet;

use prost::Message;
use prost_types::FileDescriptorSet;

use super::*;

/// Every `(service, method)` the clawfleet protos declare.
fn declared_methods() -> BTreeSet<(String, String)> {
    let set = FileDescriptorSet::decode(clawfleet_contracts::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = BTreeSet::new();
    for file in set.file {
        let package = file.package().to_owned();
        if !package.starts_with("clawfleet.") {
            continue;
        }
        for service in file.service {
            let name = format!("{package}.{}", service.name());
            for method in &service.method {
                methods.insert((name.clone(), method.name().to_owned()));
            }
        }
    }
    methods
}

#[test]
fn the_table_lists_exactly_the_declared_methods_once_each() {
    let listed: Vec<(String, String)> = METHOD_ACCESS
        .iter()
        .map(|row| (row.service.to_owned(), row.method.to_owned()))
        .collect();
    let unique: BTreeSet<_> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "a method is listed twice");
    assert_eq!(unique, declared_methods());
}

#[test]
fn gateway_tokens_and_in_instance_commands_have_one_caller_each() {
    assert_eq!(
        verdict("/clawfleet.lifecycle.v1.InstanceService/ResolveGateway"),
        Verdict::Listed(&[Principal::Bridge])
    );
    assert_eq!(
        verdict("/clawfleet.lifecycle.v1.InstanceService/ExecInInstance"),
        Verdict::Listed(&[Principal::Channels])
    );
}

#[test]
fn probes_are_open_and_anything_else_is_unknown() {
    assert_eq!(verdict("/grpc.health.v1.Health/Check"), Verdict::Open);
    assert_eq!(
        verdict("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
        Verdict::Open
    );
    for path in [
        "/clawfleet.lifecycle.v1.InstanceService/Nope",
        "/clawfleet.lifecycle.v1.InstanceService",
        "/",
        "",
        "/grpc.health.v2.Health/Check",
    ] {
        assert_eq!(verdict(path), Verdict::Unknown, "{path}");
    }
}

#[test]
fn every_row_has_a_caller() {
    for row in METHOD_ACCESS {
        assert!(!row.callers.is_empty(), "{row:?}");
    }
}

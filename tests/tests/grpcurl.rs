//! The real grpcurl (reflection v1alpha) lists, describes and calls the services with
//! no proto files, as an operator would.

use std::process::Command;

use clawfleet_tests::{
    platform::{Platform, PlatformOptions},
    tools::grpcurl_bin,
};

fn grpcurl(args: &[&str]) -> (bool, String) {
    let output = Command::new(grpcurl_bin())
        .args(args)
        .output()
        .expect("run grpcurl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn grpcurl_lists_describes_and_calls_by_json() {
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 24000)).unwrap();
    let address = platform.lifecycle_address.as_str();
    let authorization = format!("authorization: Bearer {}", platform.options.api_key);

    let (ok, services) = grpcurl(&["-plaintext", address, "list"]);
    assert!(ok, "{services}");
    for service in [
        "clawfleet.lifecycle.v1.InstanceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            services.lines().any(|line| line.trim() == service),
            "{service} missing from:\n{services}"
        );
    }

    let (ok, description) = grpcurl(&[
        "-plaintext",
        address,
        "describe",
        "clawfleet.lifecycle.v1.InstanceService",
    ]);
    assert!(ok, "{description}");
    for rpc in [
        "CreateInstance",
        "GetInstance",
        "ListInstances",
        "DeleteInstance",
        "StopInstance",
        "StartInstance",
        "WatchInstances",
        "ResolveGateway",
        "ExecInInstance",
        "SetOwnerPlan",
        "RotateProviderKey",
        "GetInstanceUsage",
        "CreateBackup",
        "ListBackups",
        "RestoreBackup",
        "DeleteBackup",
    ] {
        assert!(
            description.contains(&format!("rpc {rpc}")),
            "{rpc} missing from:\n{description}"
        );
    }
    let (ok, message) = grpcurl(&[
        "-plaintext",
        address,
        "describe",
        "clawfleet.lifecycle.v1.Instance",
    ]);
    assert!(
        ok && message.contains("repeated .clawfleet.lifecycle.v1.Pod pods"),
        "{message}"
    );

    let (ok, health) = grpcurl(&[
        "-plaintext",
        "-d",
        r#"{"service":"clawfleet.lifecycle.v1.InstanceService"}"#,
        address,
        "grpc.health.v1.Health/Check",
    ]);
    assert!(ok && health.contains("SERVING"), "{health}");

    // Calls by JSON: create a stopped-right-away instance, read it back, delete it.
    let (ok, created) = grpcurl(&[
        "-plaintext",
        "-H",
        &authorization,
        "-d",
        r#"{"id":"from-grpcurl","plan":"PLAN_PRO"}"#,
        address,
        "clawfleet.lifecycle.v1.InstanceService/CreateInstance",
    ]);
    assert!(ok, "{created}");
    assert!(created.contains(r#""id": "from-grpcurl""#), "{created}");
    let (ok, stopped) = grpcurl(&[
        "-plaintext",
        "-H",
        &authorization,
        "-d",
        r#"{"id":"from-grpcurl"}"#,
        address,
        "clawfleet.lifecycle.v1.InstanceService/StopInstance",
    ]);
    assert!(ok, "{stopped}");
    let (ok, got) = grpcurl(&[
        "-plaintext",
        "-H",
        &authorization,
        "-d",
        r#"{"id":"from-grpcurl"}"#,
        address,
        "clawfleet.lifecycle.v1.InstanceService/GetInstance",
    ]);
    assert!(
        ok && got.contains("PLAN_PRO") && got.contains("DESIRED_STATE_STOPPED"),
        "{got}"
    );
    assert!(
        !got.contains("token"),
        "the gateway token must never be returned: {got}"
    );

    // Errors come back as gRPC statuses; internal methods refuse operators.
    let (ok, missing) = grpcurl(&[
        "-plaintext",
        "-H",
        &authorization,
        "-d",
        r#"{"id":"nobody"}"#,
        address,
        "clawfleet.lifecycle.v1.InstanceService/GetInstance",
    ]);
    assert!(!ok && missing.contains("NotFound"), "{missing}");
    let (ok, refused) = grpcurl(&[
        "-plaintext",
        "-H",
        &authorization,
        "-d",
        r#"{"instance_id":"from-grpcurl"}"#,
        address,
        "clawfleet.lifecycle.v1.InstanceService/ResolveGateway",
    ]);
    assert!(!ok && refused.contains("PermissionDenied"), "{refused}");
    let (ok, anonymous) = grpcurl(&[
        "-plaintext",
        "-d",
        r#"{}"#,
        address,
        "clawfleet.lifecycle.v1.InstanceService/ListInstances",
    ]);
    assert!(!ok && anonymous.contains("Unauthenticated"), "{anonymous}");

    // The bridge is reachable the same way.
    let bridge = platform.bridge_address.as_str();
    let (ok, services) = grpcurl(&["-plaintext", bridge, "list"]);
    assert!(
        ok && services
            .lines()
            .any(|line| line.trim() == "clawfleet.bridge.v1.GatewayBridgeService"),
        "{services}"
    );
    let (ok, description) = grpcurl(&[
        "-plaintext",
        bridge,
        "describe",
        "clawfleet.bridge.v1.GatewayBridgeService",
    ]);
    assert!(
        ok && description.contains("rpc Call") && description.contains("rpc VncTunnel"),
        "{description}"
    );
    let (ok, not_running) = grpcurl(&[
        "-plaintext",
        "-H",
        &authorization,
        "-d",
        r#"{"instance_id":"from-grpcurl","method":"status","params":{}}"#,
        bridge,
        "clawfleet.bridge.v1.GatewayBridgeService/Call",
    ]);
    assert!(
        !ok && not_running.contains("FailedPrecondition") && not_running.contains("start it"),
        "a stopped instance's gateway cannot answer until it is started: {not_running}"
    );

    let (ok, deleted) = grpcurl(&[
        "-plaintext",
        "-H",
        &authorization,
        "-d",
        r#"{"id":"from-grpcurl","preserve_data":false}"#,
        address,
        "clawfleet.lifecycle.v1.InstanceService/DeleteInstance",
    ]);
    assert!(ok && deleted.contains("from-grpcurl"), "{deleted}");
}

use super::*;

#[test]
fn paths_name_the_service_and_the_method() {
    assert_eq!(
        service_and_method("/clawfleet.lifecycle.v1.InstanceService/CreateInstance"),
        Some(("clawfleet.lifecycle.v1.InstanceService", "CreateInstance"))
    );
    assert_eq!(service_and_method("/"), None);
    assert_eq!(service_and_method("/only"), None);
    assert_eq!(service_and_method("/a/b/c"), None);
    assert_eq!(service_and_method("//Method"), None);
}

#[test]
fn probes_and_reflection_are_not_traced() {
    assert!(is_untraced("grpc.health.v1.Health"));
    assert!(is_untraced("grpc.reflection.v1.ServerReflection"));
    assert!(!is_untraced("clawfleet.lifecycle.v1.InstanceService"));
    let request = Request::builder()
        .uri("/grpc.health.v1.Health/Check")
        .body(())
        .unwrap();
    assert!(GrpcServerSpan.make_span(&request).is_none());
}

#[test]
fn the_grpc_status_is_read_from_headers_or_trailers() {
    let mut headers = HeaderMap::new();
    assert_eq!(grpc_status(&headers), None);
    headers.insert("grpc-status", "5".parse().unwrap());
    assert_eq!(grpc_status(&headers), Some(5));
    headers.insert("grpc-status", "five".parse().unwrap());
    assert_eq!(grpc_status(&headers), None);
}

#[test]
fn only_a_known_role_is_recorded() {
    let mut headers = HeaderMap::new();
    assert_eq!(caller_role(&headers), None);
    headers.insert(ROLE_METADATA_KEY, "operator".parse().unwrap());
    assert_eq!(caller_role(&headers), Some("operator"));
    headers.insert(
        ROLE_METADATA_KEY,
        "sk-secret-looking-value".parse().unwrap(),
    );
    assert_eq!(caller_role(&headers), None);
}

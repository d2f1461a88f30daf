use super::*;
use crate::{
    identity::{ROLE_METADATA_KEY, SUBJECT_METADATA_KEY},
    method_access::METHOD_ACCESS,
    service_token::{ServiceDigests, derive_service_token},
};

const ROOT: &str = "access-layer-tests-root-0123456789";
const API_KEY: &str = "operator-key-for-access-tests";

fn credentials() -> Credentials {
    let tokens: Vec<(Principal, String)> = Principal::SERVICES
        .iter()
        .map(|service| (*service, derive_service_token(ROOT, *service).unwrap()))
        .collect();
    Credentials {
        platform_api_key: API_KEY.into(),
        service_digests: ServiceDigests::of_tokens(
            tokens
                .iter()
                .map(|(service, token)| (*service, token.as_str())),
        )
        .unwrap(),
        tls: None,
    }
}

fn bearer(principal: Principal) -> String {
    match principal {
        Principal::Operator => format!("Bearer {API_KEY}"),
        service => format!("Bearer {}", derive_service_token(ROOT, service).unwrap()),
    }
}

fn request(path: &str, authorization: Option<&str>) -> Request<()> {
    let mut builder = Request::builder().uri(path);
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    builder.body(()).unwrap()
}

#[test]
fn every_method_admits_exactly_its_callers() {
    let credentials = credentials();
    for row in METHOD_ACCESS {
        let path = format!("/{}/{}", row.service, row.method);
        for principal in Principal::ALL {
            let mut call = request(&path, Some(&bearer(principal)));
            let outcome = admit(&credentials, &mut call);
            if row.callers.contains(&principal) {
                outcome.unwrap();
                assert_eq!(call.extensions().get::<Principal>(), Some(&principal));
                assert!(call.extensions().get::<Caller>().is_some());
            } else {
                let status = outcome.unwrap_err();
                assert_eq!(status.code(), tonic::Code::PermissionDenied, "{path}");
                assert!(status.message().starts_with(DENIED_PREFIX));
                assert!(call.extensions().get::<Caller>().is_none());
            }
        }
        for authorization in [None, Some("Bearer wrong-token"), Some(ROOT)] {
            let status = admit(&credentials, &mut request(&path, authorization)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{path}");
        }
    }
}

#[test]
fn probes_need_no_credential_and_unknown_methods_are_refused_to_all() {
    let credentials = credentials();
    admit(
        &credentials,
        &mut request("/grpc.health.v1.Health/Check", None),
    )
    .unwrap();
    for principal in Principal::ALL {
        let mut call = request(
            "/clawfleet.lifecycle.v1.InstanceService/DropEverything",
            Some(&bearer(principal)),
        );
        let status = admit(&credentials, &mut call).unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    }
}

#[test]
fn the_edge_passes_on_the_user_it_authenticated() {
    let mut call = request(
        "/clawfleet.lifecycle.v1.InstanceService/GetInstance",
        Some(&bearer(Principal::Edge)),
    );
    call.headers_mut()
        .insert(ROLE_METADATA_KEY, "app".parse().unwrap());
    call.headers_mut()
        .insert(SUBJECT_METADATA_KEY, "user-7".parse().unwrap());
    admit(&credentials(), &mut call).unwrap();
    assert_eq!(
        call.extensions().get::<Caller>(),
        Some(&Caller::app_user("user-7"))
    );
}

#[tokio::test]
async fn refused_calls_never_reach_the_routes() {
    use tower::ServiceExt;
    let reached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reached.clone();
    let routes = tower::service_fn(move |_: Request<()>| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, std::convert::Infallible>(Response::new(String::new())) }
    });
    let service = AccessLayer::new(credentials()).layer(routes);
    let path = "/clawfleet.lifecycle.v1.InstanceService/ResolveGateway";
    let denied = service
        .clone()
        .oneshot(request(path, Some(&bearer(Principal::Edge))))
        .await
        .unwrap();
    assert_eq!(denied.headers()["grpc-status"], "7");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
    service
        .oneshot(request(path, Some(&bearer(Principal::Bridge))))
        .await
        .unwrap();
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 1);
}

use super::*;
use crate::service_token::derive_service_token;

const ROOT: &str = "identity-tests-root-0123456789";

fn token(service: Principal) -> String {
    derive_service_token(ROOT, service).unwrap()
}

fn credentials() -> Credentials {
    let tokens: Vec<(Principal, String)> = Principal::SERVICES
        .iter()
        .map(|service| (*service, token(*service)))
        .collect();
    Credentials {
        platform_api_key: "operator-key".into(),
        service_digests: ServiceDigests::of_tokens(
            tokens
                .iter()
                .map(|(service, token)| (*service, token.as_str())),
        )
        .unwrap(),
        tls: None,
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (key, value) in pairs {
        headers.insert(*key, value.parse().unwrap());
    }
    headers
}

fn call(pairs: &[(&'static str, &str)]) -> Result<Caller, Status> {
    let headers = headers(pairs);
    let principal = credentials().principal(&headers)?;
    caller_of(principal, &headers)
}

#[test]
fn the_platform_api_key_makes_an_operator() {
    assert_eq!(
        call(&[("authorization", "Bearer operator-key")]).unwrap(),
        Caller::operator()
    );
}

#[test]
fn each_service_token_names_its_service() {
    for service in Principal::SERVICES {
        let bearer = format!("Bearer {}", token(service));
        let headers = headers(&[("authorization", &bearer)]);
        assert_eq!(credentials().principal(&headers).unwrap(), service);
        assert_eq!(
            caller_of(service, &headers).unwrap(),
            Caller::service(service.name())
        );
    }
}

#[test]
fn missing_or_wrong_credentials_are_unauthenticated() {
    let root = format!("Bearer {ROOT}");
    for pairs in [
        vec![],
        vec![("authorization", "Bearer nope")],
        vec![("authorization", "operator-key")],
        vec![("authorization", "Basic operator-key")],
        // The root is not a credential: only the tokens derived from it are.
        vec![("authorization", root.as_str())],
    ] {
        assert_eq!(
            call(&pairs).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}

#[test]
fn the_edge_acts_on_behalf_of_the_stated_caller() {
    let bearer = format!("Bearer {}", token(Principal::Edge));
    let caller = call(&[
        ("authorization", &bearer),
        (ROLE_METADATA_KEY, "app"),
        (SUBJECT_METADATA_KEY, "user-1"),
    ])
    .unwrap();
    assert_eq!(caller, Caller::app_user("user-1"));
    let caller = call(&[("authorization", &bearer)]).unwrap();
    assert_eq!(caller, Caller::service("edge"));
    let no_subject = call(&[("authorization", &bearer), (ROLE_METADATA_KEY, "app")]);
    assert_eq!(no_subject.unwrap_err().code(), tonic::Code::InvalidArgument);
}

#[test]
fn other_services_cannot_state_a_user() {
    for service in [Principal::Bridge, Principal::Channels] {
        let bearer = format!("Bearer {}", token(service));
        for role in ["app", "operator"] {
            let stated = call(&[
                ("authorization", &bearer),
                (ROLE_METADATA_KEY, role),
                (SUBJECT_METADATA_KEY, "user-1"),
            ]);
            assert_eq!(stated.unwrap_err().code(), tonic::Code::PermissionDenied);
        }
        let as_itself = call(&[("authorization", &bearer), (ROLE_METADATA_KEY, "service")]);
        assert_eq!(as_itself.unwrap(), Caller::service(service.name()));
    }
}

#[test]
fn role_headers_with_the_operator_key_are_ignored() {
    let caller = call(&[
        ("authorization", "Bearer operator-key"),
        (ROLE_METADATA_KEY, "app"),
        (SUBJECT_METADATA_KEY, "user-1"),
    ])
    .unwrap();
    assert_eq!(caller, Caller::operator());
}

#[test]
fn stamped_requests_authenticate_as_the_stamped_caller() {
    let credentials = ServiceCredentials::new(&token(Principal::Edge)).unwrap();
    let mut request = Request::new(());
    credentials
        .stamp(&mut request, &Caller::app_user("u-9"))
        .unwrap();
    let headers = request.metadata().clone().into_headers();
    assert_eq!(
        caller_of(self::credentials().principal(&headers).unwrap(), &headers).unwrap(),
        Caller::app_user("u-9")
    );
    let mut request = Request::new(());
    credentials.stamp_self(&mut request);
    let headers = request.metadata().clone().into_headers();
    assert_eq!(
        caller_of(Principal::Edge, &headers).unwrap(),
        Caller::service("edge")
    );
}

#[test]
fn debug_output_hides_the_credentials() {
    let service = ServiceCredentials::new("service-token-0123456789abcdef").unwrap();
    let shown = format!("{service:?} {:?}", credentials());
    assert!(
        !shown.contains("service-token-0123") && !shown.contains("operator-key"),
        "{shown}"
    );
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[test]
fn app_users_may_use_only_their_own_instances() {
    assert!(Caller::app_user("u-1").may_use_instance_of("u-1"));
    assert!(!Caller::app_user("u-1").may_use_instance_of("u-2"));
    assert!(!Caller::app_user("").may_use_instance_of(""));
    assert!(Caller::operator().may_use_instance_of("u-2"));
    assert!(Caller::service("channels").may_use_instance_of(""));
}

#[test]
fn internal_methods_refuse_everyone_but_services() {
    assert!(Caller::operator().require_service().is_err());
    assert!(Caller::app_user("u").require_service().is_err());
    assert!(Caller::service("bridge").require_service().is_ok());
}

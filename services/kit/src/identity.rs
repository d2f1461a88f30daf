//! Who is calling a service.
//!
//! Two credentials are accepted in `authorization: Bearer <token>`:
//! - the platform API key: the caller is an operator (grpcurl, automation);
//! - the internal service credential: the caller is another clawfleet service, which
//!   states on whose behalf it calls in `x-clawfleet-subject` / `x-clawfleet-role`
//!   (the edge passes the app user or operator it authenticated).
//!
//! Anything else is `UNAUTHENTICATED`. The resulting [`Caller`] is put in the request
//! extensions for handlers to read with [`Caller::of`].

use std::sync::Arc;

use tonic::{Request, Status, metadata::MetadataValue, service::Interceptor};

use crate::secret::{Redacted, constant_time_eq};

/// Metadata key naming the user or principal a service calls on behalf of.
pub const SUBJECT_METADATA_KEY: &str = "x-clawfleet-subject";
/// Metadata key naming the role of that principal.
pub const ROLE_METADATA_KEY: &str = "x-clawfleet-role";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A mobile-app user: sees only their own instances.
    App,
    /// A trusted operator: sees and drives every instance.
    Operator,
    /// Another clawfleet service acting for itself: may use internal RPCs.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::App => "app",
            Role::Operator => "operator",
            Role::Service => "service",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "app" => Some(Role::App),
            "operator" => Some(Role::Operator),
            "service" => Some(Role::Service),
            _ => None,
        }
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User id for [`Role::App`], a principal name otherwise.
    pub subject: String,
    pub role: Role,
}

impl Caller {
    pub fn operator() -> Self {
        Self {
            subject: "operator".to_owned(),
            role: Role::Operator,
        }
    }

    pub fn service(name: &str) -> Self {
        Self {
            subject: name.to_owned(),
            role: Role::Service,
        }
    }

    pub fn app_user(user_id: &str) -> Self {
        Self {
            subject: user_id.to_owned(),
            role: Role::App,
        }
    }

    /// The caller the identity interceptor attached to `request`.
    pub fn of<T>(request: &Request<T>) -> Result<&Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .ok_or_else(|| Status::unauthenticated("missing caller identity"))
    }

    /// Refuses callers that are not services (for internal RPCs).
    pub fn require_service(&self) -> Result<(), Status> {
        if self.role == Role::Service {
            Ok(())
        } else {
            Err(Status::permission_denied(
                "this method is internal to the platform",
            ))
        }
    }

    /// True when the caller may see everything (operators and services).
    pub fn is_privileged(&self) -> bool {
        matches!(self.role, Role::Operator | Role::Service)
    }
}

/// The credentials a service accepts.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub platform_api_key: Redacted<Arc<str>>,
    pub internal_token: Redacted<Arc<str>>,
}

/// Server-side interceptor that authenticates every call and attaches its [`Caller`].
#[derive(Clone, Debug)]
pub struct IdentityInterceptor {
    credentials: Credentials,
}

impl IdentityInterceptor {
    pub fn new(credentials: Credentials) -> Self {
        Self { credentials }
    }

    fn authenticate(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Caller, Status> {
        let unauthenticated = || Status::unauthenticated("missing or invalid authorization");
        let header = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(unauthenticated)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(unauthenticated)?
            .trim();
        if constant_time_eq(
            token.as_bytes(),
            self.credentials.platform_api_key.as_bytes(),
        ) {
            return Ok(Caller::operator());
        }
        if !constant_time_eq(token.as_bytes(), self.credentials.internal_token.as_bytes()) {
            return Err(unauthenticated());
        }
        let text = |key: &str| metadata.get(key).and_then(|value| value.to_str().ok());
        let role = match text(ROLE_METADATA_KEY) {
            None => Role::Service,
            Some(name) => Role::from_name(name)
                .ok_or_else(|| Status::invalid_argument(format!("unknown caller role {name:?}")))?,
        };
        let subject = text(SUBJECT_METADATA_KEY).unwrap_or("service").to_owned();
        if role == Role::App && subject.is_empty() {
            return Err(Status::invalid_argument("app callers need a subject"));
        }
        Ok(Caller { subject, role })
    }
}

impl Interceptor for IdentityInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.authenticate(request.metadata())?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Client-side interceptor that presents the internal credential and the caller on
/// whose behalf a service calls another.
#[derive(Clone, Debug)]
pub struct ServiceCredentials {
    /// `Bearer <internal token>`.
    authorization: Redacted<MetadataValue<tonic::metadata::Ascii>>,
}

impl ServiceCredentials {
    pub fn new(internal_token: &str) -> Result<Self, Status> {
        let authorization = format!("Bearer {internal_token}")
            .parse()
            .map_err(|_| Status::internal("internal token is not valid metadata"))?;
        Ok(Self {
            authorization: Redacted(authorization),
        })
    }

    /// Stamps `request` with the internal credential and `caller`.
    pub fn stamp<T>(&self, request: &mut Request<T>, caller: &Caller) -> Result<(), Status> {
        let metadata = request.metadata_mut();
        metadata.insert("authorization", self.authorization.0.clone());
        metadata.insert(
            ROLE_METADATA_KEY,
            MetadataValue::from_static(caller.role.as_str()),
        );
        let subject = caller
            .subject
            .parse()
            .map_err(|_| Status::invalid_argument("caller subject is not valid metadata"))?;
        metadata.insert(SUBJECT_METADATA_KEY, subject);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interceptor() -> IdentityInterceptor {
        IdentityInterceptor::new(Credentials {
            platform_api_key: "operator-key".into(),
            internal_token: "internal-token".into(),
        })
    }

    fn call(headers: &[(&'static str, &str)]) -> Result<Caller, Status> {
        let mut request = Request::new(());
        for (key, value) in headers {
            request.metadata_mut().insert(*key, value.parse().unwrap());
        }
        interceptor()
            .call(request)
            .map(|request| request.extensions().get::<Caller>().unwrap().clone())
    }

    #[test]
    fn the_platform_api_key_makes_an_operator() {
        assert_eq!(
            call(&[("authorization", "Bearer operator-key")]).unwrap(),
            Caller::operator()
        );
    }

    #[test]
    fn missing_or_wrong_credentials_are_unauthenticated() {
        for headers in [
            vec![],
            vec![("authorization", "Bearer nope")],
            vec![("authorization", "operator-key")],
            vec![("authorization", "Basic operator-key")],
        ] {
            assert_eq!(
                call(&headers).unwrap_err().code(),
                tonic::Code::Unauthenticated
            );
        }
    }

    #[test]
    fn services_act_on_behalf_of_the_stated_caller() {
        let caller = call(&[
            ("authorization", "Bearer internal-token"),
            (ROLE_METADATA_KEY, "app"),
            (SUBJECT_METADATA_KEY, "user-1"),
        ])
        .unwrap();
        assert_eq!(caller, Caller::app_user("user-1"));
        let caller = call(&[("authorization", "Bearer internal-token")]).unwrap();
        assert_eq!(caller.role, Role::Service);
    }

    #[test]
    fn role_headers_without_the_internal_credential_are_ignored() {
        let caller = call(&[
            ("authorization", "Bearer operator-key"),
            (ROLE_METADATA_KEY, "service"),
        ])
        .unwrap();
        assert_eq!(caller.role, Role::Operator);
    }

    #[test]
    fn stamped_requests_authenticate_as_the_stamped_caller() {
        let credentials = ServiceCredentials::new("internal-token").unwrap();
        let mut request = Request::new(());
        credentials
            .stamp(&mut request, &Caller::app_user("u-9"))
            .unwrap();
        let caller = interceptor()
            .call(request)
            .unwrap()
            .extensions()
            .get::<Caller>()
            .cloned();
        assert_eq!(caller, Some(Caller::app_user("u-9")));
    }

    #[test]
    fn debug_output_hides_both_credentials() {
        let credentials = ServiceCredentials::new("internal-token").unwrap();
        let shown = format!("{credentials:?} {:?}", interceptor());
        assert!(!shown.contains("internal-token") && !shown.contains("operator-key"));
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn internal_methods_refuse_everyone_but_services() {
        assert!(Caller::operator().require_service().is_err());
        assert!(Caller::app_user("u").require_service().is_err());
        assert!(Caller::service("bridge").require_service().is_ok());
    }
}

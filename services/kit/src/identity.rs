//! Who is calling a service.
//!
//! Two kinds of credential are accepted in `authorization: Bearer <token>`:
//! - the platform API key: the caller is an operator (grpcurl, automation);
//! - a calling service's own token, recognised by its digest: the caller is that
//!   service; the edge alone may state on whose behalf it calls in
//!   `x-clawfleet-subject` / `x-clawfleet-role` (the app user or operator it
//!   authenticated).
//!
//! Anything else is `UNAUTHENTICATED`. [`crate::access_layer`] puts the resulting
//! [`Caller`] in the request extensions for handlers to read with [`Caller::of`].

use std::sync::Arc;

use http::HeaderMap;
use tonic::{Request, Status, metadata::MetadataValue};

use crate::{
    config::{self, ConfigError, EnvSource, keys},
    principal::Principal,
    secret::{Redacted, constant_time_eq},
    service_token::{ServiceDigests, service_digests_from_env},
    tls::ServiceTls,
};

/// Metadata key naming the user or principal a service calls on behalf of.
pub const SUBJECT_METADATA_KEY: &str = "x-clawfleet-subject";
/// Metadata key naming the role of that principal.
pub const ROLE_METADATA_KEY: &str = "x-clawfleet-role";

/// The message of every refused credential (tests tell the access layer's refusals by it).
pub const UNAUTHENTICATED_MESSAGE: &str = "missing or invalid authorization";

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

    /// Whether the caller may use an instance owned by `owner`: privileged callers any,
    /// app users their own. The bridge and channels check this themselves, since they ask
    /// the lifecycle as themselves, not on the app user's behalf.
    pub fn may_use_instance_of(&self, owner: &str) -> bool {
        self.is_privileged()
            || (self.role == Role::App && !owner.is_empty() && owner == self.subject)
    }
}

/// The credentials a gRPC server accepts: the platform API key, and the digests of the
/// calling services' tokens (it holds no token it could present itself); with service
/// TLS on, also the certificate it serves with and the CA its callers' chain to.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub platform_api_key: Redacted<Arc<str>>,
    pub service_digests: ServiceDigests,
    pub tls: Option<ServiceTls>,
}

impl Credentials {
    /// The operator key and the callers' digests, both required, and the service TLS
    /// settings when configured.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Credentials {
            platform_api_key: config::required_credential(env, keys::OPENCLAW_MANAGER_API_KEY)?
                .into(),
            service_digests: service_digests_from_env(env)?,
            tls: tls_from_env(env)?,
        })
    }

    /// Who presented the `authorization` header, or `UNAUTHENTICATED`.
    pub fn principal(&self, headers: &HeaderMap) -> Result<Principal, Status> {
        let unauthenticated = || Status::unauthenticated(UNAUTHENTICATED_MESSAGE);
        let header = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(unauthenticated)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(unauthenticated)?
            .trim();
        if constant_time_eq(token.as_bytes(), self.platform_api_key.as_bytes()) {
            return Ok(Principal::Operator);
        }
        self.service_digests
            .recognise(token)
            .ok_or_else(unauthenticated)
    }
}

/// The caller of a request `principal` presented: the edge may state the app user or
/// operator it authenticated in `x-clawfleet-role`/`x-clawfleet-subject`; every other
/// service calls as itself, and a role it states is refused.
pub fn caller_of(principal: Principal, headers: &HeaderMap) -> Result<Caller, Status> {
    let text = |key: &str| headers.get(key).and_then(|value| value.to_str().ok());
    match principal {
        Principal::Operator => Ok(Caller::operator()),
        Principal::Edge => {
            let role = match text(ROLE_METADATA_KEY) {
                None => Role::Service,
                Some(name) => Role::from_name(name).ok_or_else(|| {
                    Status::invalid_argument(format!("unknown caller role {name:?}"))
                })?,
            };
            if role == Role::Service {
                return Ok(Caller::service(principal.name()));
            }
            let subject = text(SUBJECT_METADATA_KEY).unwrap_or_default().to_owned();
            if subject.is_empty() {
                return Err(Status::invalid_argument(
                    "callers on behalf of a user need a subject",
                ));
            }
            Ok(Caller { subject, role })
        }
        Principal::Bridge | Principal::Channels => match text(ROLE_METADATA_KEY) {
            None | Some("service") => Ok(Caller::service(principal.name())),
            Some(_) => Err(Status::permission_denied(
                "only the edge may call on behalf of a user",
            )),
        },
    }
}

/// The service TLS settings, with a bad setting reported as configuration error.
pub fn tls_from_env(env: &dyn EnvSource) -> Result<Option<ServiceTls>, ConfigError> {
    ServiceTls::from_env(env).map_err(|error| ConfigError::Invalid {
        key: keys::CLAWFLEET_TLS_CERT_FILE,
        reason: error.to_string(),
    })
}

/// What a calling service presents: its own token (`CLAWFLEET_SERVICE_TOKEN`) and, for
/// the edge, the caller on whose behalf it calls.
#[derive(Clone, Debug)]
pub struct ServiceCredentials {
    /// `Bearer <service token>`.
    authorization: Redacted<MetadataValue<tonic::metadata::Ascii>>,
}

impl ServiceCredentials {
    pub fn new(service_token: &str) -> Result<Self, Status> {
        let authorization = format!("Bearer {service_token}")
            .parse()
            .map_err(|_| Status::internal("the service token is not valid metadata"))?;
        Ok(Self {
            authorization: Redacted(authorization),
        })
    }

    /// Stamps `request` with this service's token alone: it calls as itself.
    pub fn stamp_self<T>(&self, request: &mut Request<T>) {
        request
            .metadata_mut()
            .insert("authorization", self.authorization.0.clone());
    }

    /// Stamps `request` with this service's token and `caller` (only the edge's stated
    /// callers are believed; see [`caller_of`]).
    pub fn stamp<T>(&self, request: &mut Request<T>, caller: &Caller) -> Result<(), Status> {
        self.stamp_self(request);
        let metadata = request.metadata_mut();
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
#[path = "identity_tests.rs"]
mod tests;

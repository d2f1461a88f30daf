//! Each calling service's own token, and the digests by which servers recognise them.
//!
//! A service presents `CLAWFLEET_SERVICE_TOKEN`; a gRPC server holds only the SHA-256
//! digests of the callers' tokens (`CLAWFLEET_SERVICE_TOKEN_DIGESTS`), so no server holds
//! a token it could present as another service. `clawfleet up` and `clawfleet
//! service-credentials` derive the tokens from one root as HMAC-SHA256(root, name).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::{
    config::{self, ConfigError, EnvSource, keys},
    principal::Principal,
    secret::constant_time_eq,
};

/// Shortest service token accepted: derived tokens are 64 hex characters.
pub const MIN_SERVICE_TOKEN_LEN: usize = 32;
/// Shortest root accepted for deriving service tokens.
pub const MIN_ROOT_LEN: usize = 24;

/// Why a token, a root or a digests list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceTokenError {
    #[error("shorter than {0} characters")]
    TooShort(usize),
    #[error("{0:?} is not `name=<64 hex digits>`")]
    Malformed(String),
    #[error("{0:?} is not a calling service (edge, bridge, channels)")]
    UnknownService(String),
    #[error("{0} is listed twice")]
    Duplicate(&'static str),
    #[error("two services have the same token digest")]
    SharedDigest,
}

/// The token `service` presents, derived from `root`: HMAC-SHA256 keyed by the root over
/// a label naming the service, in hex. Knowing one service's token tells nothing of the
/// others' or of the root.
pub fn derive_service_token(root: &str, service: Principal) -> Result<String, ServiceTokenError> {
    if root.len() < MIN_ROOT_LEN {
        return Err(ServiceTokenError::TooShort(MIN_ROOT_LEN));
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(root.as_bytes())
        .map_err(|_| ServiceTokenError::TooShort(MIN_ROOT_LEN))?;
    mac.update(b"clawfleet service token v1: ");
    mac.update(service.name().as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The hex SHA-256 digest of a token, as listed in `CLAWFLEET_SERVICE_TOKEN_DIGESTS`.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks a token a service is configured to present.
pub fn check_service_token(token: &str) -> Result<(), ServiceTokenError> {
    if token.trim().len() < MIN_SERVICE_TOKEN_LEN {
        return Err(ServiceTokenError::TooShort(MIN_SERVICE_TOKEN_LEN));
    }
    Ok(())
}

/// `CLAWFLEET_SERVICE_TOKEN`: the token this service presents, required.
pub fn service_token_from_env(env: &dyn EnvSource) -> Result<String, ConfigError> {
    let token = config::required(env, keys::CLAWFLEET_SERVICE_TOKEN)?;
    check_service_token(&token).map_err(|error| ConfigError::Invalid {
        key: keys::CLAWFLEET_SERVICE_TOKEN,
        reason: error.to_string(),
    })?;
    Ok(token)
}

/// `CLAWFLEET_SERVICE_TOKEN_DIGESTS`: the callers a gRPC server recognises, required.
pub fn service_digests_from_env(env: &dyn EnvSource) -> Result<ServiceDigests, ConfigError> {
    let text = config::required(env, keys::CLAWFLEET_SERVICE_TOKEN_DIGESTS)?;
    ServiceDigests::parse(&text).map_err(|error| ConfigError::Invalid {
        key: keys::CLAWFLEET_SERVICE_TOKEN_DIGESTS,
        reason: error.to_string(),
    })
}

/// The digests of the calling services' tokens a server recognises.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ServiceDigests {
    entries: Vec<(Principal, [u8; 32])>,
}

impl ServiceDigests {
    /// Parses `edge=<hex>,bridge=<hex>,channels=<hex>` (any subset; spaces ignored).
    pub fn parse(text: &str) -> Result<Self, ServiceTokenError> {
        let mut digests = ServiceDigests::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let malformed = || ServiceTokenError::Malformed(entry.to_owned());
            let (name, hex_digest) = entry.split_once('=').ok_or_else(malformed)?;
            let service = Principal::service_named(name.trim())
                .ok_or_else(|| ServiceTokenError::UnknownService(name.trim().to_owned()))?;
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hex_digest.trim(), &mut digest).map_err(|_| malformed())?;
            digests.insert(service, digest)?;
        }
        Ok(digests)
    }

    /// The digests of the tokens given.
    pub fn of_tokens<'a>(
        tokens: impl IntoIterator<Item = (Principal, &'a str)>,
    ) -> Result<Self, ServiceTokenError> {
        let mut digests = ServiceDigests::default();
        for (service, token) in tokens {
            digests.insert(service, Sha256::digest(token.as_bytes()).into())?;
        }
        Ok(digests)
    }

    fn insert(&mut self, service: Principal, digest: [u8; 32]) -> Result<(), ServiceTokenError> {
        if self.entries.iter().any(|(known, _)| *known == service) {
            return Err(ServiceTokenError::Duplicate(service.name()));
        }
        if self.entries.iter().any(|(_, known)| *known == digest) {
            return Err(ServiceTokenError::SharedDigest);
        }
        self.entries.push((service, digest));
        Ok(())
    }

    /// The calling service whose token this is, if any.
    pub fn recognise(&self, token: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every entry is compared, so the time taken does not tell which one matched.
        let mut found = None;
        for (service, known) in &self.entries {
            if constant_time_eq(&digest, known) {
                found = Some(*service);
            }
        }
        found
    }

    /// The services listed.
    pub fn services(&self) -> impl Iterator<Item = Principal> + '_ {
        self.entries.iter().map(|(service, _)| *service)
    }
}

/// The `CLAWFLEET_SERVICE_TOKEN_DIGESTS` value.
impl fmt::Display for ServiceDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (service, digest)) in self.entries.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", service.name(), hex::encode(digest))?;
        }
        Ok(())
    }
}

impl fmt::Debug for ServiceDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceDigests({self})")
    }
}

#[cfg(test)]
#[path = "service_token_tests.rs"]
mod tests;

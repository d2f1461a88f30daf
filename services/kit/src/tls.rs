//! Service-to-service TLS: every gRPC hop between platform services encrypted and both
//! ends authenticated by certificates from one platform CA (mutual TLS), so nothing on the
//! network — a tenant's pod included — can read a call or even complete a handshake with a
//! service. Off unless configured; when on, a service accepts TLS only. Why and how to
//! issue the certificates: docs/product/service-tls.md.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::{
    config::{self, EnvSource, keys},
    secret::Redacted,
};

/// Why the TLS settings cannot be used. Messages name files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "service TLS needs all of CLAWFLEET_TLS_CERT_FILE, CLAWFLEET_TLS_KEY_FILE and \
         CLAWFLEET_TLS_CA_FILE; {missing} is not set"
    )]
    Incomplete { missing: &'static str },
    #[error("cannot read {key} ({path}): {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} ({path}) holds no PEM {expected}")]
    NotPem {
        key: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
}

/// This service's certificate and key, and the CA every platform service's certificate
/// is signed by.
#[derive(Clone, Debug)]
pub struct ServiceTls {
    identity: Redacted<Identity>,
    ca: Certificate,
}

impl ServiceTls {
    /// The settings from `CLAWFLEET_TLS_CERT_FILE`, `CLAWFLEET_TLS_KEY_FILE` and
    /// `CLAWFLEET_TLS_CA_FILE`: `None` when none is set, an error when only some are or a
    /// file is unreadable or not PEM.
    pub fn from_env(env: &dyn EnvSource) -> Result<Option<ServiceTls>, TlsError> {
        let files = [
            keys::CLAWFLEET_TLS_CERT_FILE,
            keys::CLAWFLEET_TLS_KEY_FILE,
            keys::CLAWFLEET_TLS_CA_FILE,
        ]
        .map(|key| (key, config::optional(env, key)));
        if files.iter().all(|(_, value)| value.is_none()) {
            return Ok(None);
        }
        if let Some((missing, _)) = files.iter().find(|(_, value)| value.is_none()) {
            return Err(TlsError::Incomplete { missing });
        }
        let [cert, key, ca] =
            files.map(|(key, value)| (key, PathBuf::from(value.unwrap_or_default())));
        let cert_pem = read_pem(cert.0, &cert.1, "CERTIFICATE")?;
        let key_pem = read_pem(key.0, &key.1, "PRIVATE KEY")?;
        let ca_pem = read_pem(ca.0, &ca.1, "CERTIFICATE")?;
        Ok(Some(ServiceTls {
            identity: Redacted(Identity::from_pem(cert_pem, key_pem)),
            ca: Certificate::from_pem(ca_pem),
        }))
    }

    /// What a server presents, and the CA its callers' certificates must chain to.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.0.clone())
            .client_ca_root(self.ca.clone())
    }

    /// What a client trusts (the platform CA only, no public roots) and presents.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.0.clone())
    }
}

/// The file's bytes when they hold a PEM block of `expected` (e.g. `PRIVATE KEY` also
/// matches `EC PRIVATE KEY` and `RSA PRIVATE KEY`).
fn read_pem(key: &'static str, path: &Path, expected: &'static str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text
        .lines()
        .any(|line| line.starts_with("-----BEGIN ") && line.ends_with(&format!("{expected}-----")));
    if !has_block {
        return Err(TlsError::NotPem {
            key,
            path: path.to_owned(),
            expected,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;

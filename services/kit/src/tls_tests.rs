use std::path::Path;

use super::*;
use crate::config::EnvMap;

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";

fn env(pairs: &[(&str, &Path)]) -> EnvMap {
    EnvMap::from_pairs(
        pairs
            .iter()
            .map(|(key, path)| (key.to_string(), path.display().to_string())),
    )
}

fn files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (cert, key, ca) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&cert, CERT).unwrap();
    std::fs::write(&key, KEY).unwrap();
    std::fs::write(&ca, CERT).unwrap();
    (cert, key, ca)
}

#[test]
fn off_when_nothing_is_set() {
    assert!(ServiceTls::from_env(&EnvMap::default()).unwrap().is_none());
}

#[test]
fn all_three_files_or_a_start_error_naming_the_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = files(dir.path());
    let error = ServiceTls::from_env(&env(&[
        (keys::CLAWFLEET_TLS_CERT_FILE, &cert),
        (keys::CLAWFLEET_TLS_KEY_FILE, &key),
    ]))
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("CLAWFLEET_TLS_CA_FILE is not set"),
        "{error}"
    );
}

#[test]
fn unreadable_and_non_pem_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = files(dir.path());
    let missing = dir.path().join("absent.pem");
    let error = ServiceTls::from_env(&env(&[
        (keys::CLAWFLEET_TLS_CERT_FILE, &cert),
        (keys::CLAWFLEET_TLS_KEY_FILE, &key),
        (keys::CLAWFLEET_TLS_CA_FILE, &missing),
    ]))
    .unwrap_err();
    assert!(error.to_string().contains("absent.pem"), "{error}");

    // A key file that holds a certificate (a common mix-up) is refused.
    let error = ServiceTls::from_env(&env(&[
        (keys::CLAWFLEET_TLS_CERT_FILE, &cert),
        (keys::CLAWFLEET_TLS_KEY_FILE, &ca),
        (keys::CLAWFLEET_TLS_CA_FILE, &ca),
    ]))
    .unwrap_err();
    assert!(
        error.to_string().contains("holds no PEM PRIVATE KEY"),
        "{error}"
    );
}

#[test]
fn the_private_key_never_shows_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = files(dir.path());
    let tls = ServiceTls::from_env(&env(&[
        (keys::CLAWFLEET_TLS_CERT_FILE, &cert),
        (keys::CLAWFLEET_TLS_KEY_FILE, &key),
        (keys::CLAWFLEET_TLS_CA_FILE, &ca),
    ]))
    .unwrap()
    .expect("configured");
    let shown = format!("{tls:?}");
    assert!(!shown.contains("c2VjcmV0"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

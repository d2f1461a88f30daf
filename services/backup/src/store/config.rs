//! Which store keeps backups, and opening it (docs/product/backups.md#stores).

use std::{path::PathBuf, sync::Arc, time::Duration};

use clawfleet_kit::secret::{ExposeSecret, SecretString};
use object_store::{
    ClientOptions, aws::AmazonS3Builder, local::LocalFileSystem, path::Path as StorePath,
};

use super::{BackupStore, StoreError};

/// Where backups go.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// A directory on this machine (the embedded default: `<data dir>/backups`).
    Local { dir: PathBuf },
    /// An S3-compatible object store.
    S3(S3Settings),
}

/// An S3-compatible bucket and the credentials to write it.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`, ...
    pub endpoint: String,
    pub bucket: String,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

/// Each request to the object store gives up after this long (a part is 8 MiB).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) fn open(config: &StoreConfig) -> Result<BackupStore, StoreError> {
    match config {
        StoreConfig::Local { dir } => {
            // Owner-only whatever the umask: the archives are sealed, but their names and
            // manifests say which tenants exist (docs/product/backups.md#stores).
            clawfleet_kit::private_file::create_private_dir(dir).map_err(|error| {
                StoreError::Backend(format!("cannot create {}: {error}", dir.display()))
            })?;
            let objects = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
            Ok(BackupStore::new(
                Arc::new(objects),
                StorePath::default(),
                format!("directory {}", dir.display()),
            ))
        }
        StoreConfig::S3(settings) => open_s3(settings),
    }
}

fn open_s3(settings: &S3Settings) -> Result<BackupStore, StoreError> {
    // reqwest is built without a crypto provider of its own; the workspace's one is ring
    // (docs/product/backups.md#stores). Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plain_http = settings.endpoint.starts_with("http://");
    let objects = AmazonS3Builder::new()
        .with_endpoint(settings.endpoint.trim_end_matches('/'))
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region)
        .with_access_key_id(&settings.access_key_id)
        .with_secret_access_key(settings.secret_access_key.expose_secret())
        .with_virtual_hosted_style_request(false)
        // Client options replace what `with_allow_http` set, so both go here.
        .with_client_options(
            ClientOptions::new()
                .with_timeout(REQUEST_TIMEOUT)
                .with_allow_http(plain_http),
        )
        .build()?;
    let prefix = StorePath::parse(settings.prefix.trim_matches('/'))
        .map_err(|error| StoreError::Backend(format!("invalid backup prefix: {error}")))?;
    Ok(BackupStore::new(
        Arc::new(objects),
        prefix,
        format!(
            "s3 bucket {} at {} under {:?}",
            settings.bucket, settings.endpoint, settings.prefix
        ),
    ))
}

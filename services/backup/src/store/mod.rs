//! Where backups are kept (docs/product/backups.md#stores): a local directory (the
//! embedded default under the data dir) or an S3-compatible object store, both through
//! the `object_store` crate. Layout under the prefix:
//! `<instance>/<backup id>.archive` (the sealed archive) and
//! `<instance>/<backup id>.manifest.json` (written after the archive is complete).
//! Archives are uploaded in parts and become visible only when the upload completes, so
//! an interrupted upload leaves nothing a listing shows.

mod config;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart, path::Path as StorePath,
};
use tokio::sync::mpsc;

pub use self::config::{S3Settings, StoreConfig};
use crate::manifest::Manifest;

/// Size of each uploaded part (S3 needs at least 5 MiB for all but the last).
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts uploading at once.
const PART_CONCURRENCY: usize = 2;

const ARCHIVE_SUFFIX: &str = ".archive";
const MANIFEST_SUFFIX: &str = ".manifest.json";

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("backup {backup_id} of instance {instance_id} not found")]
    NotFound {
        instance_id: String,
        backup_id: String,
    },
    #[error("backup store failed: {0}")]
    Backend(String),
    #[error("backup manifest {0} is malformed")]
    BadManifest(String),
}

impl From<object_store::Error> for StoreError {
    fn from(error: object_store::Error) -> Self {
        // object_store's messages name the path and the operation, never credentials.
        StoreError::Backend(error.to_string())
    }
}

/// A place backups are kept.
#[derive(Debug, Clone)]
pub struct BackupStore {
    objects: Arc<dyn ObjectStore>,
    prefix: StorePath,
    description: String,
}

impl BackupStore {
    /// Opens the store `config` names (a local directory is created when missing).
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        config::open(config)
    }

    fn new(objects: Arc<dyn ObjectStore>, prefix: StorePath, description: String) -> Self {
        Self {
            objects,
            prefix,
            description,
        }
    }

    /// Where the store is, for logs (no credentials).
    pub fn description(&self) -> &str {
        &self.description
    }

    fn object(&self, instance_id: &str, backup_id: &str, suffix: &str) -> StorePath {
        self.prefix
            .clone()
            .join(instance_id)
            .join(format!("{backup_id}{suffix}"))
    }

    /// Uploads the archive chunks arriving on `chunks` in parts; the archive becomes
    /// visible only if the sender finishes cleanly (`complete` resolves `true`).
    /// Otherwise the upload is aborted and nothing is left visible.
    pub async fn upload_archive(
        &self,
        instance_id: &str,
        backup_id: &str,
        mut chunks: mpsc::Receiver<Bytes>,
        complete: tokio::sync::oneshot::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let location = self.object(instance_id, backup_id, ARCHIVE_SUFFIX);
        let upload = self.objects.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        while let Some(chunk) = chunks.recv().await {
            if let Err(error) = writer.wait_for_capacity(PART_CONCURRENCY).await {
                let _ = writer.abort().await;
                return Err(error.into());
            }
            writer.put(chunk);
        }
        if !complete.await.unwrap_or(false) {
            writer.abort().await?;
            return Err(StoreError::Backend(
                "the archive was not completed; its upload was aborted".to_owned(),
            ));
        }
        writer.finish().await?;
        Ok(())
    }

    /// Writes the manifest, which makes the backup visible.
    pub async fn put_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(manifest)
            .map_err(|error| StoreError::Backend(format!("cannot encode manifest: {error}")))?;
        let location = self.object(&manifest.instance_id, &manifest.backup_id, MANIFEST_SUFFIX);
        self.objects
            .put(&location, PutPayload::from(Bytes::from(body)))
            .await?;
        Ok(())
    }

    /// One backup's manifest.
    pub async fn manifest(
        &self,
        instance_id: &str,
        backup_id: &str,
    ) -> Result<Manifest, StoreError> {
        let location = self.object(instance_id, backup_id, MANIFEST_SUFFIX);
        let body = match self.objects.get(&location).await {
            Ok(found) => found.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::NotFound {
                    instance_id: instance_id.to_owned(),
                    backup_id: backup_id.to_owned(),
                });
            }
            Err(error) => return Err(error.into()),
        };
        serde_json::from_slice(&body).map_err(|_| StoreError::BadManifest(location.to_string()))
    }

    /// The instance's backups, oldest first. Archives without a manifest (an upload in
    /// progress or interrupted) are not listed; unreadable manifests are skipped with a
    /// warning.
    pub async fn list(&self, instance_id: &str) -> Result<Vec<Manifest>, StoreError> {
        let folder = self.prefix.clone().join(instance_id);
        let mut listing = self.objects.list(Some(&folder));
        let mut ids = Vec::new();
        while let Some(entry) = listing.next().await {
            let entry = entry?;
            if let Some(id) = entry
                .location
                .filename()
                .and_then(|name| name.strip_suffix(MANIFEST_SUFFIX))
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        let mut manifests = Vec::with_capacity(ids.len());
        for id in ids {
            match self.manifest(instance_id, &id).await {
                Ok(manifest) => manifests.push(manifest),
                Err(StoreError::BadManifest(location)) => {
                    tracing::warn!(%location, "skipping a malformed backup manifest")
                }
                Err(error) => return Err(error),
            }
        }
        Ok(manifests)
    }

    /// Streams the sealed archive into `chunks` until it ends or the receiver goes away.
    pub async fn download_archive(
        &self,
        instance_id: &str,
        backup_id: &str,
        chunks: mpsc::Sender<Bytes>,
    ) -> Result<(), StoreError> {
        let location = self.object(instance_id, backup_id, ARCHIVE_SUFFIX);
        let mut stream = match self.objects.get(&location).await {
            Ok(found) => found.into_stream(),
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::NotFound {
                    instance_id: instance_id.to_owned(),
                    backup_id: backup_id.to_owned(),
                });
            }
            Err(error) => return Err(error.into()),
        };
        while let Some(chunk) = stream.next().await {
            if chunks.send(chunk?).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Deletes a backup: the manifest first, so it stops being listed before its archive
    /// goes. Deleting a missing backup is NotFound.
    pub async fn delete(&self, instance_id: &str, backup_id: &str) -> Result<(), StoreError> {
        self.manifest(instance_id, backup_id).await?;
        self.objects
            .delete(&self.object(instance_id, backup_id, MANIFEST_SUFFIX))
            .await?;
        match self
            .objects
            .delete(&self.object(instance_id, backup_id, ARCHIVE_SUFFIX))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Flips one byte in the middle of a stored archive (tests of corrupt archives).
    #[cfg(feature = "test-support")]
    pub async fn corrupt_archive(
        &self,
        instance_id: &str,
        backup_id: &str,
    ) -> Result<(), StoreError> {
        let location = self.object(instance_id, backup_id, ARCHIVE_SUFFIX);
        let mut body = self.objects.get(&location).await?.bytes().await?.to_vec();
        let middle = body.len() / 2;
        body[middle] ^= 0x5a;
        self.objects
            .put(&location, PutPayload::from(Bytes::from(body)))
            .await?;
        Ok(())
    }

    /// Every object under the instance's folder (tests and diagnostics: what a listing
    /// of the raw store shows, including archives without manifests).
    pub async fn raw_objects(&self, instance_id: &str) -> Result<Vec<String>, StoreError> {
        let folder = self.prefix.clone().join(instance_id);
        let mut listing = self.objects.list(Some(&folder));
        let mut names = Vec::new();
        while let Some(entry) = listing.next().await {
            names.push(entry?.location.to_string());
        }
        names.sort();
        Ok(names)
    }
}

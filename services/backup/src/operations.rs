//! Taking a backup of a state dir and unpacking one into a staging dir
//! (docs/product/backups.md#operations). Quiescing the gateway and swapping directories
//! are the lifecycle's part; this is the streaming between a directory and a store.

use std::{cmp::Ordering, path::Path, sync::Arc};

use tokio::sync::oneshot;

use crate::{
    archive::{read_archive, write_archive},
    key::PlatformKey,
    manifest::{BackupReason, FORMAT, Manifest},
    pipe::{self, ChannelReader, ChannelWriter},
    store::{BackupStore, StoreError},
    version,
};

/// Why a backup could not be taken or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot archive the state dir: {0}")]
    Archive(std::io::Error),
    #[error("backup {backup_id} is refused: {reason}")]
    Refused { backup_id: String, reason: String },
    #[error("backup worker failed: {0}")]
    Worker(String),
}

/// What to record about a new backup.
#[derive(Debug, Clone)]
pub struct NewBackup {
    pub instance_id: String,
    pub gateway_version: String,
    pub reason: BackupReason,
}

/// A new backup id: the UTC time to the second, sortable, and 6 random hex digits.
pub fn new_backup_id(now: time::OffsetDateTime) -> String {
    use chacha20poly1305::aead::{OsRng, rand_core::RngCore};
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now
        .to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| "00000000T000000Z".to_owned());
    format!("{stamp}-{:06x}", OsRng.next_u32() & 0xff_ffff)
}

/// The id rule lives in the kit: the edge checks it too, without this crate.
pub use clawfleet_kit::backup_id::is_backup_id;

/// Archives `state_dir` into `store` and writes its manifest last. The state dir must
/// not change meanwhile (the lifecycle stops the gateway first). On any error the
/// upload is aborted and nothing becomes visible.
pub async fn create_backup(
    store: &BackupStore,
    key: Arc<PlatformKey>,
    state_dir: &Path,
    backup: NewBackup,
) -> Result<Manifest, BackupError> {
    let now = time::OffsetDateTime::now_utc();
    let backup_id = new_backup_id(now);
    let (sender, receiver) = pipe::channel();
    let (complete_sender, complete_receiver) = oneshot::channel();
    let archiving = {
        let key = key.clone();
        let state_dir = state_dir.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut writer = ChannelWriter::new(sender);
            let summary = write_archive(&state_dir, &key, &mut writer)?;
            std::io::Write::flush(&mut writer)?;
            Ok::<_, std::io::Error>(summary)
        })
    };
    let archived = async move {
        let outcome = archiving.await;
        let succeeded = matches!(outcome, Ok(Ok(_)));
        let _ = complete_sender.send(succeeded);
        outcome
    };
    let (uploaded, archived) = tokio::join!(
        store.upload_archive(&backup.instance_id, &backup_id, receiver, complete_receiver),
        archived
    );
    let summary = match (archived, uploaded) {
        (Ok(Ok(summary)), Ok(())) => summary,
        // The archive stopped because the upload did: the upload's error says why.
        (Ok(Err(error)), Err(upload_error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            return Err(upload_error.into());
        }
        (Ok(Err(error)), _) => return Err(BackupError::Archive(error)),
        (Err(error), _) => return Err(BackupError::Worker(error.to_string())),
        (Ok(Ok(_)), Err(upload_error)) => return Err(upload_error.into()),
    };
    let manifest = Manifest {
        format: FORMAT,
        backup_id,
        instance_id: backup.instance_id,
        gateway_version: backup.gateway_version,
        reason: backup.reason,
        created_at: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        archive_bytes: summary.archive_bytes,
        state_bytes: summary.state_bytes,
        archive_sha256: summary.archive_sha256,
        key_fingerprint: key.fingerprint(),
    };
    store.put_manifest(&manifest).await?;
    Ok(manifest)
}

/// Whether the backup described by `manifest` may be restored by a gateway of
/// `gateway_version` with `key`: refused when sealed by another key, in an unknown format,
/// or written by a newer gateway (an older gateway may not read newer state).
pub fn check_restorable(
    manifest: &Manifest,
    key: &PlatformKey,
    gateway_version: &str,
) -> Result<(), BackupError> {
    let refuse = |reason: String| BackupError::Refused {
        backup_id: manifest.backup_id.clone(),
        reason,
    };
    if manifest.format != FORMAT {
        return Err(refuse(format!(
            "archive format {} is not supported (this build reads format {FORMAT})",
            manifest.format
        )));
    }
    if manifest.key_fingerprint != key.fingerprint() {
        return Err(refuse(format!(
            "it was sealed with another platform key (fingerprint {}, this platform's is {})",
            manifest.key_fingerprint,
            key.fingerprint()
        )));
    }
    if version::compare(&manifest.gateway_version, gateway_version) == Some(Ordering::Greater) {
        return Err(refuse(format!(
            "it was made by gateway version {}, newer than this instance's {gateway_version}; \
             upgrade the instance first",
            manifest.gateway_version
        )));
    }
    Ok(())
}

/// Unpacks a backup into `staging_dir` (empty), checking it on the way: a corrupt,
/// truncated or foreign archive is an error and leaves a staging dir to discard.
pub async fn unpack_backup(
    store: &BackupStore,
    key: Arc<PlatformKey>,
    manifest: &Manifest,
    staging_dir: &Path,
) -> Result<(), BackupError> {
    let (sender, receiver) = pipe::channel();
    let unpacking = {
        let staging_dir = staging_dir.to_owned();
        let expected = manifest.archive_sha256.clone();
        tokio::task::spawn_blocking(move || {
            read_archive(ChannelReader::new(receiver), &key, &staging_dir, &expected)
        })
    };
    let (downloaded, unpacked) = tokio::join!(
        store.download_archive(&manifest.instance_id, &manifest.backup_id, sender),
        unpacking
    );
    downloaded?;
    unpacked
        .map_err(|error| BackupError::Worker(error.to_string()))?
        .map_err(|error| BackupError::Refused {
            backup_id: manifest.backup_id.clone(),
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_have_the_form_that_is_accepted() {
        let id = new_backup_id(time::OffsetDateTime::UNIX_EPOCH);
        assert!(id.starts_with("19700101T000000Z-"), "{id}");
        assert!(is_backup_id(&id), "{id}");
        for bad in [
            "",
            "../../etc",
            "19700101T000000Z-ABCDEF",
            "19700101T000000Z-0000000",
        ] {
            assert!(!is_backup_id(bad), "{bad}");
        }
    }
}

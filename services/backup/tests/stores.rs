//! The stores with real parts: a directory and moto's S3 server on loopback.

use std::{fs, sync::Arc};

use bytes::Bytes;
use clawfleet_backup::{
    key::PlatformKey,
    manifest::BackupReason,
    moto::MotoServer,
    operations::{BackupError, NewBackup, check_restorable, create_backup, unpack_backup},
    pipe,
    store::{BackupStore, StoreConfig},
};

fn key() -> Arc<PlatformKey> {
    Arc::new(PlatformKey::from_hex(&hex_key(5).into()).expect("key"))
}

fn hex_key(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

fn state_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(dir.path().join("credentials")).expect("mkdir");
    fs::write(
        dir.path().join("openclaw.json"),
        br#"{"agents":{"defaults":{}}}"#,
    )
    .expect("write");
    fs::write(
        dir.path().join("credentials/telegram-allowFrom.json"),
        b"[\"7\"]",
    )
    .expect("write");
    // Over one 8 MiB upload part, so S3 sees a real multipart upload.
    let noise: Vec<u8> = (0..12_000_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(dir.path().join("memory.sqlite"), noise).expect("write");
    dir
}

fn backup(instance: &str) -> NewBackup {
    NewBackup {
        instance_id: instance.to_owned(),
        gateway_version: "2026.9.6".to_owned(),
        reason: BackupReason::Manual,
    }
}

async fn round_trip(store: &BackupStore) {
    let source = state_dir();
    let manifest = create_backup(store, key(), source.path(), backup("alice"))
        .await
        .expect("backup");
    assert_eq!(manifest.instance_id, "alice");
    assert!(manifest.state_bytes > 12_000_000);
    let listed = store.list("alice").await.expect("list");
    assert_eq!(listed, vec![manifest.clone()]);
    assert!(store.list("bob").await.expect("list").is_empty());

    check_restorable(&manifest, &key(), "2026.9.6").expect("same version restores");
    check_restorable(&manifest, &key(), "2026.10.1").expect("older backup restores");
    let staging = tempfile::tempdir().expect("tempdir");
    unpack_backup(store, key(), &manifest, staging.path())
        .await
        .expect("unpack");
    assert_eq!(
        fs::read(staging.path().join("credentials/telegram-allowFrom.json")).expect("read"),
        b"[\"7\"]"
    );
    assert_eq!(
        fs::read(staging.path().join("memory.sqlite")).expect("read"),
        fs::read(source.path().join("memory.sqlite")).expect("read")
    );

    store
        .delete("alice", &manifest.backup_id)
        .await
        .expect("delete");
    assert!(store.list("alice").await.expect("list").is_empty());
    assert!(store.raw_objects("alice").await.expect("raw").is_empty());
}

/// An upload whose archive never completes leaves nothing, not even a raw object.
async fn interrupted_upload_leaves_nothing(store: &BackupStore) {
    let (sender, receiver) = pipe::channel();
    let (complete, completion) = tokio::sync::oneshot::channel();
    let producing = tokio::spawn(async move {
        for _ in 0..48 {
            sender
                .send(Bytes::from(vec![1u8; 256 * 1024]))
                .await
                .expect("send");
        }
        // The archive writer failed: the sender goes away without completing.
        drop(sender);
        let _ = complete.send(false);
    });
    let outcome = store
        .upload_archive("carol", "20260101T000000Z-000000", receiver, completion)
        .await;
    producing.await.expect("producer");
    assert!(outcome.is_err(), "an incomplete archive is not published");
    assert!(store.list("carol").await.expect("list").is_empty());
    assert_eq!(
        store.raw_objects("carol").await.expect("raw"),
        Vec::<String>::new()
    );

    // A crash mid-upload: the upload is dropped with parts already sent.
    let (sender, receiver) = pipe::channel();
    let (_complete, completion) = tokio::sync::oneshot::channel::<bool>();
    let uploading = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .upload_archive("carol", "20260101T000001Z-000000", receiver, completion)
                .await
        })
    };
    for _ in 0..48 {
        sender
            .send(Bytes::from(vec![2u8; 256 * 1024]))
            .await
            .expect("send");
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    uploading.abort();
    let _ = uploading.await;
    assert!(store.list("carol").await.expect("list").is_empty());
    let raw = store.raw_objects("carol").await.expect("raw");
    assert!(
        raw.iter().all(|name| !name.ends_with(".archive")),
        "visible archive: {raw:?}"
    );
}

async fn corrupt_archive_is_refused(store: &BackupStore) {
    let source = state_dir();
    let manifest = create_backup(store, key(), source.path(), backup("dave"))
        .await
        .expect("backup");
    store
        .corrupt_archive("dave", &manifest.backup_id)
        .await
        .expect("corrupt");
    let staging = tempfile::tempdir().expect("tempdir");
    let error = unpack_backup(store, key(), &manifest, staging.path())
        .await
        .expect_err("corrupt archive refused");
    assert!(matches!(error, BackupError::Refused { .. }), "{error}");
}

#[test]
fn a_newer_gateways_backup_or_another_keys_is_refused_by_its_manifest() {
    let manifest = clawfleet_backup::manifest::Manifest {
        format: clawfleet_backup::manifest::FORMAT,
        backup_id: "20260101T000000Z-abcdef".to_owned(),
        instance_id: "erin".to_owned(),
        gateway_version: "2026.12.1".to_owned(),
        reason: BackupReason::Manual,
        created_at: "2026-01-01T00:00:00Z".to_owned(),
        archive_bytes: 1,
        state_bytes: 1,
        archive_sha256: String::new(),
        key_fingerprint: key().fingerprint(),
    };
    let error = check_restorable(&manifest, &key(), "2026.9.6").expect_err("newer refused");
    assert!(
        error
            .to_string()
            .contains("newer than this instance's 2026.9.6"),
        "{error}"
    );
    let other = PlatformKey::from_hex(&hex_key(6).into()).expect("key");
    let error = check_restorable(&manifest, &other, "2026.12.1").expect_err("other key refused");
    assert!(
        error.to_string().contains("another platform key"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_store_round_trip_interruption_and_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BackupStore::open(&StoreConfig::Local {
        dir: dir.path().join("backups"),
    })
    .expect("open");
    round_trip(&store).await;
    interrupted_upload_leaves_nothing(&store).await;
    corrupt_archive_is_refused(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_on_moto_round_trip_interruption_and_corruption() {
    let moto = MotoServer::start();
    moto.create_bucket("clawfleet-backups");
    let store =
        BackupStore::open(&moto.store_config("clawfleet-backups", "fleet/one")).expect("open");
    round_trip(&store).await;
    interrupted_upload_leaves_nothing(&store).await;
    corrupt_archive_is_refused(&store).await;
}

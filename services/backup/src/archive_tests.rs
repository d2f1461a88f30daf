use std::{fs, os::unix::fs::PermissionsExt};

use super::*;
use crate::key::PlatformKey;

fn key() -> PlatformKey {
    PlatformKey::from_hex(&hex::encode([3u8; 32]).into()).expect("valid key")
}

fn state_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fs::create_dir_all(root.join("credentials")).expect("mkdir");
    fs::write(
        root.join("openclaw.json"),
        br#"{"gateway":{"mode":"local"}}"#,
    )
    .expect("write");
    fs::set_permissions(
        root.join("openclaw.json"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    fs::write(
        root.join("credentials/telegram-allowFrom.json"),
        b"[\"42\"]",
    )
    .expect("write");
    fs::write(root.join("big.bin"), vec![9u8; 300_000]).expect("write");
    std::os::unix::fs::symlink("openclaw.json", root.join("link.json")).expect("symlink");
    dir
}

#[test]
fn a_state_dir_survives_archive_and_unpack_with_modes_and_links() {
    let source = state_dir();
    let mut sealed = Vec::new();
    let summary = write_archive(source.path(), &key(), &mut sealed).expect("archive");
    assert_eq!(summary.archive_bytes, sealed.len() as u64);
    assert!(summary.state_bytes > 300_000);
    let target = tempfile::tempdir().expect("tempdir");
    read_archive(&sealed[..], &key(), target.path(), &summary.archive_sha256).expect("unpack");
    let restored = target.path();
    assert_eq!(
        fs::read(restored.join("credentials/telegram-allowFrom.json")).expect("read"),
        b"[\"42\"]"
    );
    assert_eq!(
        fs::read(restored.join("big.bin")).expect("read"),
        vec![9u8; 300_000]
    );
    let mode = fs::metadata(restored.join("openclaw.json"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        fs::read_link(restored.join("link.json")).expect("link"),
        std::path::Path::new("openclaw.json")
    );
}

#[test]
fn an_archive_whose_checksum_differs_from_its_manifest_is_refused() {
    let source = state_dir();
    let mut sealed = Vec::new();
    write_archive(source.path(), &key(), &mut sealed).expect("archive");
    let target = tempfile::tempdir().expect("tempdir");
    let error = read_archive(&sealed[..], &key(), target.path(), "00").expect_err("refused");
    assert!(
        error.to_string().contains("does not match its manifest"),
        "{error}"
    );
}

#[test]
fn a_corrupt_archive_is_refused() {
    let source = state_dir();
    let mut sealed = Vec::new();
    let summary = write_archive(source.path(), &key(), &mut sealed).expect("archive");
    let last = sealed.len() - 5;
    sealed[last] ^= 0xff;
    let target = tempfile::tempdir().expect("tempdir");
    assert!(read_archive(&sealed[..], &key(), target.path(), &summary.archive_sha256).is_err());
}

use std::io::{Read, Write};

use super::*;
use crate::key::PlatformKey;

fn key(byte: u8) -> PlatformKey {
    PlatformKey::from_hex(&hex::encode([byte; 32]).into()).expect("valid key")
}

fn seal(key: &PlatformKey, plain: &[u8]) -> Vec<u8> {
    let mut writer = EncryptWriter::new(key, Vec::new()).expect("header");
    // Odd-sized writes cross segment boundaries.
    for piece in plain.chunks(10_007) {
        writer.write_all(piece).expect("write");
    }
    writer.finish().expect("finish")
}

fn open(key: &PlatformKey, sealed: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut reader = DecryptReader::new(key, sealed)?;
    let mut plain = Vec::new();
    reader.read_to_end(&mut plain)?;
    Ok(plain)
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|index| (index * 31 % 251) as u8).collect()
}

#[test]
fn sealed_data_opens_to_the_same_bytes_at_every_segment_boundary() {
    let key = key(7);
    for len in [
        0,
        1,
        SEGMENT_BYTES - 1,
        SEGMENT_BYTES,
        SEGMENT_BYTES + 1,
        3 * SEGMENT_BYTES + 17,
    ] {
        let plain = sample(len);
        let sealed = seal(&key, &plain);
        assert_ne!(
            &sealed[MAGIC.len()..],
            &plain[..],
            "length {len} is not sealed"
        );
        assert_eq!(open(&key, &sealed).expect("opens"), plain, "length {len}");
    }
}

#[test]
fn a_flipped_byte_is_refused() {
    let key = key(7);
    let mut sealed = seal(&key, &sample(2 * SEGMENT_BYTES));
    let middle = sealed.len() / 2;
    sealed[middle] ^= 1;
    let error = open(&key, &sealed).expect_err("tampered archive refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn an_archive_cut_at_a_segment_boundary_is_refused() {
    let key = key(7);
    let sealed = seal(&key, &sample(3 * SEGMENT_BYTES));
    let header = MAGIC.len() + NONCE_PREFIX_BYTES;
    let cut = &sealed[..header + 2 * (SEGMENT_BYTES + TAG_BYTES)];
    let error = open(&key, cut).expect_err("truncated archive refused");
    assert!(error.to_string().contains("corrupt, truncated"), "{error}");
}

#[test]
fn another_platform_key_cannot_open_it() {
    let sealed = seal(&key(7), b"state");
    assert!(open(&key(8), &sealed).is_err());
}

#[test]
fn something_else_is_refused_by_its_magic() {
    let error = open(&key(7), b"not a backup archive at all, just text").expect_err("refused");
    assert!(error.to_string().contains("bad magic"), "{error}");
}

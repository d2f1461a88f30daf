//! The form of a backup id (docs/product/backups.md#manifest): the UTC time to the
//! second and 6 random hex digits, `20261207T231500Z-1a2b3c`. Checked by the edge and by
//! the lifecycle, so nothing else ever becomes part of a store key.

/// Whether `text` is a backup id.
pub fn is_backup_id(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 23
        && bytes[..8].iter().all(u8::is_ascii_digit)
        && bytes[8] == b'T'
        && bytes[9..15].iter().all(u8::is_ascii_digit)
        && bytes[15] == b'Z'
        && bytes[16] == b'-'
        && bytes[17..]
            .iter()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(byte))
}

//! The X server's authority: a new MIT-MAGIC-COOKIE-1 in a file only its owner reads
//! (`Xvfb -auth`, `x11vnc -auth`, the gateway's `XAUTHORITY`), so a process that can
//! reach the display's socket but not the file is refused by the X server itself.

use std::{io::Read, path::Path};

use clawfleet_kit::private_file::write_private;

/// `FamilyWild`: the entry matches whatever address the client connects by.
const FAMILY_WILD: u16 = 0xffff;
const COOKIE_NAME: &[u8] = b"MIT-MAGIC-COOKIE-1";
const COOKIE_BYTES: usize = 16;

/// Writes a new cookie for display `number` to `path` (mode 0600), replacing any.
pub fn write_new_cookie(path: &Path, number: u32) -> std::io::Result<()> {
    let mut cookie = [0u8; COOKIE_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut cookie)?;
    write_private(path, &authority_entry(number, &cookie))
}

/// One `.Xauthority` entry (the format libXau reads): family, address, display number,
/// auth name and data, each length-prefixed big-endian.
pub(crate) fn authority_entry(number: u32, cookie: &[u8]) -> Vec<u8> {
    let mut entry = Vec::new();
    entry.extend_from_slice(&FAMILY_WILD.to_be_bytes());
    let number = number.to_string();
    for field in [&b""[..], number.as_bytes(), COOKIE_NAME, cookie] {
        entry.extend_from_slice(&(field.len() as u16).to_be_bytes());
        entry.extend_from_slice(field);
    }
    entry
}

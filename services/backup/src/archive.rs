//! The archive of a state dir (docs/product/backups.md#archive-format): a tar stream,
//! gzip-compressed, sealed by [`crate::crypt`]. Both directions are streaming and
//! synchronous — callers run them on a blocking thread and connect them to a store by
//! bounded channels ([`crate::pipe`]), so memory does not grow with the state's size.

use std::{
    io::{self, Read, Write},
    path::Path,
};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};

use crate::{
    crypt::{DecryptReader, EncryptWriter},
    key::PlatformKey,
    tally::Tally,
};

/// gzip level: 1 is several times faster than the default 6 and costs little ratio on
/// the JSON, SQLite and text a state dir mostly holds.
const COMPRESSION_LEVEL: u32 = 1;

/// Size and checksum of a written archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// Bytes of the sealed archive.
    pub archive_bytes: u64,
    /// Hex SHA-256 of the sealed archive.
    pub archive_sha256: String,
    /// Bytes of the uncompressed tar stream.
    pub state_bytes: u64,
}

/// Writes the sealed archive of everything under `state_dir` to `sink`. Symbolic links
/// are stored as links, never followed out of the state dir.
pub fn write_archive(
    state_dir: &Path,
    key: &PlatformKey,
    sink: impl Write,
) -> io::Result<ArchiveSummary> {
    let sealed = Tally::new(sink);
    let encrypt = EncryptWriter::new(key, sealed)?;
    let compress = GzEncoder::new(encrypt, Compression::new(COMPRESSION_LEVEL));
    let mut builder = tar::Builder::new(Tally::new(compress));
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    builder.append_dir_all(".", state_dir)?;
    let plain = builder.into_inner()?;
    let (compress, state_bytes, _) = plain.finish();
    let encrypt = compress.finish()?;
    let sealed = encrypt.finish()?;
    let (_, archive_bytes, archive_sha256) = sealed.finish();
    Ok(ArchiveSummary {
        archive_bytes,
        archive_sha256,
        state_bytes,
    })
}

/// Unpacks the sealed archive read from `source` into `target` (an empty directory),
/// and checks it is exactly the archive `expected_sha256` names. Any error leaves a
/// partly filled `target`: callers unpack into a staging dir and discard it on error.
pub fn read_archive(
    source: impl Read,
    key: &PlatformKey,
    target: &Path,
    expected_sha256: &str,
) -> io::Result<()> {
    let mut sealed = Tally::new(source);
    {
        let decrypt = DecryptReader::new(key, &mut sealed)?;
        let mut decompress = GzDecoder::new(decrypt);
        {
            let mut archive = tar::Archive::new(&mut decompress);
            archive.set_preserve_permissions(true);
            archive.set_preserve_mtime(true);
            archive.set_overwrite(false);
            archive.unpack(target)?;
        }
        // Read to the end so the last sealed segment (and so the whole archive) is
        // authenticated, not only the part tar needed.
        io::copy(&mut decompress, &mut io::sink())?;
        let mut decrypt = decompress.into_inner();
        io::copy(&mut decrypt, &mut io::sink())?;
    }
    let (_, _, sha256) = sealed.finish();
    if sha256 != expected_sha256 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "backup archive checksum {sha256} does not match its manifest ({expected_sha256})"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;

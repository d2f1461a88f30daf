//! Counting and hashing bytes as they pass, so an archive's size and checksum are known
//! without holding it (docs/product/backups.md#manifest).

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

/// Passes bytes through to `inner`, counting them and hashing them with SHA-256.
pub struct Tally<T> {
    inner: T,
    hasher: Sha256,
    bytes: u64,
}

impl<T> Tally<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner reader or writer, the byte count and the hex SHA-256 so far.
    pub fn finish(self) -> (T, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }

    fn record(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(data)?;
        self.record(&data[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Tally<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(out)?;
        self.record(&out[..read]);
        Ok(read)
    }
}

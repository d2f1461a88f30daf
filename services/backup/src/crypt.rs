//! Encryption at rest of a backup archive: XChaCha20-Poly1305 in the STREAM construction
//! (docs/product/backups.md#archive-format). The archive is cut into segments of
//! [`SEGMENT_BYTES`]; each is sealed on its own, so memory stays one segment whatever the
//! archive's size, and the last segment is sealed as last, so a truncated archive is
//! refused rather than read as a shorter one.

use std::io::{self, Read, Write};

use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305,
    aead::{
        OsRng,
        rand_core::RngCore,
        stream::{DecryptorBE32, EncryptorBE32},
    },
};

use crate::key::PlatformKey;

/// Plaintext bytes per sealed segment.
pub const SEGMENT_BYTES: usize = 64 * 1024;
/// What sealing adds to each segment (the Poly1305 tag).
const TAG_BYTES: usize = 16;
/// First bytes of every archive: the format and its version.
pub const MAGIC: &[u8; 8] = b"CFBKUP01";
/// The random part of the nonce, stored after [`MAGIC`] (24-byte XChaCha nonce less the
/// STREAM counter and last-flag).
const NONCE_PREFIX_BYTES: usize = 19;

fn sealing_failed() -> io::Error {
    io::Error::other("sealing a backup segment failed")
}

/// Refused archives: corrupt, truncated, or sealed with another platform key.
fn unreadable(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Seals everything written to it into `inner`. [`EncryptWriter::finish`] must be called:
/// it seals the last segment, without which the archive is refused as truncated.
pub struct EncryptWriter<W: Write> {
    inner: W,
    encryptor: Option<EncryptorBE32<XChaCha20Poly1305>>,
    pending: Vec<u8>,
}

impl<W: Write> EncryptWriter<W> {
    pub fn new(key: &PlatformKey, mut inner: W) -> io::Result<Self> {
        let mut nonce = [0u8; NONCE_PREFIX_BYTES];
        OsRng.fill_bytes(&mut nonce);
        inner.write_all(MAGIC)?;
        inner.write_all(&nonce)?;
        let cipher = XChaCha20Poly1305::new(key.bytes().into());
        Ok(Self {
            inner,
            encryptor: Some(EncryptorBE32::from_aead(cipher, (&nonce).into())),
            pending: Vec::with_capacity(SEGMENT_BYTES + TAG_BYTES),
        })
    }

    fn seal_full_segment(&mut self) -> io::Result<()> {
        let encryptor = self.encryptor.as_mut().ok_or_else(sealing_failed)?;
        let sealed = encryptor.encrypt_next_in_place(MAGIC, &mut self.pending);
        let written = match sealed {
            Ok(()) => self.inner.write_all(&self.pending),
            Err(_) => Err(sealing_failed()),
        };
        self.pending.clear();
        if written.is_err() {
            // A segment is lost: nothing written after it could be opened, so refuse
            // every later write (a compressor's drop still flushes into this writer).
            self.encryptor = None;
        }
        written
    }

    /// Seals the last segment and hands back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let encryptor = self.encryptor.take().ok_or_else(sealing_failed)?;
        encryptor
            .encrypt_last_in_place(MAGIC, &mut self.pending)
            .map_err(|_| sealing_failed())?;
        self.inner.write_all(&self.pending)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.encryptor.is_none() {
            return Err(sealing_failed());
        }
        let room = SEGMENT_BYTES.saturating_sub(self.pending.len());
        let taken = room.min(data.len());
        self.pending.extend_from_slice(&data[..taken]);
        if self.pending.len() == SEGMENT_BYTES {
            self.seal_full_segment()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        // A segment is sealed only when full or last; flushing the inner writer is all
        // that can be done without changing the segment layout.
        self.inner.flush()
    }
}

/// Opens what [`EncryptWriter`] sealed, refusing anything tampered with, truncated or
/// sealed with another key.
pub struct DecryptReader<R: Read> {
    inner: R,
    decryptor: Option<DecryptorBE32<XChaCha20Poly1305>>,
    /// Opened plaintext not yet handed out, from `position`.
    plain: Vec<u8>,
    position: usize,
    /// One segment read ahead, to know whether the current one is the last.
    sealed: Vec<u8>,
    finished: bool,
}

impl<R: Read> DecryptReader<R> {
    pub fn new(key: &PlatformKey, mut inner: R) -> io::Result<Self> {
        let mut header = [0u8; 8 + NONCE_PREFIX_BYTES];
        read_full(&mut inner, &mut header)?
            .eq(&header.len())
            .then_some(())
            .ok_or_else(|| unreadable("backup archive is truncated (no header)"))?;
        if &header[..8] != MAGIC {
            return Err(unreadable("not a clawfleet backup archive (bad magic)"));
        }
        let nonce: [u8; NONCE_PREFIX_BYTES] = header[8..]
            .try_into()
            .map_err(|_| unreadable("backup archive header is malformed"))?;
        let cipher = XChaCha20Poly1305::new(key.bytes().into());
        let mut reader = Self {
            inner,
            decryptor: Some(DecryptorBE32::from_aead(cipher, (&nonce).into())),
            plain: Vec::new(),
            position: 0,
            sealed: vec![0u8; SEGMENT_BYTES + TAG_BYTES],
            finished: false,
        };
        let first = read_full(&mut reader.inner, &mut reader.sealed)?;
        reader.sealed.truncate(first);
        Ok(reader)
    }

    /// Opens the segment held in `sealed`, reading the next one ahead.
    fn open_next(&mut self) -> io::Result<()> {
        let mut ahead = vec![0u8; SEGMENT_BYTES + TAG_BYTES];
        let ahead_len = read_full(&mut self.inner, &mut ahead)?;
        ahead.truncate(ahead_len);
        let mut segment = std::mem::replace(&mut self.sealed, ahead);
        let refused = |_| {
            unreadable("backup archive is corrupt, truncated, or sealed with another platform key")
        };
        if ahead_len == 0 {
            let decryptor = self
                .decryptor
                .take()
                .ok_or_else(|| unreadable("read past end"))?;
            decryptor
                .decrypt_last_in_place(MAGIC, &mut segment)
                .map_err(refused)?;
            self.finished = true;
        } else {
            let decryptor = self
                .decryptor
                .as_mut()
                .ok_or_else(|| unreadable("read past end"))?;
            decryptor
                .decrypt_next_in_place(MAGIC, &mut segment)
                .map_err(refused)?;
        }
        self.plain = segment;
        self.position = 0;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.position == self.plain.len() {
            if self.finished {
                return Ok(0);
            }
            self.open_next()?;
        }
        let count = out.len().min(self.plain.len() - self.position);
        out[..count].copy_from_slice(&self.plain[self.position..self.position + count]);
        self.position += count;
        Ok(count)
    }
}

/// Reads until `buffer` is full or the reader ends; returns how much was read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
#[path = "crypt_tests.rs"]
mod tests;

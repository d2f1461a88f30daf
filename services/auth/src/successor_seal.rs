//! The successor of a rotated refresh token, sealed so that only a holder of the
//! rotated token can open it: the stored form is the successor XORed with a keystream
//! derived (SHA-256) from the rotated token, which the database holds only as a digest.
//! A client that lost the refresh response retries with the rotated token and gets the
//! same successor back; a database reader learns nothing usable.

use sha2::{Digest, Sha256};

/// Longest successor that can be sealed (two SHA-256 blocks of keystream).
const MAX_SUCCESSOR_BYTES: usize = 64;

fn keystream(rotated_token: &str) -> [u8; MAX_SUCCESSOR_BYTES] {
    let mut stream = [0u8; MAX_SUCCESSOR_BYTES];
    for (block, chunk) in stream.chunks_mut(32).enumerate() {
        let mut hasher = Sha256::new();
        hasher.update(b"clawfleet refresh successor ");
        hasher.update([block as u8]);
        hasher.update(rotated_token.as_bytes());
        chunk.copy_from_slice(&hasher.finalize());
    }
    stream
}

/// `successor` sealed under `rotated_token`, as hex; `None` when it is too long.
pub fn seal(successor: &str, rotated_token: &str) -> Option<String> {
    let bytes = successor.as_bytes();
    if bytes.len() > MAX_SUCCESSOR_BYTES {
        return None;
    }
    let stream = keystream(rotated_token);
    let sealed: Vec<u8> = bytes
        .iter()
        .zip(stream)
        .map(|(byte, key)| byte ^ key)
        .collect();
    Some(hex::encode(sealed))
}

/// Opens what [`seal`] made with the same `rotated_token`.
pub fn open(sealed: &str, rotated_token: &str) -> Option<String> {
    let bytes = hex::decode(sealed).ok()?;
    if bytes.len() > MAX_SUCCESSOR_BYTES {
        return None;
    }
    let stream = keystream(rotated_token);
    let opened: Vec<u8> = bytes
        .iter()
        .zip(stream)
        .map(|(byte, key)| byte ^ key)
        .collect();
    String::from_utf8(opened).ok()
}

#[cfg(test)]
mod tests {
    use clawfleet_kit::secret::random_token;

    use super::*;

    #[test]
    fn only_the_rotated_token_opens_its_successor() {
        let rotated = random_token(32);
        let successor = random_token(32);
        let sealed = seal(&successor, &rotated).unwrap();
        assert!(!sealed.contains(&successor));
        assert_eq!(open(&sealed, &rotated).as_deref(), Some(successor.as_str()));
        assert_ne!(
            open(&sealed, &random_token(32)).as_deref(),
            Some(successor.as_str())
        );
        assert_eq!(seal(&"x".repeat(65), &rotated), None);
        assert_eq!(open("not hex", &rotated), None);
    }
}

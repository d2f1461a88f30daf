//! Small helpers: timestamps in the apiserver's format, UIDs and random name suffixes.

use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `metav1.Time` serializes with second precision: `2026-01-02T15:04:05Z`.
pub(crate) fn now() -> String {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    now.format(&Rfc3339).unwrap_or_default()
}

static SEED: AtomicU64 = AtomicU64::new(0);

/// A fresh pseudo-random number (splitmix64 over a time-seeded counter); tests need uniqueness,
/// not unpredictability.
pub(crate) fn random() -> u64 {
    let mut seed = SEED.load(Ordering::Relaxed);
    if seed == 0 {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
        let _ = SEED.compare_exchange(0, nanos | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    seed = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4-shaped UID.
pub(crate) fn new_uid() -> String {
    let (a, b) = (random(), random());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The alphabet Kubernetes uses for generated names (no vowels, no confusable characters).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` characters like the suffix of `gateway-7d9f8b6c5-x4k2p`.
pub(crate) fn random_suffix(n: usize) -> String {
    let mut bits = random();
    (0..n)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char;
            bits /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// The `pod-template-hash`: fnv32a of the template, spelled in the same safe alphabet.
pub(crate) fn template_hash(text: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let mut out = String::new();
    let mut h = u64::from(hash);
    while h > 0 || out.is_empty() {
        out.push(ALPHABET[(h % ALPHABET.len() as u64) as usize] as char);
        h /= ALPHABET.len() as u64;
    }
    out
}

/// The query string as ordered pairs (repeated keys such as `command` kept).
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse_query(Some(
            "&stdout=true&command=sh&command=-c&command=echo%20a+b&labelSelector=a%20in%20(x%2Cy)",
        ));
        assert_eq!(q[1], ("command".into(), "sh".into()));
        assert_eq!(q[3].1, "echo a b");
        assert_eq!(q[4].1, "a in (x,y)");
        assert_eq!(new_uid().len(), 36);
        assert_eq!(random_suffix(5).len(), 5);
    }
}

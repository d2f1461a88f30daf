//! Gateway versions as OpenClaw numbers them (`2026.9.6`, `2026.10.1-beta.2`), compared
//! to refuse restoring state a newer gateway wrote (docs/product/backups.md#versions).

use std::cmp::Ordering;

/// Compares two versions by their dot-separated numeric release parts; a pre-release
/// (`-beta.2`) sorts before its release. `None` when either is not a version.
pub fn compare(left: &str, right: &str) -> Option<Ordering> {
    let (left_release, left_pre) = parse(left)?;
    let (right_release, right_pre) = parse(right)?;
    let longest = left_release.len().max(right_release.len());
    let part = |parts: &[u64], index: usize| parts.get(index).copied().unwrap_or(0);
    for index in 0..longest {
        match part(&left_release, index).cmp(&part(&right_release, index)) {
            Ordering::Equal => continue,
            other => return Some(other),
        }
    }
    Some(match (left_pre, right_pre) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(left_pre), Some(right_pre)) => left_pre.cmp(right_pre),
    })
}

fn parse(version: &str) -> Option<(Vec<u64>, Option<&str>)> {
    let version = version.trim().trim_start_matches('v');
    let (release, pre) = match version.split_once('-') {
        Some((release, pre)) => (release, Some(pre)),
        None => (version, None),
    };
    let parts = release
        .split('.')
        .map(|part| part.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some((parts, pre))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_releases_compare_greater_part_by_part() {
        assert_eq!(compare("2026.10.1", "2026.9.6"), Some(Ordering::Greater));
        assert_eq!(compare("2026.9.6", "2026.9.6"), Some(Ordering::Equal));
        assert_eq!(compare("2026.9", "2026.9.1"), Some(Ordering::Less));
    }

    #[test]
    fn a_prerelease_sorts_before_its_release() {
        assert_eq!(compare("2026.9.6-beta.1", "2026.9.6"), Some(Ordering::Less));
    }

    #[test]
    fn anything_else_is_not_comparable() {
        assert_eq!(compare("latest", "2026.9.6"), None);
    }
}

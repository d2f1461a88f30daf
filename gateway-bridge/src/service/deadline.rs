//! The deadline of a gRPC call, from its `grpc-timeout` header.

use std::time::Duration;

use tonic::metadata::MetadataMap;

/// Used when the caller set no deadline.
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(30);
/// No gateway call waits longer than this, whatever the caller asked.
pub const MAX_CALL_DEADLINE: Duration = Duration::from_secs(300);

/// The caller's deadline, bounded; the default when none (or a malformed one) was sent.
pub fn call_deadline(metadata: &MetadataMap) -> Duration {
    metadata
        .get("grpc-timeout")
        .and_then(|value| value.to_str().ok())
        .and_then(parse_grpc_timeout)
        .unwrap_or(DEFAULT_CALL_DEADLINE)
        .min(MAX_CALL_DEADLINE)
}

/// `grpc-timeout` is up to 8 digits and a unit: H, M, S, m (ms), u (µs), n (ns).
fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("10u"), Some(Duration::from_micros(10)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }

    #[test]
    fn missing_or_huge_deadlines_are_bounded() {
        let mut metadata = MetadataMap::new();
        assert_eq!(call_deadline(&metadata), DEFAULT_CALL_DEADLINE);
        metadata.insert("grpc-timeout", "99H".parse().unwrap());
        assert_eq!(call_deadline(&metadata), MAX_CALL_DEADLINE);
    }
}

//! Wall-clock helpers: core keeps time as unix microseconds (notifications) and seconds (tokens).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Seconds since the unix epoch.
pub fn now_secs() -> i64 {
    now_micros() / 1_000_000
}

/// RFC3339 UTC with whole seconds, the form Nakama's `create_time` takes on the wire.
pub fn rfc3339_secs(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// RFC3339 UTC as protojson writes a Timestamp: 0, 3, 6 (or 9) fractional digits, as few as
/// the value needs (chat message times).
pub fn rfc3339_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let whole = rfc3339_secs(secs);
    let base = whole.trim_end_matches('Z');
    if frac == 0 {
        whole
    } else if frac % 1000 == 0 {
        format!("{base}.{:03}Z", frac / 1000)
    } else {
        format!("{base}.{frac:06}Z")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fractions_like_protojson() {
        assert_eq!(super::rfc3339_micros(1_000_000), "1970-01-01T00:00:01Z");
        assert_eq!(super::rfc3339_micros(1_120_000), "1970-01-01T00:00:01.120Z");
        assert_eq!(
            super::rfc3339_micros(1_123_456),
            "1970-01-01T00:00:01.123456Z"
        );
    }

    #[test]
    fn formats_like_nakama() {
        assert_eq!(super::rfc3339_secs(1_795_906_487), "2026-11-28T22:54:47Z");
        assert_eq!(super::rfc3339_secs(0), "1970-01-01T00:00:00Z");
    }
}

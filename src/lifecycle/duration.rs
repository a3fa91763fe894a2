//! Durations as users write them (`30m`, `8h`, `1h30m`), parsed with kube's Go-compatible parser.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// Parses a positive duration; the error says what was wrong and what is accepted.
pub fn parse(value: &str) -> Result<Duration, String> {
    let parsed: kube::core::Duration = value.parse().map_err(|err| {
        format!("{value:?} is not a duration ({err}); write e.g. 30m, 8h or 1h30m")
    })?;
    if parsed.is_negative() || Duration::from(parsed).is_zero() {
        return Err(format!(
            "{value:?} must be longer than zero; write e.g. 30m, 8h or 1h30m"
        ));
    }
    Ok(parsed.into())
}

/// Formats a duration the way users write them, e.g. `1h30m`; sub-second parts are dropped.
pub fn format(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || out.is_empty() {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

/// `t - d`, saturating at the start of time.
pub fn before(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_sub(d).unwrap_or(Timestamp::MIN)
}

/// `t + d`, saturating at the end of time.
pub fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// Kubernetes stores times to the second: activations are recorded rounded down...
pub fn second_floor(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// ...and expiries rounded up, so that nothing is removed before its full duration.
pub fn second_ceil(t: Timestamp) -> Timestamp {
    let floor = second_floor(t);
    if floor == t {
        t
    } else {
        after(floor, Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_users_write() {
        assert_eq!(parse("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("45s"), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn formats_like_users_write() {
        assert_eq!(format(Duration::from_secs(2160 * 3600)), "2160h");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(61)), "1m1s");
        assert_eq!(format(Duration::ZERO), "0s");
    }

    #[test]
    fn rejects_zero_negative_and_garbage_with_a_hint() {
        for bad in ["0s", "-1h", "4 hours", "", "h"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("30m, 8h or 1h30m"), "{bad}: {err}");
        }
    }
}

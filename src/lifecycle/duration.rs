//! Durations as users write them (`30m`, `8h`, `1h30m`), parsed with kube's Go-compatible parser.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// The longest duration Kubernetes accepts, `2562047h47m16s` in whole seconds: CEL's
/// `duration()` (Go's `time.Duration`) counts nanoseconds in an `i64`.
pub const LONGEST: Duration = Duration::from_secs(i64::MAX as u64 / 1_000_000_000);

/// Parses a positive duration: whole numbers of hours, minutes and seconds (`30m`, `8h`,
/// `1h30m`), exactly what the CRDs' duration rule and the narrowing admission policy admit
/// (`^([0-9]+(h|m|s))+$`, positive, at most [`LONGEST`]), so that the operator, its flags and
/// `kubectl gatehouse` agree with the API server on every value. The error says what was wrong
/// and what is accepted.
pub fn parse(value: &str) -> Result<Duration, String> {
    let length = length(value)?;
    if length.is_zero() {
        return Err(format!(
            "{value:?} must be longer than zero; write e.g. 30m, 8h or 1h30m"
        ));
    }
    Ok(length)
}

/// A duration of zero or more, in the grammar of [`parse`]. Counted in whole seconds with checked
/// arithmetic: no number is too large to read, and none loses precision.
pub fn length(value: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "{value:?} is not a duration; write e.g. 30m, 8h or 1h30m (whole numbers of h, m and s)"
        )
    };
    let too_long = || {
        format!(
            "{value:?} is longer than the longest duration Kubernetes accepts ({}); write e.g. 30m, 8h or 1h30m",
            format(LONGEST)
        )
    };
    if value.is_empty() {
        return Err(invalid());
    }
    let mut rest = value;
    let mut seconds: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, after) = rest.split_at(digits);
        let mut after = after.chars();
        let unit = match after.next() {
            Some('h') => 3600,
            Some('m') => 60,
            Some('s') => 1,
            _ => return Err(invalid()),
        };
        if digits == 0 {
            return Err(invalid());
        }
        // Only digits are left, so parsing fails on overflow alone; leading zeros count nothing.
        let count = match number.trim_start_matches('0') {
            "" => 0,
            significant => significant.parse::<u64>().map_err(|_| too_long())?,
        };
        seconds = count
            .checked_mul(unit)
            .and_then(|part| seconds.checked_add(part))
            .filter(|total| *total <= LONGEST.as_secs())
            .ok_or_else(too_long)?;
        rest = after.as_str();
    }
    Ok(Duration::from_secs(seconds))
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

    /// Found by the property tests: kube's Go-compatible parser multiplies in floating point and
    /// panicked on a number beyond any duration; the CRD's `duration()` refuses these.
    #[test]
    fn refuses_durations_longer_than_kubernetes_counts() {
        for huge in [
            "99999999999999999999h",
            "2562048h",
            "9223372037s",
            "2562047h47m17s",
        ] {
            let err = parse(huge).expect_err(huge);
            assert!(err.contains("2562047h47m16s"), "{huge}: {err}");
        }
        assert_eq!(parse("2562047h47m16s"), Ok(LONGEST));
        assert_eq!(
            parse("00000000000000000000000001h"),
            Ok(Duration::from_secs(3600))
        );
    }

    /// Found by the property tests: kube's parser also took what the CRD and the narrowing
    /// admission policy refuse (fractions, other units, signs, a bare `0`).
    #[test]
    fn refuses_what_the_schema_refuses() {
        for outside in [
            "1.5h", "300ms", "+1h", "1h-", "0", "1d", "1H", "1h 30m", " 1h", "1µs",
        ] {
            assert!(parse(outside).is_err(), "{outside}");
        }
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

#[cfg(test)]
mod properties {
    use std::sync::LazyLock;

    use proptest::prelude::*;
    use regex::Regex;

    use super::*;
    use crate::properties::{config, tricky_text};

    /// The regex of the CRD's duration rule (`self.matches('...') && duration(self) > ...`), as
    /// generated into crds/gatehouse.yaml.
    static SCHEMA_PATTERN: LazyLock<String> = LazyLock::new(|| {
        let rule = crate::api::common::duration_rule().rule;
        let start = rule.find("matches('").expect("the rule matches a regex") + "matches('".len();
        let end = start + rule[start..].find("')").expect("the regex ends");
        rule[start..end].to_string()
    });
    static SCHEMA: LazyLock<Regex> = LazyLock::new(|| Regex::new(&SCHEMA_PATTERN).unwrap());
    static PART: LazyLock<Regex> = LazyLock::new(|| Regex::new("([0-9]+)([hms])").unwrap());

    /// What the API server admits, computed independently of [`parse`]: the CRD's regex, then
    /// CEL's `duration()` (Go's `time.ParseDuration`: a sum of nanoseconds in an `i64`) and
    /// `> duration('0s')`. `Some(seconds)` when admitted.
    fn admitted_seconds(value: &str) -> Option<u128> {
        if !SCHEMA.is_match(value) {
            return None;
        }
        let mut seconds: u128 = 0;
        for part in PART.captures_iter(value) {
            let digits = part[1].trim_start_matches('0');
            if digits.len() > 30 {
                return None; // beyond any i64 of nanoseconds
            }
            let count: u128 = if digits.is_empty() {
                0
            } else {
                digits.parse().unwrap()
            };
            let unit = match &part[2] {
                "h" => 3600,
                "m" => 60,
                _ => 1,
            };
            seconds += count * unit;
        }
        let nanos = seconds * 1_000_000_000;
        (nanos > 0 && nanos <= i64::MAX as u128).then_some(seconds)
    }

    /// Text the CRD's regex admits, with numbers from tiny to beyond any duration.
    fn schema_shaped() -> impl Strategy<Value = String> {
        prop::collection::vec(("[0-9]{1,22}", "[hms]"), 1..5)
            .prop_map(|parts| parts.into_iter().map(|(n, u)| n + &u).collect())
    }

    proptest! {
        #![proptest_config(config())]

        /// Any text: a value or an error naming the fix, never a panic; and exactly what the API
        /// server admits is accepted, with the same length.
        #[test]
        fn accepts_exactly_what_the_api_server_admits(value in tricky_text()) {
            match (parse(&value), admitted_seconds(&value)) {
                (Ok(parsed), Some(seconds)) => prop_assert_eq!(parsed.as_secs() as u128, seconds),
                (Err(err), None) => prop_assert!(err.contains("30m, 8h or 1h30m"), "{}", err),
                (parsed, admitted) => prop_assert!(false, "{:?}: parsed {:?}, admitted {:?}", value, parsed, admitted),
            }
        }

        /// Text the CRD's regex admits (a policy's maxDuration, a spec.duration, an annotation
        /// the admission policy let through): the same verdict as the API server.
        #[test]
        fn agrees_with_the_schema_on_what_it_admits(value in schema_shaped()) {
            let parsed = parse(&value).ok().map(|d| d.as_secs() as u128);
            prop_assert_eq!(parsed, admitted_seconds(&value), "{:?}", value);
        }

        /// What the operator writes (status, narrowing, messages) reads back as the same length,
        /// in the CRD's grammar.
        #[test]
        fn format_round_trips(seconds in 1..=LONGEST.as_secs()) {
            let written = format(Duration::from_secs(seconds));
            prop_assert_eq!(parse(&written), Ok(Duration::from_secs(seconds)));
            prop_assert!(admitted_seconds(&written).is_some(), "{}", written);
        }

        /// Formatting is canonical: any accepted spelling (`90m`, `1h30m`, `0h5400s`) formats to
        /// one text, which formats to itself.
        #[test]
        fn format_is_canonical(value in schema_shaped()) {
            if let Ok(parsed) = parse(&value) {
                let canonical = format(parsed);
                prop_assert_eq!(format(parse(&canonical).unwrap()), canonical);
            }
        }
    }

    /// The admission policy that checks narrowed durations uses the same regex as the CRD.
    #[test]
    fn the_narrowing_policy_checks_the_schema_pattern() {
        let policy = include_str!("../../deploy/admission/narrowing.yaml");
        assert!(
            policy.contains(&format!("matches('{}')", *SCHEMA_PATTERN)),
            "deploy/admission/narrowing.yaml checks durations with another regex than the CRD ({})",
            *SCHEMA_PATTERN
        );
    }
}

//! Tables the way kubectl prints them: upper-case headers, columns padded to the widest cell and
//! separated by three spaces, and ages as kubectl shows them (`45s`, `3m20s`, `5h`, `2d3h`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// What an empty cell shows, as in kubectl.
pub const NONE: &str = "<none>";

/// Renders `rows` under `headers`; every line ends with `\n`, without trailing spaces.
/// Cells are counted in characters; a row shorter than the headers is padded with empty cells.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(headers.len()) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, width) in widths.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            // Newlines would break the table; messages may carry them.
            let cell = cell.replace(['\n', '\r'], " ");
            line.push_str(&cell);
            if i + 1 < widths.len() {
                let pad = width.saturating_sub(cell.chars().count()) + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A time as RFC 3339 in UTC (`2026-01-01T10:00:00Z`), or [`NONE`].
pub fn time(time: Option<&Time>) -> String {
    time.map_or_else(|| NONE.to_string(), |t| t.0.to_string())
}

/// How long ago `created` was, as kubectl's AGE column shows it, or `<unknown>`.
pub fn age(created: Option<&Time>, now: Timestamp) -> String {
    match created {
        Some(t) => human_duration(now.as_second() - t.0.as_second()),
        None => "<unknown>".to_string(),
    }
}

/// `t` relative to `now`: `in 59m` or `3m ago`.
pub fn relative(t: &Time, now: Timestamp) -> String {
    let seconds = t.0.as_second() - now.as_second();
    if seconds >= 0 {
        format!("in {}", human_duration(seconds))
    } else {
        format!("{} ago", human_duration(-seconds))
    }
}

/// kubectl's `HumanDuration` (k8s.io/apimachinery/pkg/util/duration), for whole seconds.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid test timestamp"))
    }

    #[test]
    fn pads_columns_to_the_widest_cell() {
        let rows = vec![
            vec!["AccessRequest".into(), "alice-read".into(), "5s".into()],
            vec!["dsa".into(), "x".into(), String::new()],
        ];
        assert_eq!(
            render(&["KIND", "NAME", "AGE"], &rows),
            "KIND            NAME         AGE\n\
             AccessRequest   alice-read   5s\n\
             dsa             x\n"
        );
    }

    #[test]
    fn keeps_each_row_on_one_line() {
        let rows = vec![vec!["a\nb".into(), "c".into()]];
        assert_eq!(render(&["X", "Y"], &rows), "X     Y\na b   c\n");
    }

    #[test]
    fn headers_alone_when_there_are_no_rows() {
        assert_eq!(render(&["TIME", "ROLE"], &[]), "TIME   ROLE\n");
    }

    #[test]
    fn ages_read_like_kubectl() {
        for (seconds, expected) in [
            (-5, "<invalid>"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (11 * 60, "11m"),
            (179 * 60, "179m"),
            (3 * 3600 + 60, "3h1m"),
            (5 * 3600, "5h"),
            (47 * 3600, "47h"),
            (51 * 3600, "2d3h"),
            (8 * 24 * 3600, "8d"),
            (800 * 24 * 3600, "2y70d"),
            (9 * 365 * 24 * 3600, "9y"),
        ] {
            assert_eq!(human_duration(seconds), expected, "{seconds}s");
        }
        let now = Timestamp::from_second(1_000).expect("valid");
        assert_eq!(age(Some(&at(995)), now), "5s");
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(relative(&at(1_000 + 3540), now), "in 59m");
        assert_eq!(relative(&at(1_000 - 200), now), "3m20s ago");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(Some(&at(1_767_261_600))), "2026-01-01T10:00:00Z");
        assert_eq!(time(None), "<none>");
    }
}

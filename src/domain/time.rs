//! Timestamps are unix milliseconds in `i64` everywhere (the schema stores BIGINT).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Milliseconds since the unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// `YYYY-MM-DD` → unix ms at 00:00 UTC that day; `None` for anything else.
pub fn parse_utc_day(s: &str) -> Option<i64> {
    let mut parts = s.trim().splitn(3, '-');
    let (y, m, d) = (parts.next()?.parse().ok()?, parts.next()?.parse::<u8>().ok()?, parts.next()?.parse().ok()?);
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// The UTC day of a timestamp as `YYYY-MM-DD` (empty when out of range).
pub fn utc_day(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

/// `YYYY-MM` (exactly: four-digit year, two-digit month) → the month's bounds in UTC, unix ms:
/// `[start, end)`. `None` for anything else.
pub fn parse_utc_month(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    if b.len() != 7 || b[4] != b'-' || !b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit()) {
        return None;
    }
    let (year, month): (i32, u8) = (s[..4].parse().ok()?, s[5..].parse().ok()?);
    let first = |year: i32, month: u8| {
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, 1)
            .ok()
            .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
    };
    let start = first(year, month)?;
    let end = if month == 12 { first(year + 1, 1)? } else { first(year, month + 1)? };
    Some((start, end))
}

/// The UTC month of a timestamp as `YYYY-MM` (empty when out of range).
pub fn utc_month(ms: i64) -> String {
    utc_day(ms).get(..7).unwrap_or_default().to_string()
}

/// A timestamp as ISO-8601 in UTC with milliseconds: `2026-11-27T08:05:09.042Z` (empty when out
/// of range).
pub fn utc_iso(ms: i64) -> String {
    let in_day = ms.rem_euclid(DAY_MS);
    let day = utc_day(ms);
    if day.is_empty() {
        return day;
    }
    let secs = in_day / 1000;
    format!("{day}T{:02}:{:02}:{:02}.{:03}Z", secs / 3600, secs / 60 % 60, secs % 60, in_day % 1000)
}

/// A wait as OpenAI writes its `x-ratelimit-reset-*` headers: `1h2m3s`, `6m0s`, `20s`.
pub fn reset_text(ms: i64) -> String {
    let secs = (ms.max(0) + 999) / 1000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_waits_are_written_like_openai_headers() {
        assert_eq!(reset_text(20_000), "20s");
        assert_eq!(reset_text(360_000), "6m0s");
        assert_eq!(reset_text(3_723_000), "1h2m3s");
        assert_eq!(reset_text(1), "1s");
    }

    #[test]
    fn days_parse_and_format_in_utc() {
        assert_eq!(parse_utc_day("2026-11-27"), Some(1_795_737_600_000));
        assert_eq!(parse_utc_day(" 2026-11-27 "), Some(1_795_737_600_000));
        for bad in ["2026-13-01", "2026-02-30", "yesterday", "", "2026-11", "2026-11-27-01"] {
            assert_eq!(parse_utc_day(bad), None, "{bad}");
        }
        assert_eq!(utc_day(1_795_737_600_000), "2026-11-27");
        assert_eq!(utc_day(1_795_737_600_000 + DAY_MS - 1), "2026-11-27");
        assert_eq!(utc_day(i64::MAX), "");
    }

    #[test]
    fn months_parse_strictly_in_utc() {
        assert_eq!(parse_utc_month("2026-11"), Some((1_793_491_200_000, 1_796_083_200_000)));
        assert_eq!(
            parse_utc_month("2026-12"),
            Some((1_796_083_200_000, 1_798_761_600_000)),
            "December ends in January"
        );
        assert_eq!(parse_utc_month("2024-02").map(|(a, b)| (b - a) / DAY_MS), Some(29), "a leap February");
        for bad in
            ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", " 2026-11", "2026-11-01", "", "+202-11", "2026-1a"]
        {
            assert_eq!(parse_utc_month(bad), None, "{bad:?}");
        }
        assert_eq!(utc_month(1_796_083_200_000 - 1), "2026-11");
        assert_eq!(utc_iso(1_795_737_600_000 + 29_109_042), "2026-11-27T08:05:09.042Z");
        assert_eq!(utc_iso(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(utc_iso(i64::MAX), "");
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

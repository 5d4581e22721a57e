//! Budgets that reset: an amount a key may spend per period. A period is a calendar day, week
//! (Monday first) or month in the site's budget time zone (a fixed UTC offset), or a rolling
//! 24 hours, 7 days or 30 days counted from when the budget was set. Pure: the window containing
//! an instant, and how a reset time is written.

use time::{Date, OffsetDateTime, UtcOffset};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How long a budget lasts before it starts again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    /// 24 hours from when the budget was set, then the next 24, …
    Rolling24h,
    Rolling7d,
    Rolling30d,
}

impl Period {
    /// What a period may be, for error messages.
    pub const ACCEPTED: &'static str = "day, week or month (calendar, in the site's budget time zone), or 24h, 7d or 30d (rolling from when the budget was set)";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "24h" => Self::Rolling24h,
            "7d" => Self::Rolling7d,
            "30d" => Self::Rolling30d,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Rolling24h => "24h",
            Self::Rolling7d => "7d",
            Self::Rolling30d => "30d",
        }
    }

    /// The adjective people use: "daily", "weekly", …
    pub fn adjective(self) -> &'static str {
        match self {
            Self::Day => "daily",
            Self::Week => "weekly",
            Self::Month => "monthly",
            Self::Rolling24h => "24-hour",
            Self::Rolling7d => "7-day",
            Self::Rolling30d => "30-day",
        }
    }

    /// The window `[start, end)` (unix ms) that contains `now`. Calendar periods are cut at
    /// midnight at `offset`; rolling ones every period length after `anchor` (when the budget was
    /// set). Two instants share a window exactly when they get the same start.
    pub fn window(self, now: i64, anchor: i64, offset: UtcOffset) -> (i64, i64) {
        let rolling = |len: i64| {
            let start = anchor + (now - anchor).div_euclid(len) * len;
            (start, start + len)
        };
        match self {
            Self::Rolling24h => rolling(DAY_MS),
            Self::Rolling7d => rolling(7 * DAY_MS),
            Self::Rolling30d => rolling(30 * DAY_MS),
            Self::Day | Self::Week | Self::Month => calendar(self, now, offset).unwrap_or_else(|| rolling(DAY_MS)),
        }
    }
}

/// A calendar window, `None` only for instants outside the calendar's range.
fn calendar(period: Period, now: i64, offset: UtcOffset) -> Option<(i64, i64)> {
    let date = OffsetDateTime::from_unix_timestamp(now.div_euclid(1000)).ok()?.to_offset(offset).date();
    let (start, end) = match period {
        Period::Day => (date, date.next_day()?),
        Period::Week => {
            let monday = date.checked_sub(time::Duration::days(date.weekday().number_days_from_monday().into()))?;
            (monday, monday.checked_add(time::Duration::days(7))?)
        }
        _ => {
            let first = date.replace_day(1).ok()?;
            let next = match first.month() {
                time::Month::December => Date::from_calendar_date(first.year() + 1, time::Month::January, 1),
                month => Date::from_calendar_date(first.year(), month.next(), 1),
            };
            (first, next.ok()?)
        }
    };
    let ms = |d: Date| d.midnight().assume_offset(offset).unix_timestamp() * 1000;
    Some((ms(start), ms(end)))
}

/// A key's budget: `amount` (nano-units) per `period`, set at `anchor` (unix ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub amount: i64,
    pub period: Period,
    pub anchor: i64,
}

impl Budget {
    /// A stored budget, if the key has one (an unreadable period reads as a daily budget rather
    /// than none: it never widens what the key may spend).
    pub fn from_stored(amount: Option<i64>, period: Option<&str>, anchor: i64) -> Option<Self> {
        Some(Self { amount: amount?, period: period.and_then(Period::parse).unwrap_or(Period::Day), anchor })
    }

    /// The window `[start, end)` that contains `now`.
    pub fn window(&self, now: i64, offset: UtcOffset) -> (i64, i64) {
        self.period.window(now, self.anchor, offset)
    }

    /// A fingerprint of the budget's amount, period and anchor: reservations made ahead under one
    /// budget (budget leases) are not used under another.
    pub fn terms(&self) -> i64 {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(self.amount, self.period as u8, self.anchor), &mut hasher);
        std::hash::Hasher::finish(&hasher) as i64
    }

    /// What the key has spent in the window containing `now`, given the stored count and the
    /// window it counts (a count of an earlier window is nothing now).
    pub fn spent_now(&self, now: i64, offset: UtcOffset, counted_window: i64, counted: i64) -> i64 {
        if counted_window >= self.window(now, offset).0 { counted } else { 0 }
    }
}

/// A budget time zone as an operator writes it: `UTC`, `+08:00`, `-05:30` or `+8`. Fixed offsets
/// only (no daylight-saving rules): −12:00 to +14:00.
pub fn parse_offset(s: &str) -> Option<UtcOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" || s.is_empty() {
        return Some(UtcOffset::UTC);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':').unwrap_or((rest, "0"));
    let digits = |t: &str| (!t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit())).then_some(());
    digits(hours)?;
    digits(minutes)?;
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    let total = sign * (hours * 3600 + minutes * 60);
    if minutes >= 60 || !(-12 * 3600..=14 * 3600).contains(&total) {
        return None;
    }
    UtcOffset::from_whole_seconds(total).ok()
}

/// An offset as [`parse_offset`] reads it back: `UTC` or `+08:00`.
pub fn offset_text(offset: UtcOffset) -> String {
    if offset == UtcOffset::UTC {
        return "UTC".into();
    }
    let total = offset.whole_seconds();
    let sign = if total < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", total.abs() / 3600, total.abs() % 3600 / 60)
}

/// An instant as RFC 3339 at `offset` (`2026-12-04T00:00:00+08:00`, `…Z` in UTC), for messages.
pub fn rfc3339(at_ms: i64, offset: UtcOffset) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000)) else {
        return at_ms.to_string();
    };
    let t = t.to_offset(offset);
    let zone = if offset == UtcOffset::UTC { "Z".to_string() } else { offset_text(offset) };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-03T15:30:00Z, a Thursday.
    const NOW: i64 = 1_796_311_800_000;

    fn utc(s: &str) -> String {
        s.into()
    }

    #[test]
    fn calendar_windows_cut_at_midnight_in_the_zone() {
        let (start, end) = Period::Day.window(NOW, 0, UtcOffset::UTC);
        assert_eq!(
            (rfc3339(start, UtcOffset::UTC), rfc3339(end, UtcOffset::UTC)),
            (utc("2026-12-03T00:00:00Z"), utc("2026-12-04T00:00:00Z"))
        );
        let east = parse_offset("+08:00").unwrap();
        let (start, end) = Period::Day.window(NOW, 0, east);
        assert_eq!(
            (rfc3339(start, east), rfc3339(end, east)),
            (utc("2026-12-03T00:00:00+08:00"), utc("2026-12-04T00:00:00+08:00"))
        );
        // 23:30 UTC is already the next day at +08:00.
        let late = NOW + 8 * HOUR_MS + 1;
        assert_eq!(rfc3339(Period::Day.window(late, 0, east).0, east), "2026-12-04T00:00:00+08:00");
        let (start, end) = Period::Week.window(NOW, 0, UtcOffset::UTC);
        assert_eq!(
            (rfc3339(start, UtcOffset::UTC), rfc3339(end, UtcOffset::UTC)),
            (utc("2026-11-30T00:00:00Z"), utc("2026-12-07T00:00:00Z"))
        );
        let (start, end) = Period::Month.window(NOW, 0, UtcOffset::UTC);
        assert_eq!(
            (rfc3339(start, UtcOffset::UTC), rfc3339(end, UtcOffset::UTC)),
            (utc("2026-12-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn an_instant_at_the_boundary_starts_the_next_window() {
        let (_, end) = Period::Day.window(NOW, 0, UtcOffset::UTC);
        assert_eq!(Period::Day.window(end - 1, 0, UtcOffset::UTC).1, end);
        assert_eq!(Period::Day.window(end, 0, UtcOffset::UTC).0, end);
    }

    #[test]
    fn rolling_windows_count_from_the_anchor() {
        let anchor = NOW - 3 * HOUR_MS;
        assert_eq!(Period::Rolling24h.window(NOW, anchor, UtcOffset::UTC), (anchor, anchor + DAY_MS));
        assert_eq!(Period::Rolling24h.window(anchor + DAY_MS, anchor, UtcOffset::UTC).0, anchor + DAY_MS);
        assert_eq!(Period::Rolling7d.window(anchor + 8 * DAY_MS, anchor, UtcOffset::UTC).0, anchor + 7 * DAY_MS);
    }

    #[test]
    fn periods_and_offsets_read_back_as_written() {
        for p in ["day", "week", "month", "24h", "7d", "30d"] {
            assert_eq!(Period::parse(p).unwrap().as_str(), p);
        }
        assert!(Period::parse("fortnight").is_none());
        for (written, read) in
            [("UTC", "UTC"), ("+08:00", "+08:00"), ("-05:30", "-05:30"), ("+8", "+08:00"), ("Z", "UTC")]
        {
            assert_eq!(offset_text(parse_offset(written).unwrap()), read, "{written}");
        }
        for bad in ["08:00", "+15:00", "-13", "+08:60", "+8:5:1", "CET", "+1000"] {
            assert!(parse_offset(bad).is_none(), "{bad}");
        }
    }
}

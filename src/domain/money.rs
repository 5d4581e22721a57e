//! Money as integers: nano-units (1e-9) of the site currency, so every real per-token list price
//! is exact. Decimal strings ("10.00", "-2.5") are parsed without floats, and overflow is an
//! error rather than a wrap.

use std::fmt;

/// Nano-units per whole currency unit.
pub const NANOS_PER_UNIT: i64 = 1_000_000_000;
const SCALE_DIGITS: u32 = 9;

/// An amount of the site currency, in nano-units. Signed: ledger amounts can be debits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

impl Money {
    pub fn nanos(self) -> i64 {
        self.0
    }

    /// Parses a decimal string with up to 9 fractional digits, e.g. `"10.00"` or `"-0.5"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        parse_fixed(s, SCALE_DIGITS).map(Money)
    }
}

impl fmt::Display for Money {
    /// At least two decimals, more only when they are not zero: `10.00`, `0.000150`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_fixed(self.0, SCALE_DIGITS, 2))
    }
}

/// Serde: a nano-unit amount as the API shows money, a decimal string (`"5.00"`).
/// Use as `#[serde(serialize_with = "crate::domain::money::as_decimal")]`.
pub fn as_decimal<S: serde::Serializer>(nanos: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&Money(*nanos))
}

/// Serde: an optional nano-unit amount as a decimal string or null.
pub fn as_optional_decimal<S: serde::Serializer>(nanos: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match nanos {
        Some(n) => serializer.collect_str(&Money(*n)),
        None => serializer.serialize_none(),
    }
}

/// Parses a decimal string into an integer scaled by `10^digits`, exactly.
pub fn parse_fixed(s: &str, digits: u32) -> Result<i64, String> {
    let invalid = || format!("{s:?} is not a decimal number with at most {digits} decimals");
    let t = s.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int_part, frac_part) = t.split_once('.').unwrap_or((t, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
        || frac_part.len() > digits as usize
    {
        return Err(invalid());
    }
    let scale = 10i64.pow(digits);
    let int: i64 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| invalid())? };
    let frac: i64 = if frac_part.is_empty() {
        0
    } else {
        let padded = format!("{frac_part:0<width$}", width = digits as usize);
        padded.parse().map_err(|_| invalid())?
    };
    let value =
        int.checked_mul(scale).and_then(|v| v.checked_add(frac)).ok_or_else(|| format!("{s:?} is too large"))?;
    Ok(if negative { -value } else { value })
}

/// Formats a scaled integer with at least `min_frac` decimals, trimming further zeros.
pub fn format_fixed(value: i64, digits: u32, min_frac: usize) -> String {
    let scale = 10u64.pow(digits);
    let abs = value.unsigned_abs();
    let mut frac = format!("{:0width$}", abs % scale, width = digits as usize);
    while frac.len() > min_frac && frac.ends_with('0') {
        frac.pop();
    }
    let sign = if value < 0 { "-" } else { "" };
    if frac.is_empty() { format!("{sign}{}", abs / scale) } else { format!("{sign}{}.{frac}", abs / scale) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(Money::parse("10.00").unwrap(), Money(10 * NANOS_PER_UNIT));
        assert_eq!(Money::parse("-2.5").unwrap(), Money(-2_500_000_000));
        assert_eq!(Money::parse("0.000000001").unwrap(), Money(1));
        assert_eq!(Money::parse(".5").unwrap(), Money(500_000_000));
        assert_eq!(Money::parse("7").unwrap(), Money(7 * NANOS_PER_UNIT));
        assert_eq!(parse_fixed("0.8", 6).unwrap(), 800_000);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["", ".", "-", "1.0000000001", "1e3", "abc", "1,5", "--1", "99999999999999999999"] {
            assert!(Money::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["10.00", "-2.50", "0.000000001", "0.00015", "123456789.123456789"] {
            assert_eq!(Money::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(format_fixed(800_000, 6, 1), "0.8");
        assert_eq!(format_fixed(1_000_000, 6, 0), "1");
    }
}

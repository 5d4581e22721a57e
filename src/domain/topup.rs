//! Top-up pricing as pure arithmetic: the `topup.*` settings (payment currency, preset amounts,
//! bounds, credit per unit, bonus per group) and what an amount charges and credits. The
//! settings snapshot (`config::site`) holds it; `payments` (Stripe) and the console use it.

use crate::domain::money::{NANOS_PER_UNIT, format_fixed, parse_fixed};

/// How top-ups are priced, from the `topup.*` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopupSettings {
    /// The payment currency, lowercase ISO 4217 as Stripe writes it (`usd`).
    pub currency: String,
    /// The amounts offered as buttons, in the payment currency's minor units.
    pub presets: Vec<i64>,
    /// Bounds of a custom amount, minor units.
    pub min: i64,
    pub max: i64,
    /// Site-currency nano-units credited per whole unit of the payment currency.
    pub credit_per_unit: i64,
    /// Extra credit per group, in percent (negative: a fee).
    pub group_bonus: Vec<(String, i32)>,
}

impl Default for TopupSettings {
    fn default() -> Self {
        Self {
            currency: "usd".into(),
            presets: vec![500, 1_000, 2_000, 5_000, 10_000],
            min: 100,
            max: 1_000_000,
            credit_per_unit: NANOS_PER_UNIT,
            group_bonus: Vec::new(),
        }
    }
}

/// What a top-up of some amount costs and credits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Charged, in the payment currency's minor units.
    pub charge: i64,
    pub currency: String,
    /// Credited, in site-currency nano-units (bonus included).
    pub credit: i64,
    pub bonus_percent: i32,
}

/// Why an amount cannot be topped up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("Enter an amount like 10 or 12.50.")]
    NotAnAmount,
    #[error("The amount is below the minimum.")]
    BelowMinimum,
    #[error("The amount is above the maximum.")]
    AboveMaximum,
}

/// Currencies Stripe charges in whole units (no minor unit); every other has two decimals.
/// (Stripe's three-decimal currencies are not offered: their amounts must end in 0.)
const ZERO_DECIMAL: &[&str] =
    &["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"];
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// Decimal digits of a currency's minor unit.
pub fn exponent(currency: &str) -> u32 {
    if ZERO_DECIMAL.contains(&currency) { 0 } else { 2 }
}

/// An amount in minor units as people write it: `12.50`, `1000` (JPY).
pub fn format_minor(amount: i64, currency: &str) -> String {
    let digits = exponent(currency);
    format_fixed(amount, digits, digits as usize)
}

/// An amount with its currency: `12.50 USD`.
pub fn format_charge(amount: i64, currency: &str) -> String {
    format!("{} {}", format_minor(amount, currency), currency.to_ascii_uppercase())
}

impl TopupSettings {
    /// Validates and sets the payment currency.
    pub fn set_currency(&mut self, value: &str) -> Result<(), String> {
        let currency = value.trim().to_ascii_lowercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err("a three-letter currency code Stripe charges in, like usd".into());
        }
        if THREE_DECIMAL.contains(&currency.as_str()) {
            return Err("three-decimal currencies are not supported".into());
        }
        if exponent(&currency) != exponent(&self.currency) {
            // Amounts are kept in minor units: rescale them to the new currency's.
            let (from, to) = (exponent(&self.currency), exponent(&currency));
            let rescale = |v: i64| if to > from { v * 10i64.pow(to - from) } else { (v / 10i64.pow(from - to)).max(1) };
            self.presets = self.presets.iter().map(|&v| rescale(v)).collect();
            self.min = rescale(self.min);
            self.max = rescale(self.max);
        }
        self.currency = currency;
        Ok(())
    }

    /// Parses an amount in the payment currency (`12.50`) into minor units.
    pub fn parse_amount(&self, value: &str) -> Option<i64> {
        parse_fixed(value.trim(), exponent(&self.currency)).ok().filter(|v| *v > 0)
    }

    /// The bonus percent for a group (0 when it has none).
    pub fn bonus_for(&self, group: &str) -> i32 {
        self.group_bonus.iter().find(|(g, _)| g == group).map_or(0, |(_, p)| *p)
    }

    /// What paying `charge` minor units credits a member of `group`.
    pub fn quote(&self, charge: i64, group: &str) -> Result<Quote, QuoteError> {
        if charge <= 0 {
            return Err(QuoteError::NotAnAmount);
        }
        if charge < self.min {
            return Err(QuoteError::BelowMinimum);
        }
        if charge > self.max {
            return Err(QuoteError::AboveMaximum);
        }
        let bonus_percent = self.bonus_for(group);
        let minor_per_unit = 10i128.pow(exponent(&self.currency));
        let credit = i128::from(charge) * i128::from(self.credit_per_unit) * i128::from(100 + bonus_percent)
            / (minor_per_unit * 100);
        let credit = i64::try_from(credit).map_err(|_| QuoteError::AboveMaximum)?;
        if credit <= 0 {
            return Err(QuoteError::BelowMinimum);
        }
        Ok(Quote { charge, currency: self.currency.clone(), credit, bonus_percent })
    }

    /// `topup.amounts`: amounts separated by commas or spaces.
    pub fn parse_presets(&self, value: &str) -> Result<Vec<i64>, String> {
        let amounts: Option<Vec<i64>> =
            value.split([',', ' ']).filter(|s| !s.trim().is_empty()).map(|s| self.parse_amount(s)).collect();
        match amounts {
            Some(list) if list.len() <= 12 => Ok(list),
            _ => Err("up to 12 positive amounts separated by commas, like 5, 10, 20".into()),
        }
    }

    /// `topup.group_bonus`: `group=percent` pairs separated by commas, e.g. `vip=10, trial=-5`.
    pub fn parse_group_bonus(value: &str) -> Result<Vec<(String, i32)>, String> {
        let invalid = || "group=percent pairs separated by commas, like vip=10, trial=-5 (-90 to 500)".to_string();
        value
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|pair| {
                let (group, percent) = pair.split_once('=').ok_or_else(invalid)?;
                let percent =
                    percent.trim().parse::<i32>().ok().filter(|p| (-90..=500).contains(p)).ok_or_else(invalid)?;
                let group = group.trim();
                if group.is_empty() {
                    return Err(invalid());
                }
                Ok((group.to_string(), percent))
            })
            .collect()
    }

    pub fn presets_text(&self) -> String {
        self.presets.iter().map(|v| format_minor(*v, &self.currency)).collect::<Vec<_>>().join(", ")
    }

    pub fn group_bonus_text(&self) -> String {
        self.group_bonus.iter().map(|(g, p)| format!("{g}={p}")).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_credit_with_the_group_bonus() {
        let mut s = TopupSettings::default();
        assert_eq!(s.quote(1_000, "default").unwrap().credit, 10 * NANOS_PER_UNIT);
        s.group_bonus = TopupSettings::parse_group_bonus("vip=10, trial=-5").unwrap();
        assert_eq!(s.quote(1_000, "vip").unwrap().credit, 11 * NANOS_PER_UNIT);
        assert_eq!(s.quote(1_000, "trial").unwrap().credit, 9_500_000_000);
        assert_eq!(s.quote(50, "vip"), Err(QuoteError::BelowMinimum));
        assert_eq!(s.quote(2_000_000, "vip"), Err(QuoteError::AboveMaximum));
        s.credit_per_unit = 7 * NANOS_PER_UNIT; // e.g. a CNY site paid in USD
        assert_eq!(s.quote(1_050, "default").unwrap().credit, 73_500_000_000);
    }

    #[test]
    fn amounts_follow_the_currency_minor_unit() {
        let mut s = TopupSettings::default();
        assert_eq!(s.parse_amount("12.50"), Some(1_250));
        assert_eq!(s.parse_amount("12.505"), None);
        assert_eq!(s.parse_amount("-1"), None);
        s.set_currency("JPY").unwrap();
        assert_eq!((s.min, s.presets[0]), (1, 5));
        assert_eq!(s.parse_amount("1000"), Some(1_000));
        assert_eq!(s.parse_amount("10.5"), None);
        assert_eq!(s.quote(1_000, "default").unwrap().credit, 1_000 * NANOS_PER_UNIT);
        assert_eq!(format_charge(1_000, "jpy"), "1000 JPY");
        assert_eq!(format_charge(1_250, "usd"), "12.50 USD");
        assert!(s.set_currency("kwd").is_err() && s.set_currency("us").is_err());
    }

    #[test]
    fn settings_text_round_trips() {
        let s = TopupSettings::default();
        assert_eq!(s.parse_presets(&s.presets_text()).unwrap(), s.presets);
        assert!(s.parse_presets("5, ten").is_err());
        assert!(TopupSettings::parse_group_bonus("vip=600").is_err());
        assert!(TopupSettings::parse_group_bonus("=5").is_err());
        assert_eq!(TopupSettings::parse_group_bonus("").unwrap(), vec![]);
    }
}

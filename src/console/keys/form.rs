//! The console's key form (create and edit): the fields as typed — so a refused form comes back
//! as it was sent — and their parsing into the key service's inputs, where the real validation
//! happens (`services::keys`). Blank means "no limit"; lists are separated by commas, spaces or
//! new lines; the expiry is a UTC day: the key works through the end of that day.

use serde::Deserialize;

use crate::domain::money::Money;
use crate::domain::time::{DAY_MS, now_ms, parse_utc_day, utc_day};
use crate::services::keys::{KeyPatch, KeyView, NewKeyInput};

#[derive(Clone, Debug, Default, Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub spend_limit: String,
    /// `YYYY-MM-DD`: the last day the key works (UTC).
    #[serde(default)]
    pub expires: String,
    #[serde(default)]
    pub models: String,
    #[serde(default)]
    pub ips: String,
    #[serde(default)]
    pub rpm: String,
    #[serde(default)]
    pub rpd: String,
    #[serde(default)]
    pub tpm: String,
    #[serde(default)]
    pub concurrency: String,
    /// An amount per `budget_period`; blank: no budget.
    #[serde(default)]
    pub budget: String,
    #[serde(default)]
    pub budget_period: String,
    /// A checkbox: present (`on`) when the key must not be answered by a fallback model.
    #[serde(default)]
    pub no_fallback: String,
}

/// The budget periods the form offers: (value, label).
pub const BUDGET_PERIODS: &[(&str, &str)] = &[
    ("day", "Per day"),
    ("week", "Per week"),
    ("month", "Per month"),
    ("24h", "Per 24 hours (rolling)"),
    ("7d", "Per 7 days (rolling)"),
    ("30d", "Per 30 days (rolling)"),
];

/// The form's values, parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyFields {
    pub name: String,
    pub spend_limit: Option<String>,
    pub expires_at: Option<i64>,
    pub models: Option<Vec<String>>,
    pub ips: Option<Vec<String>>,
    pub rpm: Option<i64>,
    pub rpd: Option<i64>,
    pub tpm: Option<i64>,
    pub concurrency: Option<i64>,
    pub budget: Option<String>,
    pub budget_period: Option<String>,
    /// Whether the group's fallback models may answer.
    pub fallback: bool,
}

fn blank_is_none(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

fn split_list(s: &str) -> Option<Vec<String>> {
    let entries: Vec<String> =
        s.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty()).map(str::to_string).collect();
    (!entries.is_empty()).then_some(entries)
}

/// The day a key expiring at `expires_at` is last usable on (the form's value).
pub fn last_day(expires_at: i64) -> String {
    utc_day(expires_at - 1)
}

/// A "works through" day from a form (blank: never expires) as the expiry instant: the end of
/// that UTC day. `current` is the expiry already set: its own day sent back keeps it exactly.
pub fn parse_last_day(day: &str, current: Option<i64>) -> Result<Option<i64>, String> {
    match blank_is_none(day) {
        None => Ok(None),
        Some(day) if current.is_some_and(|t| last_day(t) == day) => Ok(current),
        Some(day) => {
            let start = parse_utc_day(&day).ok_or("Works through: a date like 2026-11-27.")?;
            let end = start + DAY_MS;
            if end <= now_ms() {
                return Err("Works through: that day is over; choose today or a later day.".into());
            }
            Ok(Some(end))
        }
    }
}

impl KeyForm {
    /// The form filled in with a key's current values.
    pub fn of(key: &KeyView) -> Self {
        Self {
            name: key.name.clone(),
            spend_limit: key.spend_limit.map(|l| Money(l).to_string()).unwrap_or_default(),
            expires: key.expires_at.map(last_day).unwrap_or_default(),
            models: key.models.as_ref().map(|m| m.join(", ")).unwrap_or_default(),
            ips: key.ips.as_ref().map(|m| m.join(", ")).unwrap_or_default(),
            rpm: key.rpm.map(|n| n.to_string()).unwrap_or_default(),
            rpd: key.rpd.map(|n| n.to_string()).unwrap_or_default(),
            tpm: key.tpm.map(|n| n.to_string()).unwrap_or_default(),
            concurrency: key.concurrency.map(|n| n.to_string()).unwrap_or_default(),
            budget: key.budget.map(|b| Money(b).to_string()).unwrap_or_default(),
            budget_period: key.budget_period.clone().unwrap_or_else(|| "month".into()),
            no_fallback: if key.fallback { String::new() } else { "on".into() },
        }
    }

    /// The budget periods to choose from: (value, label).
    pub fn budget_periods(&self) -> &'static [(&'static str, &'static str)] {
        BUDGET_PERIODS
    }

    pub fn budget_period_is(&self, value: &str) -> bool {
        self.budget_period == value
    }

    /// Parses the form. `current_expiry` is the key's expiry when editing: sent back unchanged,
    /// its day keeps the exact time (set through the API) rather than moving it to midnight.
    pub fn parse(&self, current_expiry: Option<i64>) -> Result<KeyFields, String> {
        let expires_at = parse_last_day(&self.expires, current_expiry)?;
        let whole = |value: &str, message: &'static str| match blank_is_none(value) {
            None => Ok(None),
            Some(n) => n.parse::<i64>().map(Some).map_err(|_| message.to_string()),
        };
        let rpm = whole(&self.rpm, "RPM: a whole number of requests per minute, or blank for no limit.")?;
        let rpd = whole(&self.rpd, "Requests per day: a whole number, or blank for no limit.")?;
        let tpm = whole(&self.tpm, "Tokens per minute: a whole number, or blank for no limit.")?;
        let concurrency = whole(&self.concurrency, "Requests at once: a whole number, or blank for the site's limit.")?;
        Ok(KeyFields {
            name: self.name.trim().to_string(),
            spend_limit: blank_is_none(&self.spend_limit),
            expires_at,
            models: split_list(&self.models),
            ips: split_list(&self.ips),
            rpm,
            rpd,
            tpm,
            concurrency,
            budget: blank_is_none(&self.budget),
            budget_period: blank_is_none(&self.budget_period),
            fallback: self.no_fallback.is_empty(),
        })
    }
}

impl KeyFields {
    /// A new key with these limits (self-service: never a fixed key string).
    pub fn into_new_key(self) -> NewKeyInput {
        NewKeyInput {
            name: Some(self.name),
            spend_limit: self.spend_limit,
            expires_at: self.expires_at,
            models: self.models,
            ips: self.ips,
            rpm: self.rpm,
            rpd: self.rpd,
            tpm: self.tpm,
            concurrency: self.concurrency,
            fallback: Some(self.fallback),
            budget_period: self.budget.as_ref().and(self.budget_period),
            budget: self.budget,
            key: None,
        }
    }

    /// Every field of the form replaces the key's (a blank removes that limit).
    pub fn into_patch(self) -> KeyPatch {
        KeyPatch {
            status: None,
            name: Some(self.name),
            spend_limit: Some(self.spend_limit),
            expires_at: Some(self.expires_at),
            models: Some(self.models),
            ips: Some(self.ips),
            rpm: Some(self.rpm),
            rpd: Some(self.rpd),
            tpm: Some(self.tpm),
            concurrency: Some(self.concurrency),
            fallback: Some(self.fallback),
            budget_period: self.budget.as_ref().and(self.budget_period),
            budget: Some(self.budget),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(expires: &str, rpm: &str) -> KeyForm {
        KeyForm {
            name: " laptop ".into(),
            models: "gpt-4o, claude\nx".into(),
            ips: "".into(),
            expires: expires.into(),
            rpm: rpm.into(),
            ..KeyForm::default()
        }
    }

    #[test]
    fn blanks_mean_no_limit_and_lists_split() {
        let fields = form("", "").parse(None).unwrap();
        assert_eq!(fields.name, "laptop");
        assert_eq!(fields.models, Some(vec!["gpt-4o".into(), "claude".into(), "x".into()]));
        assert_eq!((fields.ips, fields.rpm, fields.expires_at, fields.spend_limit), (None, None, None, None));
        assert_eq!(form("", " 60 ").parse(None).unwrap().rpm, Some(60));
        assert!(form("", "sixty").parse(None).is_err());
    }

    #[test]
    fn the_expiry_day_is_inclusive_and_kept_when_unchanged() {
        let fields = form("2999-01-01", "").parse(None).unwrap();
        assert_eq!(fields.expires_at, parse_utc_day("2999-01-02"));
        assert_eq!(last_day(fields.expires_at.unwrap()), "2999-01-01");
        assert!(form("2000-01-01", "").parse(None).is_err(), "a day already over");
        assert!(form("01/02/2999", "").parse(None).is_err());
        let exact = parse_utc_day("2999-01-01").unwrap() + 3_600_000;
        assert_eq!(form("2999-01-01", "").parse(Some(exact)).unwrap().expires_at, Some(exact));
        let past = 1_000;
        assert_eq!(
            form(&last_day(past), "").parse(Some(past)).unwrap().expires_at,
            Some(past),
            "unchanged, even if over"
        );
        assert_eq!(form("", "").parse(Some(exact)).unwrap().expires_at, None, "blank removes it");
    }
}

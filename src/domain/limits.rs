//! What a plan limits, on a user (their own values) or a group (the default each member gets):
//! a budget per period and rate limits; and a group's rate limits per model, for each member. A
//! user's own value, where set, replaces the group's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::budget::Budget;

/// Requests per minute, requests per UTC day, tokens per minute, and requests in flight at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpd: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

impl RateLimits {
    /// Each limit set here, else the one of `default`.
    pub fn or(self, default: Self) -> Self {
        Self {
            rpm: self.rpm.or(default.rpm),
            rpd: self.rpd.or(default.rpd),
            tpm: self.tpm.or(default.tpm),
            concurrency: self.concurrency.or(default.concurrency),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A budget per period and rate limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub budget: Option<Budget>,
    pub rates: RateLimits,
}

impl Limits {
    /// Each limit set here, else the one of `default` (a user's own over their group's).
    pub fn or(self, default: &Self) -> Self {
        Self { budget: self.budget.or(default.budget), rates: self.rates.or(default.rates) }
    }
}

/// A group's rate limits per model, for each member: `{"gpt-4o": {"rpm": 10, "tpm": 20000}}`.
pub type ModelLimits = BTreeMap<String, RateLimits>;

/// The most models one group may limit.
pub const MAX_MODEL_LIMITS: usize = 200;

/// Checks per-model limits as an operator sent them: model names, positive counts, not all empty.
pub fn check_model_limits(models: &ModelLimits) -> Result<(), String> {
    if models.len() > MAX_MODEL_LIMITS {
        return Err(format!("models: at most {MAX_MODEL_LIMITS}"));
    }
    for (model, limits) in models {
        if model.trim().is_empty()
            || model.trim() != model
            || model.chars().count() > 200
            || model.chars().any(char::is_control)
        {
            return Err(format!("models: {model:?} is not a model name"));
        }
        if limits.is_empty() {
            return Err(format!("models.{model}: set at least one of rpm, rpd, tpm, concurrency"));
        }
        for (name, value) in
            [("rpm", limits.rpm), ("rpd", limits.rpd), ("tpm", limits.tpm), ("concurrency", limits.concurrency)]
        {
            if value == Some(0) {
                return Err(format!("models.{model}.{name}: must be positive"));
            }
        }
    }
    Ok(())
}

/// Per-model limits as lines an operator edits: `gpt-4o = rpm 10, tpm 20000`, one per model.
pub fn model_lines(models: &ModelLimits) -> String {
    models
        .iter()
        .map(|(model, l)| {
            let parts: Vec<String> = [("rpm", l.rpm), ("rpd", l.rpd), ("tpm", l.tpm), ("concurrency", l.concurrency)]
                .into_iter()
                .filter_map(|(name, value)| value.map(|v| format!("{name} {v}")))
                .collect();
            format!("{model} = {}", parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads [`model_lines`] back (blank lines skipped); why a line is not one.
pub fn parse_model_lines(text: &str) -> Result<ModelLimits, String> {
    let mut models = ModelLimits::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (model, rest) = line.split_once('=').ok_or_else(|| format!("{line:?}: write model = rpm 10, tpm 20000"))?;
        let model = model.trim().to_string();
        let mut limits = RateLimits::default();
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("{model}: {part:?} is not like \"rpm 10\""))?;
            let value: u32 = value.trim().parse().map_err(|_| format!("{model}: {part:?} needs a whole number"))?;
            let slot = match name {
                "rpm" => &mut limits.rpm,
                "rpd" => &mut limits.rpd,
                "tpm" => &mut limits.tpm,
                "concurrency" => &mut limits.concurrency,
                _ => return Err(format!("{model}: {name:?} is not rpm, rpd, tpm or concurrency")),
            };
            *slot = Some(value);
        }
        if models.insert(model.clone(), limits).is_some() {
            return Err(format!("{model}: listed twice"));
        }
    }
    check_model_limits(&models)?;
    Ok(models)
}

/// A stored count of a limit (a positive whole number; anything else reads as the tightest value
/// that is still a limit, never as none).
pub fn stored_count(n: Option<i64>) -> Option<u32> {
    n.map(|n| u32::try_from(n.max(1)).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::budget::Period;

    #[test]
    fn a_users_own_values_replace_the_groups_one_by_one() {
        let group = Limits {
            budget: Some(Budget { amount: 20, period: Period::Month, anchor: 0 }),
            rates: RateLimits { rpm: Some(60), rpd: Some(1000), tpm: None, concurrency: Some(4) },
        };
        let own = Limits { budget: None, rates: RateLimits { rpm: Some(10), ..RateLimits::default() } };
        let effective = own.or(&group);
        assert_eq!(effective.budget, group.budget);
        assert_eq!(effective.rates, RateLimits { rpm: Some(10), rpd: Some(1000), tpm: None, concurrency: Some(4) });
        assert_eq!(Limits::default().or(&Limits::default()), Limits::default());
        assert_eq!(stored_count(Some(0)), Some(1));
        assert_eq!(stored_count(Some(i64::MAX)), Some(u32::MAX));
    }

    #[test]
    fn model_lines_read_back_as_written_and_bad_ones_say_why() {
        let text = "gpt-4o = rpm 10, tpm 20000\n\nclaude = concurrency 2";
        let models = parse_model_lines(text).unwrap();
        assert_eq!(models["gpt-4o"], RateLimits { rpm: Some(10), tpm: Some(20000), ..RateLimits::default() });
        assert_eq!(model_lines(&models), "claude = concurrency 2\ngpt-4o = rpm 10, tpm 20000");
        assert_eq!(parse_model_lines(&model_lines(&models)).unwrap(), models);
        for (bad, says) in [
            ("gpt-4o rpm 10", "write model = rpm 10"),
            ("gpt-4o = rpm ten", "needs a whole number"),
            ("gpt-4o = rph 10", "is not rpm, rpd, tpm or concurrency"),
            ("gpt-4o = rpm 0", "must be positive"),
            ("gpt-4o =", "set at least one"),
            ("a = rpm 1\na = rpm 2", "listed twice"),
        ] {
            let why = parse_model_lines(bad).unwrap_err();
            assert!(why.contains(says), "{bad}: {why}");
        }
        let json: ModelLimits = serde_json::from_str(r#"{"m": {"rpm": 5}}"#).unwrap();
        assert_eq!(serde_json::to_string(&json).unwrap(), r#"{"m":{"rpm":5}}"#);
        assert!(serde_json::from_str::<ModelLimits>(r#"{"m": {"rpx": 5}}"#).is_err());
    }
}

//! The budget and rate-limit fields of the group form and the user page: as typed (a refused form
//! comes back as sent), parsed into a `services::limits` patch where the real checks happen.
//! Every field is sent, so a blank removes that limit (for a user: the group's applies again).

use serde::Deserialize;

use crate::console::keys::form::BUDGET_PERIODS;
use crate::services::limits::{LimitsPatch, LimitsView};

#[derive(Clone, Debug, Default, Deserialize)]
pub struct LimitsForm {
    #[serde(default)]
    pub budget: String,
    #[serde(default)]
    pub budget_period: String,
    #[serde(default)]
    pub rpm: String,
    #[serde(default)]
    pub rpd: String,
    #[serde(default)]
    pub tpm: String,
    #[serde(default)]
    pub concurrency: String,
}

fn blank_is_none(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

impl LimitsForm {
    /// The fields filled in with limits as set.
    pub fn of(view: &LimitsView) -> Self {
        let text = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        Self {
            budget: view.budget.clone().unwrap_or_default(),
            budget_period: view.budget_period.clone().unwrap_or_else(|| "month".into()),
            rpm: text(view.rpm),
            rpd: text(view.rpd),
            tpm: text(view.tpm),
            concurrency: text(view.concurrency),
        }
    }

    pub fn budget_periods(&self) -> &'static [(&'static str, &'static str)] {
        BUDGET_PERIODS
    }

    pub fn budget_period_is(&self, value: &str) -> bool {
        self.budget_period == value
    }

    /// The patch the form sends: every field (a blank removes it).
    pub fn to_patch(&self) -> Result<LimitsPatch, String> {
        let whole = |value: &str, what: &str| match blank_is_none(value) {
            None => Ok(None),
            Some(n) => n.parse::<i64>().map(Some).map_err(|_| format!("{what}: a whole number, or blank.")),
        };
        let budget = blank_is_none(&self.budget);
        Ok(LimitsPatch {
            budget_period: budget.as_ref().and(blank_is_none(&self.budget_period)),
            budget: Some(budget),
            rpm: Some(whole(&self.rpm, "Requests per minute")?),
            rpd: Some(whole(&self.rpd, "Requests per day")?),
            tpm: Some(whole(&self.tpm, "Tokens per minute")?),
            concurrency: Some(whole(&self.concurrency, "Requests at once")?),
            // A group's per-model limits have their own field (the groups page).
            models: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_remove_and_numbers_must_be_whole() {
        let form = LimitsForm {
            budget: " 20 ".into(),
            budget_period: "week".into(),
            rpm: "60".into(),
            ..LimitsForm::default()
        };
        let patch = form.to_patch().unwrap();
        assert_eq!(patch.budget, Some(Some("20".into())));
        assert_eq!((patch.budget_period.as_deref(), patch.rpm, patch.tpm), (Some("week"), Some(Some(60)), Some(None)));
        let blank = LimitsForm { budget_period: "week".into(), ..LimitsForm::default() }.to_patch().unwrap();
        assert_eq!((blank.budget, blank.budget_period), (Some(None), None), "no budget, so no period either");
        let bad = LimitsForm { rpd: "lots".into(), ..LimitsForm::default() }.to_patch().unwrap_err();
        assert!(bad.starts_with("Requests per day"), "{bad}");
    }
}

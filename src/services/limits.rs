//! Budgets and rate limits on users and groups, as operators set them: a group's are the defaults
//! each member gets, a user's own replace them field by field. The fields and their checks are a
//! key's (`budget` + `budget_period`, `rpm`, `rpd`, `tpm`, `concurrency`); a patch keeps what it
//! does not name and removes what it sends as `null`. The gateway reads users' own values with
//! their keys (the key cache) and groups' in the routing snapshot, so no request reads them.

use serde::{Deserialize, Serialize};
use time::UtcOffset;

use super::keys::{patched_rate, present, valid_amount, valid_key_budget};
use crate::db::limits::{self, Owner, StoredLimits};
use crate::domain::budget::Budget;
use crate::domain::limits::{ModelLimits, check_model_limits};
use crate::domain::money::Money;
use crate::state::AppState;

/// The fields of a change; absent ones stay.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    /// An amount per `budget_period` (a decimal); `null` removes the budget.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub budget: Option<Option<String>>,
    /// `day`, `week`, `month`, `24h`, `7d` or `30d`; a new period starts the budget's count again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_period: Option<String>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub rpm: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub rpd: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub tpm: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Option<i64>>,
    /// Groups only: rate limits per model for each member, `{"gpt-4o": {"rpm": 10}}`; replaces
    /// the whole set (`null` or `{}` removes them).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub models: Option<Option<ModelLimits>>,
}

impl LimitsPatch {
    pub fn is_empty(&self) -> bool {
        self.budget.is_none()
            && self.budget_period.is_none()
            && self.rpm.is_none()
            && self.rpd.is_none()
            && self.tpm.is_none()
            && self.concurrency.is_none()
            && self.models.is_none()
    }

    /// A group's per-model limits once patched (`None`: none), checked.
    fn patched_models(&self, current: Option<ModelLimits>) -> Result<Option<ModelLimits>, String> {
        let models = match &self.models {
            Some(models) => models.clone().filter(|m| !m.is_empty()),
            None => return Ok(current),
        };
        models.as_ref().map(check_model_limits).transpose()?;
        Ok(models)
    }

    /// The limits once patched, and whether the budget's count starts again (a new period).
    pub fn apply(&self, current: &StoredLimits) -> Result<(StoredLimits, bool), String> {
        let text = |e: crate::services::users::UserError| e.to_string();
        let amount = match &self.budget {
            Some(budget) => budget.as_deref().map(valid_amount("budget")).transpose().map_err(text)?,
            None => current.budget,
        };
        let (budget, budget_period, budget_anchor) =
            valid_key_budget(amount, self.budget_period.as_deref(), current.budget()).map_err(text)?;
        let patched = StoredLimits {
            budget,
            budget_period,
            budget_anchor,
            rpm: patched_rate(self.rpm, current.rpm, "rpm").map_err(text)?,
            rpd: patched_rate(self.rpd, current.rpd, "rpd").map_err(text)?,
            tpm: patched_rate(self.tpm, current.tpm, "tpm").map_err(text)?,
            concurrency: patched_rate(self.concurrency, current.concurrency, "concurrency").map_err(text)?,
        };
        // A new period starts the count again. A budget set where there was none keeps it: the
        // count is of the user's spending this period, whichever budget applied (a rolling
        // budget's new anchor starts a new window anyway).
        let restart =
            current.budget.is_some() && patched.budget.is_some() && patched.budget_period != current.budget_period;
        Ok((patched, restart))
    }
}

/// Limits as the API shows them (`null`: not set here).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LimitsView {
    pub budget: Option<String>,
    pub budget_period: Option<String>,
    pub rpm: Option<i64>,
    pub rpd: Option<i64>,
    pub tpm: Option<i64>,
    pub concurrency: Option<i64>,
    /// A group's per-model limits for each member (absent on users and without any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<ModelLimits>,
}

impl From<&StoredLimits> for LimitsView {
    fn from(l: &StoredLimits) -> Self {
        Self {
            models: None,
            budget: l.budget.map(|b| Money(b).to_string()),
            budget_period: l.budget.and(l.budget_period.clone()),
            rpm: l.rpm,
            rpd: l.rpd,
            tpm: l.tpm,
            concurrency: l.concurrency,
        }
    }
}

impl LimitsView {
    /// Each value set here, else `default`'s (a user's own over their group's).
    pub fn or(self, default: &Self) -> Self {
        let (budget, budget_period) = match self.budget {
            Some(b) => (Some(b), self.budget_period),
            None => (default.budget.clone(), default.budget_period.clone()),
        };
        Self {
            budget,
            budget_period,
            models: None,
            rpm: self.rpm.or(default.rpm),
            rpd: self.rpd.or(default.rpd),
            tpm: self.tpm.or(default.tpm),
            concurrency: self.concurrency.or(default.concurrency),
        }
    }
}

/// A user's limits: their own, what applies (own over the group's), and where their budget stands.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UserLimits {
    /// Set on the user (`null`: the group's applies).
    pub own: LimitsView,
    /// What applies now.
    pub effective: LimitsView,
    /// Spent of the budget that applies, this period (`"0.00"` without one).
    pub budget_spent: String,
    /// When the period ends and the budget starts again (unix ms; `null` without a budget).
    pub budget_resets_at: Option<i64>,
}

/// A user's limits in the group `group`, the budget's count read at `now` in `zone`.
pub async fn for_user(
    state: &AppState,
    user_id: i64,
    group: &str,
    now: i64,
    zone: UtcOffset,
) -> Result<UserLimits, sqlx::Error> {
    let pool = state.db().pool();
    let own = limits::get(pool, Owner::User(user_id)).await?.unwrap_or_default();
    let defaults = limits::get(pool, Owner::Group(group)).await?.unwrap_or_default();
    let budget = budget_standing(state, user_id, own.budget().or(defaults.budget()), now, zone).await?;
    let view = LimitsView::from(&own);
    Ok(UserLimits {
        effective: view.clone().or(&LimitsView::from(&defaults)),
        own: view,
        budget_spent: Money(budget.map_or(0, |b| b.spent)).to_string(),
        budget_resets_at: budget.map(|b| b.resets_at),
    })
}

/// Where the budget that applies to a user stands this period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetStanding {
    pub budget: Budget,
    pub spent: i64,
    /// Unix ms.
    pub resets_at: i64,
}

impl BudgetStanding {
    pub fn left(&self) -> i64 {
        self.budget.amount.saturating_sub(self.spent).max(0)
    }
}

/// The user's budget that applies (their own, else their group's) and what they spent of it in the
/// period containing `now`.
pub async fn user_budget(
    state: &AppState,
    user_id: i64,
    group: &str,
    now: i64,
    zone: UtcOffset,
) -> Result<Option<BudgetStanding>, sqlx::Error> {
    let pool = state.db().pool();
    let own = limits::get(pool, Owner::User(user_id)).await?.unwrap_or_default();
    let budget = match own.budget() {
        Some(budget) => Some(budget),
        None => limits::get(pool, Owner::Group(group)).await?.and_then(|g| g.budget()),
    };
    budget_standing(state, user_id, budget, now, zone).await
}

async fn budget_standing(
    state: &AppState,
    user_id: i64,
    budget: Option<Budget>,
    now: i64,
    zone: UtcOffset,
) -> Result<Option<BudgetStanding>, sqlx::Error> {
    let Some(budget) = budget else { return Ok(None) };
    let (window, counted) = limits::user_budget_count(state.db().pool(), user_id).await?.unwrap_or((0, 0));
    let spent = budget.spent_now(now, zone, window, counted);
    Ok(Some(BudgetStanding { budget, spent, resets_at: budget.window(now, zone).1 }))
}

/// Patches an owner's limits, in the caller's transaction (the count starts again with a new
/// period): before and after, or why the patch is refused; `Ok(None)`: no such user or
/// group. The caller publishes the change and audits it.
pub async fn patch(
    conn: &mut sqlx::AnyConnection,
    owner: Owner<'_>,
    patch: &LimitsPatch,
) -> Result<Option<Result<(StoredLimits, StoredLimits), String>>, sqlx::Error> {
    let Some(current) = limits::get(&mut *conn, owner).await? else { return Ok(None) };
    let (patched, restart) = match patch.apply(&current) {
        Ok(done) => done,
        Err(why) => return Ok(Some(Err(why))),
    };
    match owner {
        Owner::User(_) if patch.models.is_some() => {
            return Ok(Some(Err("models: per-model limits are set on groups".into())));
        }
        Owner::User(_) => {}
        Owner::Group(name) => {
            let current = limits::model_limits(&mut *conn, name).await?;
            match patch.patched_models(current) {
                Ok(models) => limits::set_model_limits(&mut *conn, name, models.as_ref()).await?,
                Err(why) => return Ok(Some(Err(why))),
            }
        }
    }
    limits::set(conn, owner, &patched, restart).await?;
    Ok(Some(Ok((current, patched))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(json: serde_json::Value) -> LimitsPatch {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_patch_keeps_what_it_does_not_name_and_removes_nulls() {
        let current = StoredLimits { rpm: Some(60), ..StoredLimits::default() };
        let (set, restart) =
            patch(serde_json::json!({ "budget": "20", "budget_period": "month" })).apply(&current).unwrap();
        assert_eq!(
            (set.budget, set.budget_period.as_deref(), set.rpm),
            (Some(20_000_000_000), Some("month"), Some(60))
        );
        assert!(!restart, "the period's spending so far still counts");
        let (raised, restart) = patch(serde_json::json!({ "budget": "30", "rpm": null })).apply(&set).unwrap();
        assert_eq!((raised.budget, raised.budget_anchor, raised.rpm), (Some(30_000_000_000), set.budget_anchor, None));
        assert!(!restart, "a new amount keeps the count");
        let (weekly, restart) = patch(serde_json::json!({ "budget_period": "week" })).apply(&raised).unwrap();
        assert!(restart && weekly.budget_anchor >= raised.budget_anchor, "a new period counts from zero");
        let (removed, _) = patch(serde_json::json!({ "budget": null })).apply(&raised).unwrap();
        assert_eq!((removed.budget, removed.budget_period), (None, None));
        for (bad, says) in [
            (serde_json::json!({ "budget": "5" }), "budget_period: required"),
            (serde_json::json!({ "budget": "-5", "budget_period": "day" }), "must not be negative"),
            (serde_json::json!({ "rpm": 0 }), "rpm: must be positive"),
            (serde_json::json!({ "budget_period": "day" }), "budget: required"),
        ] {
            let why = patch(bad.clone()).apply(&StoredLimits::default()).unwrap_err();
            assert!(why.contains(says), "{bad}: {why}");
        }
        assert!(serde_json::from_value::<LimitsPatch>(serde_json::json!({ "rpx": 1 })).is_err());
        let models = patch(serde_json::json!({ "models": { "m": { "rpm": 0 } } }));
        assert!(models.patched_models(None).unwrap_err().contains("models.m.rpm: must be positive"));
        let models = patch(serde_json::json!({ "models": { "m": { "tpm": 100 } } })).patched_models(None).unwrap();
        assert_eq!(models.unwrap()["m"].tpm, Some(100));
        let kept = patch(serde_json::json!({})).patched_models(Some(ModelLimits::new())).unwrap();
        assert_eq!(kept, Some(ModelLimits::new()), "absent: as they were");
        assert_eq!(patch(serde_json::json!({ "models": {} })).patched_models(None).unwrap(), None, "{{}} removes them");
    }

    #[test]
    fn a_users_own_values_show_over_the_groups() {
        let group = LimitsView {
            budget: Some("20.00".into()),
            budget_period: Some("month".into()),
            rpm: Some(60),
            ..LimitsView::default()
        };
        let own = LimitsView { rpm: Some(10), ..LimitsView::default() };
        let effective = own.or(&group);
        assert_eq!((effective.budget.as_deref(), effective.rpm), (Some("20.00"), Some(10)));
    }
}

//! What the holder of a key may read about its own money with the key alone: what the key has
//! spent, its limit, and what it may still spend (the user's balance, within the key's limit).
//! The gateway answers One API's billing reads and `GET /api/v1/key` from it.

use super::{KeyScope, get_key};
use crate::db::users;
use crate::domain::time::now_ms;
use crate::services::limits::{self, BudgetStanding};
use crate::services::users::UserError;
use crate::state::AppState;

/// A key's money, in billing units.
#[derive(Clone, Debug)]
pub struct Standing {
    pub name: String,
    pub spent: i64,
    pub spend_limit: Option<i64>,
    /// Unix ms.
    pub expires_at: Option<i64>,
    pub rpm: Option<i64>,
    /// The key's budget per period, what it has spent of it this period, the period, and when
    /// the period ends (unix ms).
    pub budget: Option<i64>,
    pub budget_spent: i64,
    pub budget_period: Option<String>,
    pub budget_resets_at: Option<i64>,
    /// The budget that applies to the key's user (their own, else their group's), this period.
    pub account_budget: Option<BudgetStanding>,
    /// The user's balance.
    pub balance: i64,
    /// What the user owes (while above zero, nothing may be spent).
    pub debt: i64,
}

impl Standing {
    /// The user's balance as far as it may be spent: none while the user owes a debt.
    pub fn spendable_balance(&self) -> i64 {
        if self.debt > 0 { 0 } else { self.balance.max(0) }
    }

    /// What the key may still spend: the user's balance (none while in debt), within what is
    /// left of the key's limit, of its budget and of its user's budget this period, when it has
    /// them.
    pub fn remaining(&self) -> i64 {
        let mut remaining = self.spendable_balance();
        if let Some(limit) = self.spend_limit {
            remaining = remaining.min(limit.saturating_sub(self.spent).max(0));
        }
        if self.budget.is_some() {
            remaining = remaining.min(self.budget_left());
        }
        if let Some(account) = &self.account_budget {
            remaining = remaining.min(account.left());
        }
        remaining
    }

    /// What is left of the budget this period (0 without one).
    pub fn budget_left(&self) -> i64 {
        self.budget.map_or(0, |b| b.saturating_sub(self.budget_spent).max(0))
    }
}

/// The standing of the user's key `key_id` (two reads: the key and the user).
pub async fn standing(state: &AppState, user_id: i64, key_id: i64) -> Result<Standing, UserError> {
    let key = get_key(state, KeyScope::Owner(user_id), key_id).await?;
    let user = users::summary(state.db().pool(), user_id).await?.ok_or(UserError::NotFound)?;
    let account_budget =
        limits::user_budget(state, user_id, &user.group, now_ms(), state.site().gateway.budget_zone).await?;
    Ok(Standing {
        account_budget,
        name: key.name,
        spent: key.spent,
        spend_limit: key.spend_limit,
        expires_at: key.expires_at,
        rpm: key.rpm,
        budget: key.budget,
        budget_spent: key.budget_spent,
        budget_period: key.budget_period,
        budget_resets_at: key.budget_resets_at,
        balance: user.balance,
        debt: user.debt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(spent: i64, limit: Option<i64>, balance: i64, debt: i64) -> Standing {
        Standing {
            name: "k".into(),
            spent,
            spend_limit: limit,
            expires_at: None,
            rpm: None,
            budget: None,
            budget_spent: 0,
            budget_period: None,
            budget_resets_at: None,
            account_budget: None,
            balance,
            debt,
        }
    }

    #[test]
    fn remaining_is_the_balance_within_the_keys_limit() {
        assert_eq!(standing(0, None, 500, 0).remaining(), 500);
        assert_eq!(standing(300, Some(400), 500, 0).remaining(), 100, "the key's limit binds");
        assert_eq!(standing(100, Some(1_000), 500, 0).remaining(), 500, "the balance binds");
        assert_eq!(standing(400, Some(400), 500, 0).remaining(), 0);
        assert_eq!(standing(0, None, 500, 7).remaining(), 0, "nothing while in debt");
    }
}

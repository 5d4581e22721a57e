//! The budget's soft threshold: once a key has spent `notify.budget_warning_percent` of its
//! budget in a period, its owner gets one email for that period; so does a user who has spent
//! that much of their own budget (or their group's). Checked by the maintenance loop, never on
//! the request path; claimed in one statement, so replicas never both send it.

use crate::db::budget_leases::{self, Account};
use crate::db::limits::{self, Owner};
use crate::db::{api_keys, users};
use crate::domain::budget::Budget;
use crate::domain::money::Money;
use crate::domain::time::now_ms;
use crate::i18n::Lang;
use crate::mail::ActionMail;
use crate::state::AppState;

/// One pass: claims the keys past the threshold in a period not yet warned about and emails their
/// owners. Answers how many were emailed. Without SMTP (or at 0 %) nothing is claimed, so the
/// owners are told once mail works.
pub async fn warn_budgets(state: &AppState) -> Result<usize, sqlx::Error> {
    let site = state.site();
    let percent = i64::from(site.budget_warning_percent);
    if percent == 0 || !state.mailer().is_configured() {
        return Ok(0);
    }
    let (now, zone) = (now_ms(), site.gateway.budget_zone);
    let mut link = state.public_url();
    link.set_path("/console/keys");
    let mut sent = warn_users(state, percent, now, zone).await?;
    for key in api_keys::claim_budget_warnings(state.db().writer(), percent).await? {
        let Some(budget) = Budget::from_stored(Some(key.budget), key.budget_period.as_deref(), key.budget_anchor)
        else {
            continue;
        };
        // A period that has already ended needs no warning.
        let (starts, ends) = budget.window(now, zone);
        if key.budget_window < starts {
            continue;
        }
        let Some(owner) = users::summary(state.db().pool(), key.user_id).await? else { continue };
        if owner.status != "active" {
            continue;
        }
        let name = if key.name.is_empty() { format!("#{}", key.key_id) } else { key.name.clone() };
        // What was charged: the count less what gateway processes reserved on it ahead.
        let leased = budget_leases::leased(state.db().pool(), Account::Key(key.key_id), key.budget_window).await?;
        let spent = key.budget_spent.saturating_sub(leased).max(0);
        let mail = ActionMail {
            lang: Lang::En,
            site_name: site.site_name.clone(),
            subject: "Your API key's budget is nearly spent",
            intro: "One of your API keys has spent most of its budget for this period. When it is spent, the key's requests are refused until the period starts again.",
            action: "See your keys",
            link: link.to_string(),
            footnote: "You receive this once per period for each key with a budget.",
            details: vec![
                ("Key", name),
                ("Spent", format!("{} of {}", Money(spent), Money(key.budget))),
                ("Starts again", crate::domain::budget::rfc3339(ends, zone)),
            ],
        };
        state.send_mail_later(owner.email, mail);
        sent += 1;
    }
    Ok(sent)
}

/// The users past the threshold of the budget that applies to them: one email each per period.
async fn warn_users(state: &AppState, percent: i64, now: i64, zone: time::UtcOffset) -> Result<usize, sqlx::Error> {
    let site = state.site();
    let mut link = state.public_url();
    link.set_path("/console");
    let mut sent = 0;
    for crossing in limits::claim_budget_warnings(state.db().writer(), percent).await? {
        let Some(owner) = users::summary(state.db().pool(), crossing.user_id).await? else { continue };
        let leased = budget_leases::leased(state.db().pool(), Account::User(owner.id), crossing.window).await?;
        let spent = crossing.spent.saturating_sub(leased).max(0);
        let own = limits::get(state.db().pool(), Owner::User(owner.id)).await?.unwrap_or_default();
        let group = limits::get(state.db().pool(), Owner::Group(&owner.group)).await?.unwrap_or_default();
        let Some(budget) = own.budget().or(group.budget()) else { continue };
        // A period that has already ended needs no warning.
        let (starts, ends) = budget.window(now, zone);
        if crossing.window < starts {
            continue;
        }
        let mail = ActionMail {
            lang: Lang::En,
            site_name: site.site_name.clone(),
            subject: "Your account's budget is nearly spent",
            intro: "Your account has spent most of its budget for this period. When it is spent, your requests are refused until the period starts again.",
            action: "See your usage",
            link: link.to_string(),
            footnote: "You receive this once per period.",
            details: vec![
                ("Spent", format!("{} of {}", Money(spent), Money(budget.amount))),
                ("Period", budget.period.adjective().to_string()),
                ("Starts again", crate::domain::budget::rfc3339(ends, zone)),
            ],
        };
        state.send_mail_later(owner.email, mail);
        sent += 1;
    }
    Ok(sent)
}

//! The low-balance email: once each time a user's balance falls below the operator's threshold
//! (`notify.low_balance`), checked by the maintenance loop, never on the request path. A user is
//! told again only after their balance has been back at or above the threshold.

use crate::db::low_balance;
use crate::domain::time::now_ms;
use crate::i18n::Lang;
use crate::mail::ActionMail;
use crate::state::AppState;

/// One pass: re-arm users back above the threshold, then email those newly below it. Answers
/// how many were emailed. Without SMTP nobody is marked, so they are told once mail works.
pub async fn notify(state: &AppState) -> Result<usize, sqlx::Error> {
    let threshold = state.site().low_balance;
    low_balance::rearm(state.db().writer(), threshold).await?;
    if threshold <= 0 || !state.mailer().is_configured() {
        return Ok(0);
    }
    let users = low_balance::claim(state.db().writer(), threshold, now_ms()).await?;
    let mut link = state.public_url();
    link.set_path("/console/billing");
    let site_name = state.site().site_name.clone();
    for (_, email) in &users {
        let mail = ActionMail {
            lang: Lang::En,
            site_name: site_name.clone(),
            subject: "Your balance is low",
            intro: "Your balance has fallen below the site's low-balance threshold. Top up to keep your API keys working.",
            action: "Top up",
            link: link.to_string(),
            footnote: "You receive this once each time your balance falls below the threshold.",
            details: Vec::new(),
        };
        state.send_mail_later(email.clone(), mail);
    }
    Ok(users.len())
}

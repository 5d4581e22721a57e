//! The operator's view of payments, shared by `/admin/payments` and `/api/admin/payments*`:
//! every user's payments filtered by email and status, and marking a pending one failed (with an
//! audit row). Crediting and refunding stay with the webhook (`services::payments`).

use serde::Deserialize;
use serde_json::json;

use crate::db::payments::{self, Filter, Payment};
use crate::services::audit::{self, Actor};
use crate::services::logs;
use crate::state::AppState;

/// Every status a payment can have, in the order the filter offers them.
pub const STATUSES: &[&str] = &["pending", "paid", "failed", "expired", "refunded", "partially_refunded"];

/// A listing as the console's query string and the API take it (blanks mean "any").
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PaymentQuery {
    /// A part of the payer's email.
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub status: String,
    /// Only payments older than this id (the next page).
    #[serde(default)]
    pub before: Option<i64>,
    #[serde(default)]
    pub limit: Option<i64>,
}

impl PaymentQuery {
    /// The database filter; an unknown status is refused with a message naming the known ones.
    pub fn filter(&self) -> Result<Filter, String> {
        let email = Some(self.email.trim().to_lowercase()).filter(|e| !e.is_empty());
        let status = match self.status.trim() {
            "" => None,
            s if STATUSES.contains(&s) => Some(s.to_string()),
            _ => return Err(format!("status: one of {}.", STATUSES.join(", "))),
        };
        Ok(Filter { user_id: None, email, status, before: self.before })
    }

    pub fn page_size(&self) -> Result<i64, String> {
        logs::page_size(self.limit)
    }

    /// The filter as a query string, for "older" links.
    pub fn query_string(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("email", self.email.trim())
            .append_pair("status", self.status.trim())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentAdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such payment")]
    NotFound,
    /// The payment is no longer pending (the webhook or another operator got there first).
    #[error("only a pending payment can be marked failed; this one is {0}")]
    NotPending(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Payments matching `query`, newest first, at most `limit`.
pub async fn list(state: &AppState, query: &PaymentQuery, limit: i64) -> Result<Vec<Payment>, PaymentAdminError> {
    let filter = query.filter().map_err(PaymentAdminError::Invalid)?;
    Ok(payments::list(state.db().pool(), &filter, limit).await?)
}

/// Gives up on a pending payment (its buyer never finished, or Stripe lost it): it becomes
/// `failed`, and a webhook arriving later for it credits nothing. The payment as it is now.
pub async fn mark_failed(state: &AppState, actor: &Actor, id: i64) -> Result<Payment, PaymentAdminError> {
    let before = payments::get(state.db().pool(), id).await?.ok_or(PaymentAdminError::NotFound)?;
    if before.status != "pending" {
        return Err(PaymentAdminError::NotPending(before.status));
    }
    // Conditional on `pending`: of a click and a webhook racing, exactly one moves the payment.
    if !crate::services::payments::mark_failed(state, id).await? {
        let now = payments::get(state.db().pool(), id).await?.ok_or(PaymentAdminError::NotFound)?;
        return Err(PaymentAdminError::NotPending(now.status));
    }
    let after = payments::get(state.db().pool(), id).await?.ok_or(PaymentAdminError::NotFound)?;
    let details = json!({
        "user_id": after.user_id,
        "before": { "status": before.status },
        "after": { "status": after.status },
    });
    audit::record(state, actor, "payment.fail", ("payment", &id.to_string()), details).await;
    Ok(after)
}

//! Balance and usage readable with the key alone, for programs and chat apps that hold only an
//! `sk-` key: One API's OpenAI-style billing reads (`GET /v1/dashboard/billing/subscription` and
//! `GET /v1/dashboard/billing/usage`, what NextChat, Cherry Studio and balance checkers query)
//! and OpenRouter's `GET /api/v1/key`. Amounts are JSON numbers there (those clients parse
//! numbers), converted from billing units only for display.
//!
//! The two billing reads describe the key: `total_usage` is what it has spent (in cents, as
//! OpenAI's was), and `hard_limit_usd` is that plus what it may still spend, so the clients'
//! `hard_limit_usd - total_usage / 100` is exactly what remains. Like One API, the usage read
//! ignores `start_date`/`end_date`: honouring them would break that subtraction.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::auth::ApiKeyAuth;
use super::error::GatewayError;
use crate::domain::money::NANOS_PER_UNIT;
use crate::services::keys::standing::{Standing, standing};
use crate::services::users::UserError;
use crate::state::AppState;

/// Billing units as dollars, for display only.
fn dollars(units: i64) -> f64 {
    units as f64 / NANOS_PER_UNIT as f64
}

async fn of(state: &AppState, auth: &ApiKeyAuth) -> Result<Standing, GatewayError> {
    standing(state, auth.grant.user_id, auth.grant.key_id).await.map_err(|e| match e {
        // Deleted since the key cache last saw it.
        UserError::NotFound => GatewayError::InvalidApiKey,
        e => {
            tracing::error!(error = %e, "reading a key's standing failed");
            GatewayError::Internal
        }
    })
}

/// `GET /v1/dashboard/billing/subscription`.
pub async fn subscription(State(state): State<AppState>, auth: ApiKeyAuth) -> Result<Json<Value>, GatewayError> {
    let key = of(&state, &auth).await?;
    let limit = dollars(key.spent.saturating_add(key.remaining()));
    Ok(Json(json!({
        "object": "billing_subscription",
        "has_payment_method": true,
        "soft_limit_usd": limit,
        "hard_limit_usd": limit,
        "system_hard_limit_usd": limit,
        "access_until": key.expires_at.map_or(0, |ms| ms / 1000),
    })))
}

/// `GET /v1/dashboard/billing/usage`: what the key has spent, in cents.
pub async fn usage(State(state): State<AppState>, auth: ApiKeyAuth) -> Result<Json<Value>, GatewayError> {
    let key = of(&state, &auth).await?;
    Ok(Json(json!({ "object": "list", "total_usage": dollars(key.spent) * 100.0 })))
}

/// `GET /api/v1/key`: OpenRouter's shape (`data.label`, `limit`, `usage`, `limit_remaining`,
/// `rate_limit`), plus the user's `balance`, the key's `expires_at` (unix seconds), its `budget`
/// this period (`limit`, `period`, `usage`, `remaining`, `resets_at` in unix seconds), and the
/// same for the account's budget (`account_budget`: the user's own, else their group's).
pub async fn key(State(state): State<AppState>, auth: ApiKeyAuth) -> Result<Json<Value>, GatewayError> {
    let key = of(&state, &auth).await?;
    let rate_limit = match key.rpm {
        Some(requests) => json!({ "requests": requests, "interval": "1m" }),
        None => Value::Null,
    };
    let budget = match key.budget {
        Some(limit) => json!({
            "limit": dollars(limit),
            "period": key.budget_period,
            "usage": dollars(key.budget_spent),
            "remaining": dollars(key.budget_left()),
            "resets_at": key.budget_resets_at.map(|ms| ms / 1000),
        }),
        None => Value::Null,
    };
    let account_budget = match key.account_budget {
        Some(account) => json!({
            "limit": dollars(account.budget.amount),
            "period": account.budget.period.as_str(),
            "usage": dollars(account.spent),
            "remaining": dollars(account.left()),
            "resets_at": account.resets_at / 1000,
        }),
        None => Value::Null,
    };
    Ok(Json(json!({
        "data": {
            "account_budget": account_budget,
            "label": key.name,
            "usage": dollars(key.spent),
            "limit": key.spend_limit.map(dollars),
            "limit_remaining": dollars(key.remaining()),
            "balance": dollars(key.spendable_balance()),
            "is_free_tier": false,
            "rate_limit": rate_limit,
            "expires_at": key.expires_at.map(|ms| ms / 1000),
            "budget": budget,
        }
    })))
}

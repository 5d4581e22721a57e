//! `/api/admin/payments` (every user's payments, newest first, paged by `before`), marking a
//! pending payment failed, and clearing an account's flag — the same services as
//! `/admin/payments` and `/admin/users/{id}`.
//!
//! `POST /api/stripe/webhook`: Stripe's events about top-ups. The raw body is read up to 64 KiB,
//! its `Stripe-Signature` verified against the webhook secret (everything is refused while none is
//! configured), and only then parsed. Bodies are never logged. Answers: 200 `{"received": true}`
//! for an event acted on, a replay or one that is not ours; 400 with the API's error JSON for
//! anything unverified or inconsistent (Stripe shows it and retries); 503 for an event that came
//! before the one it depends on (a refund of a payment not yet recorded as paid: its id is not
//! claimed, so Stripe's retry applies it once the payment is in); 500 on a database failure
//! (Stripe retries, and the event's unique key keeps the retry from applying twice).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::AdminAuth;
use super::error::{ApiError, PathId};
use super::me::query;
use crate::db::payments::Payment;
use crate::payments::{events, signature};
use crate::routes::Id;
use crate::services::payments::admin::{PaymentAdminError, PaymentQuery};
use crate::services::payments::{EventError, Outcome};
use crate::services::users::AdminUserView;
use crate::services::{payments, users};
use crate::state::AppState;

impl From<PaymentAdminError> for ApiError {
    fn from(e: PaymentAdminError) -> Self {
        match e {
            PaymentAdminError::Invalid(m) => Self::Invalid(m),
            PaymentAdminError::NotFound => Self::NotFound,
            PaymentAdminError::NotPending(_) => Self::Conflict(e.to_string()),
            PaymentAdminError::Db(e) => {
                tracing::error!(error = %e, "an /api/admin/payments query failed");
                Self::Internal
            }
        }
    }
}

/// `GET /api/admin/payments?email=&status=&before=&limit=`.
pub async fn list(State(state): State<AppState>, _: AdminAuth, uri: Uri) -> Result<Json<Value>, ApiError> {
    let q: PaymentQuery = query(&uri)?;
    let limit = q.page_size().map_err(ApiError::Invalid)?;
    let data = payments::admin::list(&state, &q, limit).await?;
    let full = i64::try_from(data.len()).unwrap_or(i64::MAX) == limit;
    let next = full.then(|| data.last().map(|p| p.id)).flatten();
    Ok(Json(json!({ "data": data, "next_before": next })))
}

/// `POST /api/admin/payments/{id}/fail`: 409 when the payment is not pending.
pub async fn fail(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
) -> Result<Json<Payment>, ApiError> {
    Ok(Json(payments::admin::mark_failed(&state, &auth.actor, id).await?))
}

/// `POST /api/admin/users/{id}/clear-flag`: 409 when the account has no flag.
pub async fn clear_flag(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
) -> Result<Json<AdminUserView>, ApiError> {
    Ok(Json(users::admin::clear_flag(&state, &auth.actor, id).await?.into()))
}

/// The largest event accepted; Stripe's are a few KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return refuse("the body is larger than 64 KiB");
    };
    let Some(secret) = state.site().stripe_webhook_secret.clone() else {
        return refuse("no webhook signing secret is configured");
    };
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    let now = crate::domain::time::now_ms() / 1000;
    if let Err(e) = signature::verify(header, &body, secret.expose(), now) {
        tracing::warn!(reason = %e, "refused a Stripe webhook");
        return refuse("the Stripe-Signature does not verify");
    }
    let envelope = match events::parse(&body) {
        Ok(envelope) => envelope,
        Err(message) => {
            tracing::warn!(%message, "refused a signed Stripe webhook");
            return ApiError::Invalid(message).into_response();
        }
    };
    match payments::handle(&state, &envelope).await {
        Ok(outcome) => {
            let outcome = match outcome {
                Outcome::Applied => "applied",
                Outcome::Duplicate => "duplicate",
                Outcome::Ignored => "ignored",
            };
            tracing::info!(event = %envelope.id, kind = %envelope.kind, outcome, "Stripe webhook");
            (StatusCode::OK, Json(json!({ "received": true, "outcome": outcome }))).into_response()
        }
        Err(EventError::Rejected(message)) => {
            tracing::warn!(event = %envelope.id, kind = %envelope.kind, %message, "refused a Stripe event");
            ApiError::Invalid(message.to_string()).into_response()
        }
        Err(EventError::NotYet(message)) => {
            tracing::info!(event = %envelope.id, kind = %envelope.kind, %message, "a Stripe event came early; Stripe retries");
            ApiError::Unavailable(message.to_string()).into_response()
        }
        Err(EventError::Db(e)) => {
            tracing::error!(event = %envelope.id, error = %e, "a Stripe event could not be applied");
            ApiError::Internal.into_response()
        }
    }
}

fn refuse(message: &str) -> Response {
    ApiError::Invalid(message.to_string()).into_response()
}

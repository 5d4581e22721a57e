//! `/api/admin/payments` (every user's payments, newest first, paged by `before`), marking a
//! pending payment failed, and clearing an account's flag — the same services as
//! `/admin/payments` and `/admin/users/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde_json::{Value, json};

use super::auth::AdminAuth;
use super::error::{ApiError, parse_id};
use super::me::query;
use crate::db::payments::Payment;
use crate::services::payments;
use crate::services::payments::admin::{PaymentAdminError, PaymentQuery};
use crate::services::users;
use crate::services::users::AdminUserView;
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
    Path(id): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    Ok(Json(payments::admin::mark_failed(&state, &auth.actor, parse_id(&id)?).await?))
}

/// `POST /api/admin/users/{id}/clear-flag`: 409 when the account has no flag.
pub async fn clear_flag(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> Result<Json<AdminUserView>, ApiError> {
    Ok(Json(users::admin::clear_flag(&state, &auth.actor, parse_id(&id)?).await?.into()))
}

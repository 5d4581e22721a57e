//! `/api/admin/logs` (every user's requests) and `/api/admin/audit` (the audit log): filtered,
//! newest first, paged by `before` (the `next_before` of the previous page).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::Uri;
use serde_json::{Value, json};

use super::auth::AdminAuth;
use super::error::ApiError;
use crate::services::logs;
use crate::services::logs::LogQuery;
use crate::services::logs::admin::{AuditQuery, AuditView, LogsError, SiteLogView, UserQuery};
use crate::state::AppState;

fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::try_from_uri(uri).map(|Query(q)| q).map_err(|e| ApiError::Invalid(format!("query: {}", e.body_text())))
}

/// The `before` of the next page, when this one is full.
fn next_before(len: usize, limit: i64, last: Option<i64>) -> Option<i64> {
    (i64::try_from(len).unwrap_or(i64::MAX) == limit).then_some(last).flatten()
}

/// `GET /api/admin/logs?user=&model=&key=&status=&from=&to=&before=&limit=`.
pub async fn logs(State(state): State<AppState>, _: AdminAuth, uri: Uri) -> Result<Json<Value>, ApiError> {
    let (q, user): (LogQuery, UserQuery) = (query(&uri)?, query(&uri)?);
    let limit = q.page_size().map_err(ApiError::Invalid)?;
    let rows = logs::admin::site_logs(&state, &q, &user, limit).await.map_err(|e| match e {
        LogsError::Invalid(m) => ApiError::Invalid(m),
        LogsError::Db(e) => ApiError::internal("an /api/admin log query failed", &e),
    })?;
    let next = next_before(rows.len(), limit, rows.last().map(|r| r.row.id));
    let data: Vec<SiteLogView> = rows.into_iter().map(SiteLogView::from).collect();
    Ok(Json(json!({ "data": data, "next_before": next })))
}

/// `GET /api/admin/audit?actor=&action=&target=&before=&limit=`.
pub async fn audit(State(state): State<AppState>, _: AdminAuth, uri: Uri) -> Result<Json<Value>, ApiError> {
    let q: AuditQuery = query(&uri)?;
    let limit = q.page_size().map_err(ApiError::Invalid)?;
    let rows = logs::admin::audit_log(&state, &q, limit)
        .await
        .map_err(|e| ApiError::internal("an /api/admin log query failed", &e))?;
    let next = next_before(rows.len(), limit, rows.last().map(|r| r.id));
    let data: Vec<AuditView> = rows.into_iter().map(AuditView::from).collect();
    Ok(Json(json!({ "data": data, "next_before": next })))
}

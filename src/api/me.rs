//! `/api/me`, `/api/me/balance`, `/api/me/logs`, `/api/me/statement`: the token owner's account,
//! balance with recent ledger rows, usage log (the console's filters, paged by id) and monthly
//! statement (CSV). Only ever the owner's data: every query is scoped to [`TokenUser`]'s id.
//! Keys are in `me_keys`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::TokenUser;
use super::error::{ApiError, ApiResult};
use crate::domain::money::Money;
use crate::services::logs::{self, LogQuery};
use crate::services::statement::{self, Month};
use crate::services::users::{self, UserView};
use crate::state::AppState;

/// The query string as `T`; a malformed one is a 400 naming the problem.
pub(super) fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> ApiResult<T> {
    Query::try_from_uri(uri).map(|Query(q)| q).map_err(|e| ApiError::Invalid(format!("query: {}", e.body_text())))
}

/// `GET /api/me`.
pub async fn me(State(state): State<AppState>, auth: TokenUser) -> ApiResult<Json<UserView>> {
    Ok(Json(users::get(&state, auth.user_id).await?))
}

#[derive(Deserialize)]
struct BalanceQuery {
    #[serde(default)]
    limit: Option<i64>,
}

/// One ledger row (top-ups, redemptions, rewards, refunds, adjustments; per-request charges are
/// in the usage log).
#[derive(Serialize)]
struct LedgerView {
    created_at: i64,
    kind: String,
    amount: String,
    balance_after: String,
    note: Option<String>,
}

/// `GET /api/me/balance?limit=20`: the balance and the latest ledger rows (up to 100).
pub async fn balance(State(state): State<AppState>, auth: TokenUser, uri: Uri) -> ApiResult<Json<Value>> {
    let q: BalanceQuery = query(&uri)?;
    let limit = match q.limit {
        None => 20,
        Some(n) if (1..=100).contains(&n) => n,
        Some(_) => return Err(ApiError::Invalid("limit: 1 to 100".into())),
    };
    let user = users::get(&state, auth.user_id).await?;
    let rows = statement::recent(&state, auth.user_id, limit)
        .await
        .map_err(|e| ApiError::internal("an /api/me query failed", &e))?;
    let rows: Vec<LedgerView> = rows
        .into_iter()
        .map(|r| LedgerView {
            created_at: r.created_at,
            kind: r.kind,
            amount: Money(r.amount).to_string(),
            balance_after: Money(r.balance_after).to_string(),
            note: r.note,
        })
        .collect();
    Ok(Json(json!({ "balance": user.balance, "ledger": rows })))
}

/// One usage log row.
#[derive(Serialize)]
struct LogView {
    id: i64,
    created_at: i64,
    key_id: Option<i64>,
    key_name: Option<String>,
    model: String,
    endpoint: String,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost: String,
    status_code: i64,
    error_class: Option<String>,
    latency_ms: i64,
    stream: bool,
}

/// `GET /api/me/logs?from=&to=&model=&key=&status=&before=&limit=`: newest first;
/// `next_before` (when there may be more) is the `before` of the next page.
pub async fn logs(State(state): State<AppState>, auth: TokenUser, uri: Uri) -> ApiResult<Json<Value>> {
    let q: LogQuery = query(&uri)?;
    let filter = q.filter().map_err(ApiError::Invalid)?;
    let limit = q.page_size().map_err(ApiError::Invalid)?;
    let rows = logs::for_user(&state, auth.user_id, &filter, limit)
        .await
        .map_err(|e| ApiError::internal("an /api/me query failed", &e))?;
    let next_before =
        (i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit).then(|| rows.last().map(|r| r.id)).flatten();
    let data: Vec<LogView> = rows
        .into_iter()
        .map(|r| LogView {
            id: r.id,
            created_at: r.created_at,
            key_id: r.key_id,
            key_name: r.key_name,
            model: r.model,
            endpoint: r.endpoint,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cost: Money(r.cost).to_string(),
            status_code: r.status_code,
            error_class: r.error_class,
            latency_ms: r.latency_ms,
            stream: r.is_stream,
        })
        .collect();
    Ok(Json(json!({ "data": data, "next_before": next_before })))
}

#[derive(Deserialize)]
struct StatementQuery {
    #[serde(default)]
    month: String,
}

/// `GET /api/me/statement?month=YYYY-MM`: the month's statement (UTC) as CSV, the same file as
/// the console's download: every ledger row of the month between an opening and a closing
/// balance line.
pub async fn statement(State(state): State<AppState>, auth: TokenUser, uri: Uri) -> ApiResult<Response> {
    let q: StatementQuery = query(&uri)?;
    let month = Month::parse(&q.month).map_err(|m| ApiError::Invalid(m.to_string()))?;
    let disposition = format!("attachment; filename=\"{}\"", month.file_name());
    let chunks = statement::csv(&state, auth.user_id, month)
        .await
        .map_err(|e| ApiError::internal("an /api/me query failed", &e))?;
    Ok(csv_download(disposition, Body::from_stream(chunks)))
}

/// A CSV attachment that no cache keeps (it is one user's money).
fn csv_download(disposition: String, body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

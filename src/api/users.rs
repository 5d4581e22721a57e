//! `/api/admin/users`: the operator's users — create, list and search, read, change (role,
//! group, status), credit with an idempotency key, and read a user's ledger, keys and usage —
//! through `services::users`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult, PathId, parse_json};
use super::me::query;
use crate::domain::money::Money;
use crate::routes::Id;
use crate::services::logs::{self, LogQuery};
use crate::services::users::admin::{AdminUserError, SearchQuery, UserPatch};
use crate::services::users::{AdminUserView, NewUserInput, UserView};
use crate::services::{keys, statement, users};
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let input: NewUserInput = parse_json(&body)?;
    // Only root makes admins.
    if matches!(input.role.as_deref(), Some("admin" | "root")) && auth.actor.role != crate::db::users::Role::Root {
        return Err(ApiError::Forbidden("only the root account can make admins"));
    }
    let user = users::create(&state, input).await?;
    let details = serde_json::json!({ "email": user.email, "role": user.role, "group": user.group });
    crate::services::audit::record(&state, &auth.actor, "user.create", ("user", &user.id.to_string()), details).await;
    Ok((StatusCode::CREATED, Json(user)))
}

pub async fn get(State(state): State<AppState>, _: AdminAuth, Id(id, _): PathId) -> ApiResult<Json<AdminUserView>> {
    Ok(Json(users::get(&state, id).await?.into()))
}

impl From<AdminUserError> for ApiError {
    fn from(e: AdminUserError) -> Self {
        match e {
            AdminUserError::Invalid(m) => Self::Invalid(m),
            AdminUserError::NotFound => Self::NotFound,
            AdminUserError::Forbidden(m) => Self::Forbidden(m),
            AdminUserError::Conflict(m) => Self::Conflict(m),
            AdminUserError::Internal(d) => {
                tracing::error!(error = %d, "user administration failed");
                Self::Internal
            }
        }
    }
}

/// `GET /api/admin/users?q=&role=&group=&status=&page=&per_page=`.
pub async fn list(State(state): State<AppState>, _: AdminAuth, uri: Uri) -> ApiResult<Json<Value>> {
    let q: SearchQuery = query(&uri)?;
    let page = users::admin::search(&state, &q).await?;
    let has_next = page.has_next();
    let data: Vec<Value> = page
        .rows
        .into_iter()
        .map(|u| {
            json!({
                "id": u.id, "email": u.email, "display_name": u.display_name, "role": u.role,
                "status": u.status, "group": u.group, "balance": Money(u.balance).to_string(),
                "created_at": u.created_at, "last_login_at": u.last_login_at, "flag": u.flag,
            })
        })
        .collect();
    Ok(Json(
        json!({ "data": data, "total": page.total, "page": page.page, "per_page": page.per_page, "has_next": has_next }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustInput {
    amount: String,
    note: String,
}

/// The longest `Idempotency-Key` taken.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The request's `Idempotency-Key`, if any: one header of 1 to 255 visible ASCII characters
/// (anything else is refused, so a key is never silently ignored or cut).
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else { return Ok(None) };
    let refused = || {
        ApiError::Invalid(format!("Idempotency-Key: one key of 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"))
    };
    if values.next().is_some() {
        return Err(refused());
    }
    let key = value.to_str().map_err(|_| refused())?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refused());
    }
    Ok(Some(key))
}

/// `POST /api/admin/users/{id}/credit` `{"amount": "5.00" | "-2.50", "note": "…"}` (the note is
/// required): the new balance. With an `Idempotency-Key` header, a repeat of the same request
/// (same operator, user, amount and note) moves nothing and gets the first answer again; the
/// same key on a different request is a 409.
pub async fn credit(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> ApiResult<Json<Value>> {
    let key = idempotency_key(&headers)?;
    let input: AdjustInput = parse_json(&body)?;
    let balance = users::admin::adjust(&state, &auth.actor, id, &input.amount, &input.note, key).await?;
    Ok(Json(json!({ "id": id, "balance": Money(balance).to_string() })))
}

/// `PATCH /api/admin/users/{id}` `{"group"?, "role"?, "status"?}`: the user as now.
pub async fn update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
    body: bytes::Bytes,
) -> ApiResult<Json<UserView>> {
    let patch: UserPatch = parse_json(&body)?;
    Ok(Json(users::admin::update(&state, &auth.actor, id, &patch).await?))
}

#[derive(Deserialize)]
struct LedgerQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    before: Option<i64>,
}

/// `GET /api/admin/users/{id}/ledger?before=&limit=100`: the balance and one page of the user's
/// whole ledger — every row, per-request settlements included — newest first (1 to 1000 rows,
/// default 100). `next_before`, when there may be more, is the `before` of the next page; paging
/// to the end and adding every amount gives the balance.
pub async fn ledger(
    State(state): State<AppState>,
    _: AdminAuth,
    Id(id, _): PathId,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let q: LedgerQuery = query(&uri)?;
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => return Err(ApiError::Invalid("limit: 1 to 1000".into())),
    };
    let user = users::get(&state, id).await?;
    let rows = statement::page(&state, id, q.before, limit)
        .await
        .map_err(|e| ApiError::internal("an /api/admin/users query failed", &e))?;
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit;
    let next_before = full.then(|| rows.last().map(|r| r.id)).flatten();
    let data: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({ "id": r.id, "created_at": r.created_at, "kind": r.kind, "amount": Money(r.amount).to_string(),
                    "balance_after": Money(r.balance_after).to_string(), "note": r.note, "reference": r.reference })
        })
        .collect();
    Ok(Json(json!({ "balance": user.balance, "data": data, "next_before": next_before })))
}

/// `GET /api/admin/users/{id}/keys`: the user's keys (prefixes only).
pub async fn keys(State(state): State<AppState>, _: AdminAuth, Id(id, _): PathId) -> ApiResult<Json<Value>> {
    users::get(&state, id).await?;
    Ok(Json(json!({ "data": keys::list_keys(&state, id).await? })))
}

/// `GET /api/admin/users/{id}/usage?from=&to=&model=&key=&status=&before=&limit=`: requests and
/// spend over the last 30 days, and the usage log with the console's filters.
pub async fn usage(State(state): State<AppState>, _: AdminAuth, Id(id, _): PathId, uri: Uri) -> ApiResult<Json<Value>> {
    users::get(&state, id).await?;
    let q: LogQuery = query(&uri)?;
    let filter = q.filter().map_err(ApiError::Invalid)?;
    let limit = q.page_size().map_err(ApiError::Invalid)?;
    let (requests, spend) = users::admin::recent_usage(&state, id).await?;
    let rows = logs::for_user(&state, id, &filter, limit)
        .await
        .map_err(|e| ApiError::internal("an /api/admin/users query failed", &e))?;
    let next_before =
        (i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit).then(|| rows.last().map(|r| r.id)).flatten();
    let data: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({ "id": r.id, "created_at": r.created_at, "key_id": r.key_id, "key_name": r.key_name,
                    "model": r.model, "endpoint": r.endpoint, "prompt_tokens": r.prompt_tokens,
                    "completion_tokens": r.completion_tokens, "cost": Money(r.cost).to_string(),
                    "status_code": r.status_code, "error_class": r.error_class, "latency_ms": r.latency_ms,
                    "stream": r.is_stream })
        })
        .collect();
    Ok(Json(json!({
        "last_30_days": { "requests": requests, "spend": Money(spend).to_string() },
        "data": data,
        "next_before": next_before,
    })))
}

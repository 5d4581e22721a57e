//! `/api/admin/codes` and `/api/reseller/*`: redemption codes (generate, list, export CSV,
//! void), a reseller's invitees and balance transfers. Thin: every operation is
//! `services::codes`, the same as the console's `/admin/codes` and `/console/reseller`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AdminAuth, ResellerAuth};
use super::error::{ApiError, ApiResult, PathId, parse_json};
use super::me::query;
use crate::db::codes::CodeRow;
use crate::domain::money::Money;
use crate::routes::Id;
use crate::services::audit::Actor;
use crate::services::codes::{self, CodesError, GenerateInput, Generated, Owner, TransferInput, VoidResult};
use crate::state::AppState;

impl From<CodesError> for ApiError {
    fn from(e: CodesError) -> Self {
        match e {
            CodesError::Invalid(m) => Self::Invalid(m),
            CodesError::NotFound => Self::NotFound,
            CodesError::NotUnused | CodesError::InsufficientBalance => Self::Conflict(e.to_string()),
            CodesError::Internal(d) => {
                tracing::error!(error = %d, "a redemption code operation failed");
                Self::Internal
            }
        }
    }
}

/// `?status=unused|used|disabled|expired&batch=NAME`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub batch: String,
}

/// `{"batch": NAME}`: void every unused code of a batch.
#[derive(Debug, Deserialize)]
struct VoidBatch {
    #[serde(default)]
    batch: String,
}

async fn generate(
    state: &AppState,
    actor: &Actor,
    owner: Owner,
    body: &[u8],
) -> ApiResult<(StatusCode, Json<Generated>)> {
    let input: GenerateInput = parse_json(body)?;
    Ok((StatusCode::CREATED, Json(codes::generate(state, actor, owner, &input).await?)))
}

async fn list(state: &AppState, owner: Owner, query: &ListQuery) -> ApiResult<Json<Value>> {
    let filter = codes::filter(owner, &query.status, &query.batch)?;
    let rows: Vec<CodeRow> = codes::list(state, owner, &filter).await?;
    Ok(Json(json!({ "data": rows })))
}

async fn export(state: &AppState, actor: &Actor, owner: Owner, query: &ListQuery) -> ApiResult<Response> {
    let filter = codes::filter(owner, &query.status, &query.batch)?;
    let csv = codes::export_csv(state, actor, owner, &filter).await?;
    Ok(csv_response(csv))
}

/// A CSV download.
pub fn csv_response(csv: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"codes.csv\""),
            (header::CACHE_CONTROL, "no-store"),
        ],
        csv,
    )
        .into_response()
}

async fn void_batch(state: &AppState, actor: &Actor, owner: Owner, body: &[u8]) -> ApiResult<Json<VoidResult>> {
    let input: VoidBatch = parse_json(body)?;
    Ok(Json(codes::void_batch(state, actor, owner, &input.batch).await?))
}

/// `POST /api/admin/codes`: `{"name","amount","count","prefix"?,"expires"?}` → the codes.
pub async fn admin_generate(
    State(state): State<AppState>,
    auth: AdminAuth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Generated>)> {
    generate(&state, &auth.actor, Owner::Operator, &body).await
}

/// `GET /api/admin/codes?status=&batch=`.
pub async fn admin_list(State(state): State<AppState>, _: AdminAuth, uri: Uri) -> ApiResult<Json<Value>> {
    list(&state, Owner::Operator, &query(&uri)?).await
}

/// `GET /api/admin/codes/export?status=&batch=`: CSV.
pub async fn admin_export(State(state): State<AppState>, auth: AdminAuth, uri: Uri) -> ApiResult<Response> {
    export(&state, &auth.actor, Owner::Operator, &query(&uri)?).await
}

/// `POST /api/admin/codes/{id}/void`.
pub async fn admin_void(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
) -> ApiResult<Json<VoidResult>> {
    Ok(Json(codes::void_one(&state, &auth.actor, Owner::Operator, id).await?))
}

/// `POST /api/admin/codes/void`: `{"batch": NAME}`.
pub async fn admin_void_batch(
    State(state): State<AppState>,
    auth: AdminAuth,
    body: Bytes,
) -> ApiResult<Json<VoidResult>> {
    void_batch(&state, &auth.actor, Owner::Operator, &body).await
}

/// `POST /api/reseller/codes`: as the admin's, paid from the reseller's balance.
pub async fn reseller_generate(
    State(state): State<AppState>,
    auth: ResellerAuth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Generated>)> {
    generate(&state, &auth.actor, Owner::Reseller(auth.user_id), &body).await
}

/// `GET /api/reseller/codes?status=&batch=`: the reseller's own codes, redeemers masked.
pub async fn reseller_list(State(state): State<AppState>, auth: ResellerAuth, uri: Uri) -> ApiResult<Json<Value>> {
    list(&state, Owner::Reseller(auth.user_id), &query(&uri)?).await
}

/// `GET /api/reseller/codes/export?status=&batch=`: CSV of the reseller's own codes.
pub async fn reseller_export(State(state): State<AppState>, auth: ResellerAuth, uri: Uri) -> ApiResult<Response> {
    export(&state, &auth.actor, Owner::Reseller(auth.user_id), &query(&uri)?).await
}

/// `POST /api/reseller/codes/{id}/void`: refunds the code's value; another's code is a 404.
pub async fn reseller_void(
    State(state): State<AppState>,
    auth: ResellerAuth,
    Id(id, _): PathId,
) -> ApiResult<Json<VoidResult>> {
    Ok(Json(codes::void_one(&state, &auth.actor, Owner::Reseller(auth.user_id), id).await?))
}

/// `POST /api/reseller/codes/void`: `{"batch": NAME}`.
pub async fn reseller_void_batch(
    State(state): State<AppState>,
    auth: ResellerAuth,
    body: Bytes,
) -> ApiResult<Json<VoidResult>> {
    void_batch(&state, &auth.actor, Owner::Reseller(auth.user_id), &body).await
}

/// `GET /api/reseller/invitees`: invitees (masked) and rewards earned.
pub async fn reseller_invitees(State(state): State<AppState>, auth: ResellerAuth) -> ApiResult<Json<Value>> {
    let (invitees, earned) = codes::invitees(&state, auth.user_id).await?;
    Ok(Json(json!({ "data": invitees, "earned": Money(earned).to_string() })))
}

/// `POST /api/reseller/transfer`: `{"email","amount"}` → the reseller's new balance.
pub async fn reseller_transfer(
    State(state): State<AppState>,
    auth: ResellerAuth,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: TransferInput = parse_json(&body)?;
    let balance = codes::transfer(&state, &auth.actor, auth.user_id, &input).await?;
    Ok(Json(json!({ "balance": Money(balance).to_string() })))
}

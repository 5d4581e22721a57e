//! `/api/admin/capabilities*`: the model capabilities table (output cap, context window,
//! reasoning, tools, vision, audio) — the same service as the capabilities on `/admin/pricing`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};

use super::auth::AdminAuth;
use super::error::{ApiError, parse_json};
use crate::services::pricing::capabilities::{self, CapabilityView};
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// `GET /api/admin/capabilities`: every priced model, every model with a row and every model
/// with a shipped default, with its effective values and their source.
pub async fn list(State(state): State<AppState>, _: AdminAuth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "data": capabilities::list(&state).await? })))
}

/// `PUT /api/admin/capabilities/{model}` with the six fields, each optional (`null` or absent =
/// not known). The row replaces the shipped default as a whole.
pub async fn set(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(model): Path<String>,
    body: Bytes,
) -> ApiResult<Json<CapabilityView>> {
    let input: Value = parse_json(&body)?;
    let caps = capabilities::from_json(&input)?;
    Ok(Json(capabilities::set(&state, &auth.actor, &model, &caps).await?))
}

/// `DELETE /api/admin/capabilities/{model}`: back to the shipped default; 404 without a row.
pub async fn reset(State(state): State<AppState>, auth: AdminAuth, Path(model): Path<String>) -> ApiResult<StatusCode> {
    if capabilities::reset(&state, &auth.actor, &model).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

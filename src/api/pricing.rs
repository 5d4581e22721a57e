//! `/api/admin/prices*` and `/api/admin/groups*`: the price table, per-group prices, One API
//! ratio import and export, the default price list, and groups — the same services as
//! `/admin/pricing` and `/admin/groups`.
//!
//! `/api/admin/capabilities*`: the model capabilities table (output cap, context window,
//! reasoning, tools, vision, audio) — the same service as the capabilities on `/admin/pricing`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AdminAuth;
use super::error::{ApiError, ApiResult, parse_json};
use super::me::query;
use crate::services::pricing::admin::{DefaultsSummary, ImportSummary, PriceView};
use crate::services::pricing::capabilities::CapabilityView;
use crate::services::pricing::groups::{GroupSave, GroupView};
use crate::services::pricing::{self, PriceInput, capabilities, groups};
use crate::state::AppState;

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: Option<String>,
}

/// `GET /api/admin/prices?q=`: model prices (names containing `q`) and every group's own prices.
pub async fn list(State(state): State<AppState>, _: AdminAuth, uri: Uri) -> ApiResult<Json<Value>> {
    let q: SearchQuery = query(&uri)?;
    let data = pricing::admin::list(&state, q.q.as_deref()).await?;
    let overrides = pricing::admin::overrides(&state).await?;
    Ok(Json(json!({ "data": data, "group_prices": overrides })))
}

/// `PUT /api/admin/prices/{model}`.
pub async fn set(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(model): Path<String>,
    body: Bytes,
) -> ApiResult<Json<PriceView>> {
    let input: PriceInput = parse_json(&body)?;
    Ok(Json(pricing::admin::set(&state, &auth.actor, &model, &input).await?))
}

/// `DELETE /api/admin/prices/{model}`.
pub async fn delete(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(model): Path<String>,
) -> ApiResult<StatusCode> {
    if pricing::admin::delete(&state, &auth.actor, &model).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// `PUT /api/admin/groups/{name}/prices/{model}`.
pub async fn set_override(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path((group, model)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<PriceView>> {
    let input: PriceInput = parse_json(&body)?;
    Ok(Json(pricing::admin::set_override(&state, &auth.actor, &group, &model, &input).await?))
}

/// `DELETE /api/admin/groups/{name}/prices/{model}`.
pub async fn delete_override(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path((group, model)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if pricing::admin::delete_override(&state, &auth.actor, &group, &model).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// `POST /api/admin/prices/import-ratios` with One API's `{"ModelRatio", "CompletionRatio",
/// "GroupRatio"}` (New API's `ModelPrice` too): all or nothing.
pub async fn import(State(state): State<AppState>, auth: AdminAuth, body: Bytes) -> ApiResult<Json<ImportSummary>> {
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::Invalid("the body is not UTF-8".into()))?;
    Ok(Json(pricing::admin::import_ratios(&state, &auth.actor, text).await?))
}

/// `GET /api/admin/prices/export-ratios`.
pub async fn export(State(state): State<AppState>, _: AdminAuth) -> ApiResult<Json<Value>> {
    Ok(Json(pricing::admin::export_ratios(&state).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DefaultsInput {
    #[serde(default)]
    overwrite: bool,
}

/// `POST /api/admin/prices/defaults` `{"overwrite": false}`.
pub async fn defaults(State(state): State<AppState>, auth: AdminAuth, body: Bytes) -> ApiResult<Json<DefaultsSummary>> {
    let input: DefaultsInput = if body.is_empty() { DefaultsInput::default() } else { parse_json(&body)? };
    Ok(Json(pricing::admin::apply_defaults(&state, &auth.actor, input.overwrite).await?))
}

/// `GET /api/admin/groups`.
pub async fn list_groups(State(state): State<AppState>, _: AdminAuth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "data": groups::list(&state).await? })))
}

/// `PUT /api/admin/groups/{name}` `{"multiplier", "description"?, "models"?}`.
pub async fn save_group(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<GroupView>> {
    let input: GroupSave = parse_json(&body)?;
    Ok(Json(groups::save(&state, &auth.actor, &name, &input).await?))
}

/// `DELETE /api/admin/groups/{name}`: not `default`, not a group with users (400).
pub async fn delete_group(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if groups::delete(&state, &auth.actor, &name).await? { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::NotFound) }
}

/// `GET /api/admin/capabilities`: every priced model, every model with a row and every model
/// with a shipped default, with its effective values and their source.
pub async fn list_capabilities(State(state): State<AppState>, _: AdminAuth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "data": capabilities::list(&state).await? })))
}

/// `PUT /api/admin/capabilities/{model}` with the six fields, each optional (`null` or absent =
/// not known). The row replaces the shipped default as a whole.
pub async fn set_capability(
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
pub async fn reset_capability(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(model): Path<String>,
) -> ApiResult<StatusCode> {
    if capabilities::reset(&state, &auth.actor, &model).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

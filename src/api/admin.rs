//! `/api/admin/*` handlers. The shapes are a contract (docs/api.md): outside tooling uses them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AdminAuth;
use super::error::{ApiError, parse_id, parse_json};
use crate::services::channels::{self, ChannelInput, ChannelView, TestResult};
use crate::services::keys::{self, KeyPatch, KeyScope, KeyView, NewKeyInput};
use crate::services::pricing::{self, GroupInput, GroupView, PriceInput};
use crate::services::users::{self, NewUserInput, UserView};
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

pub async fn create_channel(
    State(state): State<AppState>,
    _: AdminAuth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let input: ChannelInput = parse_json(&body)?;
    Ok((StatusCode::CREATED, Json(channels::create(&state, input).await?)))
}

pub async fn list_channels(State(state): State<AppState>, _: AdminAuth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "data": channels::list(&state).await? })))
}

pub async fn get_channel(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<ChannelView>> {
    Ok(Json(channels::get(&state, parse_id(&id)?).await?))
}

pub async fn update_channel(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ChannelView>> {
    let id = parse_id(&id)?;
    let input: ChannelInput = parse_json(&body)?;
    Ok(Json(channels::update(&state, id, input).await?))
}

pub async fn delete_channel(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    channels::delete(&state, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test_channel(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<TestResult>> {
    Ok(Json(channels::test(&state, parse_id(&id)?).await?))
}

pub async fn create_user(
    State(state): State<AppState>,
    _: AdminAuth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let input: NewUserInput = parse_json(&body)?;
    Ok((StatusCode::CREATED, Json(users::create(&state, input).await?)))
}

pub async fn get_user(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(users::get(&state, parse_id(&id)?).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditInput {
    amount: String,
    #[serde(default)]
    note: Option<String>,
}

pub async fn credit_user(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let input: CreditInput = parse_json(&body)?;
    let balance = users::credit(&state, id, &input.amount, input.note.as_deref()).await?;
    Ok(Json(json!({ "id": id, "balance": balance })))
}

pub async fn create_key(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = parse_id(&id)?;
    let input: NewKeyInput = if body.is_empty() { NewKeyInput::default() } else { parse_json(&body)? };
    let (key_id, key) = keys::create_key(&state, id, input).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": key_id, "key": key }))))
}

/// Any subset of the key's fields (status, name, limits); the key as it is now.
pub async fn update_key(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<KeyView>> {
    let id = parse_id(&id)?;
    let patch: KeyPatch = parse_json(&body)?;
    Ok(Json(keys::update_key(&state, KeyScope::Any, id, &patch).await?))
}

pub async fn delete_key(State(state): State<AppState>, _: AdminAuth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    keys::delete_key(&state, KeyScope::Any, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_group_price(
    State(state): State<AppState>,
    _: AdminAuth,
    Path((group, model)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: PriceInput = parse_json(&body)?;
    let price = pricing::set_group_price(&state, &group, &model, &input).await?;
    let mut shown = serde_json::to_value(price).map_err(|_| ApiError::Internal)?;
    shown["group"] = json!(group);
    shown["model"] = json!(model);
    Ok(Json(shown))
}

pub async fn set_price(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(model): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: PriceInput = parse_json(&body)?;
    let price = pricing::set_price(&state, &model, &input).await?;
    let mut shown = serde_json::to_value(price).map_err(|_| ApiError::Internal)?;
    shown["model"] = json!(model);
    Ok(Json(shown))
}

pub async fn set_group(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<GroupView>> {
    let input: GroupInput = parse_json(&body)?;
    Ok(Json(pricing::set_group(&state, &name, &input).await?))
}

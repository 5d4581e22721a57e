//! `/api/admin/channels`: the operator's channels — create, list, read, change, delete, test (one
//! or all), import, enable/disable, copy, fetch an upstream's model list, and each channel's keys
//! (health, add in bulk, enable/disable, test) — through `services::channels`. Upstream keys are
//! never rendered back: a key is named by its fingerprint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AdminAuth;
use super::error::{ApiResult, PathId, parse_json};
use crate::routes::{Id, IdAndName};
use crate::services::channels::admin::ImportInput;
use crate::services::channels::keys::KeyView;
use crate::services::channels::{self, ChannelInput, ChannelView, TestResult};
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    auth: AdminAuth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let input: ChannelInput = parse_json(&body)?;
    Ok((StatusCode::CREATED, Json(channels::admin::create(&state, &auth.actor, input).await?)))
}

pub async fn list(State(state): State<AppState>, _: AdminAuth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "data": channels::list(&state).await? })))
}

pub async fn get(State(state): State<AppState>, _: AdminAuth, Id(id, _): PathId) -> ApiResult<Json<ChannelView>> {
    Ok(Json(channels::get(&state, id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
    body: Bytes,
) -> ApiResult<Json<ChannelView>> {
    let input: ChannelInput = parse_json(&body)?;
    Ok(Json(channels::admin::update(&state, &auth.actor, id, input).await?))
}

pub async fn delete(State(state): State<AppState>, auth: AdminAuth, Id(id, _): PathId) -> ApiResult<StatusCode> {
    channels::admin::delete(&state, &auth.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test(State(state): State<AppState>, auth: AdminAuth, Id(id, _): PathId) -> ApiResult<Json<TestResult>> {
    Ok(Json(channels::admin::test(&state, &auth.actor, id).await?))
}

/// `POST /api/admin/channels/{id}/enable`.
pub async fn enable(State(state): State<AppState>, auth: AdminAuth, Id(id, _): PathId) -> ApiResult<Json<ChannelView>> {
    Ok(Json(channels::admin::set_enabled(&state, &auth.actor, id, true).await?))
}

/// `POST /api/admin/channels/{id}/disable`.
pub async fn disable(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
) -> ApiResult<Json<ChannelView>> {
    Ok(Json(channels::admin::set_enabled(&state, &auth.actor, id, false).await?))
}

/// `POST /api/admin/channels/{id}/copy`: the new channel (disabled).
pub async fn copy(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    Ok((StatusCode::CREATED, Json(channels::admin::copy(&state, &auth.actor, id).await?)))
}

/// `POST /api/admin/channels/test`: every channel's probe.
pub async fn test_all(State(state): State<AppState>, auth: AdminAuth) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "data": channels::admin::test_all(&state, &auth.actor).await? })))
}

/// `POST /api/admin/channels/import`: `{"channel": {…}, "keys": "k1\nk2", "mode": "separate" |
/// "rotation"}`; the channels created.
pub async fn import(
    State(state): State<AppState>,
    auth: AdminAuth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: ImportInput = parse_json(&body)?;
    let created = channels::admin::import(&state, &auth.actor, input).await?;
    Ok((StatusCode::CREATED, Json(json!({ "data": created }))))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchInput {
    #[serde(default)]
    save: bool,
}

/// `POST /api/admin/channels/{id}/models` (`{"save": true}` to make them the channel's models):
/// the model names the upstream lists.
pub async fn fetch_models(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: FetchInput = if body.is_empty() { FetchInput::default() } else { parse_json(&body)? };
    let models = channels::admin::fetch_models(&state, &auth.actor, id, input.save).await?;
    Ok(Json(json!({ "id": id, "models": models, "saved": input.save && !models.is_empty() })))
}

/// The path of one key: the channel's id and the key's fingerprint.
type KeyPath = IdAndName<super::error::ApiError>;

/// `GET /api/admin/channels/{id}/keys`: each key's health.
pub async fn keys(State(state): State<AppState>, _: AdminAuth, Id(id, _): PathId) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "data": channels::keys::list(&state, id).await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddKeysInput {
    /// One key per line.
    keys: String,
}

/// `POST /api/admin/channels/{id}/keys` (`{"keys": "k1\nk2"}`): adds keys in bulk, skipping
/// those the channel holds already.
pub async fn add_keys(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let input: AddKeysInput = parse_json(&body)?;
    let (channel, added) = channels::admin::add_keys(&state, &auth.actor, id, &input.keys).await?;
    Ok(Json(json!({ "added": added, "channel": channel })))
}

/// `POST /api/admin/channels/{id}/keys/{key}/enable`.
pub async fn enable_key(
    State(state): State<AppState>,
    auth: AdminAuth,
    IdAndName(id, key, _): KeyPath,
) -> ApiResult<Json<KeyView>> {
    Ok(Json(channels::admin::set_key_enabled(&state, &auth.actor, id, &key, true).await?))
}

/// `POST /api/admin/channels/{id}/keys/{key}/disable`.
pub async fn disable_key(
    State(state): State<AppState>,
    auth: AdminAuth,
    IdAndName(id, key, _): KeyPath,
) -> ApiResult<Json<KeyView>> {
    Ok(Json(channels::admin::set_key_enabled(&state, &auth.actor, id, &key, false).await?))
}

/// `POST /api/admin/channels/{id}/keys/{key}/test`: probes the channel through that key.
pub async fn test_key(
    State(state): State<AppState>,
    auth: AdminAuth,
    IdAndName(id, key, _): KeyPath,
) -> ApiResult<Json<TestResult>> {
    Ok(Json(channels::admin::test_key(&state, &auth.actor, id, &key).await?))
}

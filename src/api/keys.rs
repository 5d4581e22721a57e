//! API keys: the operator's (`/api/admin/users/{id}/keys`, `/api/admin/keys/{id}`: any user's)
//! and the token owner's own (`/api/me/keys`: another user's key id answers 404 like a missing
//! one), through `services::keys`. The full key is in the creating answer only. Bodies take the
//! console's fields; anything else (a fixed key string, an owner, a balance) is refused.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};

use super::auth::{AdminAuth, TokenUser};
use super::error::{ApiError, ApiResult, PathId, parse_json};
use crate::routes::Id;
use crate::services::keys::{self, KeyPatch, KeyScope, KeyView, NewKeyInput};
use crate::state::AppState;

/// Issues a key for a user: an admin only for users and resellers (root for anyone), audited.
pub async fn admin_create(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: NewKeyInput = if body.is_empty() { NewKeyInput::default() } else { parse_json(&body)? };
    let (key_id, key) = keys::admin::create(&state, &auth.actor, id, input).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": key_id, "key": key }))))
}

/// Any subset of the key's fields (status, name, limits); the key as it is now. Under the same
/// role rule as creating, audited.
pub async fn admin_update(
    State(state): State<AppState>,
    auth: AdminAuth,
    Id(id, _): PathId,
    body: Bytes,
) -> ApiResult<Json<KeyView>> {
    let patch: KeyPatch = parse_json(&body)?;
    Ok(Json(keys::admin::update(&state, &auth.actor, id, &patch).await?))
}

pub async fn admin_delete(State(state): State<AppState>, auth: AdminAuth, Id(id, _): PathId) -> ApiResult<StatusCode> {
    keys::admin::delete(&state, &auth.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/me/keys`.
pub async fn list(State(state): State<AppState>, auth: TokenUser) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "data": keys::list_keys(&state, auth.user_id).await? })))
}

/// `POST /api/me/keys`: `{"name", "spend_limit", "expires_at", "models", "ips", "rpm"}`, all
/// optional; 201 with the key's view plus `key`, the secret, shown this once.
pub async fn create(
    State(state): State<AppState>,
    auth: TokenUser,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: NewKeyInput = if body.is_empty() { NewKeyInput::default() } else { parse_json(&body)? };
    if input.key.is_some() {
        return Err(ApiError::Invalid("key: keys are generated; a chosen key string is not accepted here".into()));
    }
    let (id, secret) = keys::create_key(&state, auth.user_id, input).await?;
    let view = keys::get_key(&state, KeyScope::Owner(auth.user_id), id).await?;
    let mut shown = serde_json::to_value(view).map_err(|_| ApiError::Internal)?;
    shown["key"] = json!(secret);
    Ok((StatusCode::CREATED, Json(shown)))
}

/// `PATCH /api/me/keys/{id}`: any subset of status, name and limits (`null` removes a limit).
pub async fn update(
    State(state): State<AppState>,
    auth: TokenUser,
    Id(id, _): PathId,
    body: Bytes,
) -> ApiResult<Json<KeyView>> {
    let patch: KeyPatch = parse_json(&body)?;
    Ok(Json(keys::update_key(&state, KeyScope::Owner(auth.user_id), id, &patch).await?))
}

/// `DELETE /api/me/keys/{id}`.
pub async fn delete(State(state): State<AppState>, auth: TokenUser, Id(id, _): PathId) -> ApiResult<StatusCode> {
    keys::delete_key(&state, KeyScope::Owner(auth.user_id), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

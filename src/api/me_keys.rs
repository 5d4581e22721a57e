//! `/api/me/keys`: the token owner's API keys — list, create (the full key in that answer only),
//! change, delete — through `services::keys` with the owner's scope, so another user's key id
//! answers 404 like a missing one. Bodies take the console's fields; anything else (a fixed key
//! string, an owner, a balance) is refused.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};

use super::auth::TokenUser;
use super::error::{ApiError, parse_id, parse_json};
use crate::services::keys::{self, KeyPatch, KeyScope, KeyView, NewKeyInput};
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

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
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<KeyView>> {
    let id = parse_id(&id)?;
    let patch: KeyPatch = parse_json(&body)?;
    Ok(Json(keys::update_key(&state, KeyScope::Owner(auth.user_id), id, &patch).await?))
}

/// `DELETE /api/me/keys/{id}`.
pub async fn delete(State(state): State<AppState>, auth: TokenUser, Path(id): Path<String>) -> ApiResult<StatusCode> {
    keys::delete_key(&state, KeyScope::Owner(auth.user_id), parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

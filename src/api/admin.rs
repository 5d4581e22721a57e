//! `/api/admin/*` handlers. The shapes are a contract (docs/api.md): outside tooling uses them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};

use super::auth::AdminAuth;
use super::error::{ApiError, parse_id, parse_json};
use crate::services::channels::{self, ChannelInput, ChannelView, TestResult};
use crate::services::keys;
use crate::services::keys::{KeyPatch, KeyView, NewKeyInput};
use crate::services::users::{self, AdminUserView, NewUserInput, UserView};
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

pub async fn create_channel(
    State(state): State<AppState>,
    auth: AdminAuth,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let input: ChannelInput = parse_json(&body)?;
    Ok((StatusCode::CREATED, Json(channels::admin::create(&state, &auth.actor, input).await?)))
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
    auth: AdminAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ChannelView>> {
    let id = parse_id(&id)?;
    let input: ChannelInput = parse_json(&body)?;
    Ok(Json(channels::admin::update(&state, &auth.actor, id, input).await?))
}

pub async fn delete_channel(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    channels::admin::delete(&state, &auth.actor, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test_channel(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<TestResult>> {
    Ok(Json(channels::admin::test(&state, &auth.actor, parse_id(&id)?).await?))
}

pub async fn create_user(
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

pub async fn get_user(
    State(state): State<AppState>,
    _: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<AdminUserView>> {
    Ok(Json(users::get(&state, parse_id(&id)?).await?.into()))
}

/// Issues a key for a user: an admin only for users and resellers (root for anyone), audited.
pub async fn create_key(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = parse_id(&id)?;
    let input: NewKeyInput = if body.is_empty() { NewKeyInput::default() } else { parse_json(&body)? };
    let (key_id, key) = keys::admin::create(&state, &auth.actor, id, input).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": key_id, "key": key }))))
}

/// Any subset of the key's fields (status, name, limits); the key as it is now. Under the same
/// role rule as creating, audited.
pub async fn update_key(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<KeyView>> {
    let id = parse_id(&id)?;
    let patch: KeyPatch = parse_json(&body)?;
    Ok(Json(keys::admin::update(&state, &auth.actor, id, &patch).await?))
}

pub async fn delete_key(
    State(state): State<AppState>,
    auth: AdminAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    keys::admin::delete(&state, &auth.actor, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

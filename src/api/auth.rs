//! Management API authentication: `Authorization: Bearer <token>`, where the token is either the
//! root token from `BURNCLOUD_ADMIN_TOKEN` (compared as SHA-256 digests in constant time) or a
//! user's personal access token (looked up by hash, refused when revoked, expired or its user
//! disabled). [`AdminAuth`] (`/api/admin/*`) takes the root token or an admin's token;
//! [`ResellerAuth`] (`/api/reseller/*`) a reseller's; [`TokenUser`] (`/api/me/*`) anyone's. A
//! valid token of the wrong role gets 403.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::db::users::Role;
use crate::services::accounts::access_tokens;
use crate::services::audit::{Actor, Via};
use crate::services::users;
use crate::state::AppState;

/// The bearer token of the request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// A request to `/api/admin/*`: the root token, or the personal access token of an admin or
/// root user (a user's or reseller's token gets 403). Carries who acts, for the audit log and
/// the role rules.
pub struct AdminAuth {
    pub actor: Actor,
}

/// The client's address, when known (through trusted proxies only).
fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    crate::client_ip::of(parts).0
}

fn is_root_token(state: &AppState, presented: &str) -> bool {
    let Some(expected) = state.config().admin_token.as_ref() else { return false };
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.expose().as_bytes());
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The actor behind a bearer token: the root token, or an access token's user with their role.
async fn token_actor(parts: &Parts, state: &AppState) -> Result<Actor, ApiError> {
    let presented = bearer(parts).ok_or(ApiError::Unauthorized("missing bearer token"))?;
    let ip = client_ip(parts);
    if is_root_token(state, presented) {
        return Ok(Actor::root_token(ip));
    }
    let user_id = match access_tokens::authenticate(state, presented).await {
        Ok(Some(user_id)) => user_id,
        Ok(None) => return Err(ApiError::Unauthorized("invalid token")),
        Err(e) => {
            tracing::error!(error = %e, "checking an access token failed");
            return Err(ApiError::Internal);
        }
    };
    let role = match users::summary(state, user_id).await {
        Ok(Some(user)) => Role::parse(&user.role).unwrap_or(Role::User),
        Ok(None) => return Err(ApiError::Unauthorized("invalid token")),
        Err(e) => {
            tracing::error!(error = %e, "loading a token's user failed");
            return Err(ApiError::Internal);
        }
    };
    Ok(Actor { user_id: Some(user_id), role, via: Via::Token, ip })
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let actor = token_actor(parts, state).await?;
        if actor.is_admin() { Ok(Self { actor }) } else { Err(ApiError::Forbidden("admins only")) }
    }
}

/// A request to `/api/reseller/*`: the personal access token of a reseller.
pub struct ResellerAuth {
    pub actor: Actor,
    pub user_id: i64,
}

impl FromRequestParts<AppState> for ResellerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let actor = token_actor(parts, state).await?;
        match (actor.role, actor.user_id) {
            (Role::Reseller, Some(user_id)) => Ok(Self { actor, user_id }),
            _ => Err(ApiError::Forbidden("resellers only")),
        }
    }
}

/// The user a request's personal access token acts for: everything under `/api/me` is scoped
/// to this id.
pub struct TokenUser {
    pub user_id: i64,
}

impl FromRequestParts<AppState> for TokenUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = bearer(parts).ok_or(ApiError::Unauthorized("missing bearer token"))?;
        match access_tokens::authenticate(state, presented).await {
            Ok(Some(user_id)) => Ok(Self { user_id }),
            Ok(None) => Err(ApiError::Unauthorized("invalid, revoked or expired token")),
            Err(e) => {
                tracing::error!(error = %e, "checking an access token failed");
                Err(ApiError::Internal)
            }
        }
    }
}

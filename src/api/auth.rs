//! Management API authentication: `Authorization: Bearer <token>`, where the token is either the
//! root token from `BURNCLOUD_ADMIN_TOKEN` ([`AdminAuth`], `/api/admin/*`; compared as SHA-256
//! digests in constant time) or a user's personal access token ([`TokenUser`], `/api/me/*`;
//! looked up by hash, refused when revoked, expired or its user disabled).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::services::access_tokens;
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

/// A request made with the root admin token.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.config().admin_token.as_ref() else {
            return Err(ApiError::Unauthorized("the management API is disabled: set BURNCLOUD_ADMIN_TOKEN"));
        };
        let presented = bearer(parts).ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let a = Sha256::digest(presented.as_bytes());
        let b = Sha256::digest(expected.expose().as_bytes());
        let same = a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same { Ok(AdminAuth) } else { Err(ApiError::Unauthorized("invalid token")) }
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

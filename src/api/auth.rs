//! Management API authentication: `Authorization: Bearer <token>`, where the token is the root
//! token from `BURNCLOUD_ADMIN_TOKEN`. Compared as SHA-256 digests in constant time.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::state::AppState;

/// A request made with the root admin token.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.config().admin_token.as_ref() else {
            return Err(ApiError::Unauthorized("the management API is disabled: set BURNCLOUD_ADMIN_TOKEN"));
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let a = Sha256::digest(presented.as_bytes());
        let b = Sha256::digest(expected.expose().as_bytes());
        let same = a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        if same { Ok(AdminAuth) } else { Err(ApiError::Unauthorized("invalid token")) }
    }
}

//! Personal access tokens: a user creates (shown once, stored hashed), lists and revokes them;
//! `/api/me` authenticates with them. A token is refused once revoked (deleted), past its
//! expiry, or when its user is disabled. No HTTP here.

use serde::Serialize;

use crate::db::access_tokens;
use crate::domain::access_token;
use crate::domain::time::now_ms;
use crate::services::keys::valid_name;
use crate::services::users::UserError;
use crate::state::AppState;

/// Tokens a user may hold at once.
pub const MAX_PER_USER: i64 = 20;
/// The last use is stamped at most this often (a busy script does not write on every call).
const TOUCH_EVERY_MS: i64 = 60_000;

/// A token as its owner sees it (never the secret).
#[derive(Debug, Serialize)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    /// The first characters, e.g. `bct_AbC…`.
    pub prefix: String,
    pub expires_at: Option<i64>,
    pub expired: bool,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

/// Creates a token; the secret is returned once.
pub async fn create(
    state: &AppState,
    user_id: i64,
    name: &str,
    expires_at: Option<i64>,
) -> Result<(i64, String), UserError> {
    let name = valid_name(name)?;
    if expires_at.is_some_and(|t| t <= now_ms()) {
        return Err(UserError::Invalid("expires_at: must be in the future".into()));
    }
    if access_tokens::count_for_user(state.db().pool(), user_id).await? >= MAX_PER_USER {
        return Err(UserError::Invalid(format!("at most {MAX_PER_USER} tokens: revoke one first")));
    }
    let token = access_token::generate();
    let id = access_tokens::insert(state.db().writer(), user_id, &name, &token.hash, &token.prefix, expires_at).await?;
    Ok((id, token.secret))
}

/// The user's tokens, newest first.
pub async fn list(state: &AppState, user_id: i64) -> Result<Vec<TokenView>, UserError> {
    let now = now_ms();
    Ok(access_tokens::list_for_user(state.db().pool(), user_id)
        .await?
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            expired: t.expires_at.is_some_and(|e| e <= now),
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            created_at: t.created_at,
        })
        .collect())
}

/// Revokes (deletes) one of the user's tokens; another user's token is `NotFound`.
pub async fn revoke(state: &AppState, user_id: i64, id: i64) -> Result<(), UserError> {
    if access_tokens::delete_owned(state.db().writer(), id, user_id).await? { Ok(()) } else { Err(UserError::NotFound) }
}

/// Revokes every token of the user (a password change or reset that asks for it: whoever knew
/// the old password may have made one); how many there were. Effective at once: tokens are
/// checked against the database on every call.
pub async fn revoke_all(state: &AppState, user_id: i64) -> Result<u64, sqlx::Error> {
    let revoked = access_tokens::delete_for_user(state.db().writer(), user_id).await?;
    if revoked > 0 {
        tracing::info!(user = user_id, revoked, "access tokens revoked with a password change");
    }
    Ok(revoked)
}

/// The user a presented token acts for, if it is valid: known, not expired, its user active.
/// Stamps its last use.
pub async fn authenticate(state: &AppState, secret: &str) -> Result<Option<i64>, sqlx::Error> {
    if !secret.starts_with(access_token::PREFIX) {
        return Ok(None);
    }
    let Some(grant) = access_tokens::grant_by_hash(state.db().pool(), &access_token::hash(secret)).await? else {
        return Ok(None);
    };
    let now = now_ms();
    if grant.expires_at.is_some_and(|t| t <= now) || grant.user_status != "active" {
        return Ok(None);
    }
    if grant.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
        access_tokens::touch(state.db().writer(), grant.id, now).await?;
    }
    Ok(Some(grant.user_id))
}

//! Queries on `email_tokens`: single-use, expiring links sent by email (verify an address,
//! reset a password, confirm a new address). Only the SHA-256 of a token is stored.

use sqlx::{Any, Executor, Row};

use crate::domain::time::now_ms;

/// What a token is for (`email_tokens.purpose`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    ChangeEmail,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
        }
    }
}

/// A claimed token: whose it was, and the new address for an email change.
pub struct Claimed {
    pub user_id: i64,
    pub new_email: Option<String>,
}

pub async fn insert<'e>(
    db: impl Executor<'e, Database = Any>,
    token_hash: &str,
    user_id: i64,
    purpose: Purpose,
    new_email: Option<&str>,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, new_email, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(new_email)
    .bind(expires_at)
    .bind(now_ms())
    .execute(db)
    .await
    .map(|_| ())
}

/// The unused, unexpired token's owner, without using it (to show the right page).
pub async fn peek<'e>(
    db: impl Executor<'e, Database = Any>,
    token_hash: &str,
    purpose: Purpose,
) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query(
        "SELECT user_id, new_email FROM email_tokens \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now_ms())
    .fetch_optional(db)
    .await?
    .map(|row| Ok(Claimed { user_id: row.try_get("user_id")?, new_email: row.try_get("new_email")? }))
    .transpose()
}

/// Uses the token: one conditional UPDATE, so of any number of concurrent uses exactly one
/// gets the owner back; a used or expired token gives `None`.
pub async fn claim<'e>(
    db: impl Executor<'e, Database = Any>,
    token_hash: &str,
    purpose: Purpose,
) -> Result<Option<Claimed>, sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE email_tokens SET used_at = $3 \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 \
         RETURNING user_id, new_email",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(db)
    .await?
    .map(|row| Ok(Claimed { user_id: row.try_get("user_id")?, new_email: row.try_get("new_email")? }))
    .transpose()
}

/// Retires every other open token of the user for this purpose (a newer link, or one used).
pub async fn retire_all<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
    purpose: Purpose,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE email_tokens SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(now_ms())
        .execute(db)
        .await
        .map(|_| ())
}

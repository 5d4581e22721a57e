//! Queries on `access_tokens`: users' personal access tokens for `/api/me` (stored hashed).

use sqlx::{Any, Executor, Row};

use crate::domain::time::now_ms;

/// A token as its owner sees it (never the secret: only the prefix).
pub struct TokenListing {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

pub async fn insert<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
    name: &str,
    hash: &str,
    prefix: &str,
    expires_at: Option<i64>,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO access_tokens (user_id, name, token_hash, token_prefix, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(user_id)
    .bind(name)
    .bind(hash)
    .bind(prefix)
    .bind(expires_at)
    .bind(now_ms())
    .fetch_one(db)
    .await?
    .try_get("id")
}

/// The user's tokens, newest first.
pub async fn list_for_user<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
) -> Result<Vec<TokenListing>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, token_prefix, expires_at, last_used_at, created_at FROM access_tokens \
         WHERE user_id = $1 ORDER BY id DESC",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenListing {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                prefix: r.try_get("token_prefix")?,
                expires_at: r.try_get("expires_at")?,
                last_used_at: r.try_get("last_used_at")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

pub async fn count_for_user<'e>(db: impl Executor<'e, Database = Any>, user_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM access_tokens WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(db)
        .await?
        .try_get("n")
}

/// Deletes the token if it is the user's; false otherwise (missing or someone else's).
pub async fn delete_owned<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
    user_id: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM access_tokens WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes every token of the user; how many there were.
pub async fn delete_for_user<'e>(db: impl Executor<'e, Database = Any>, user_id: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM access_tokens WHERE user_id = $1").bind(user_id).execute(db).await?.rows_affected())
}

/// What authenticating a token needs, read in one query (token joined with its user).
pub struct TokenGrant {
    pub id: i64,
    pub user_id: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub user_status: String,
}

pub async fn grant_by_hash<'e>(
    db: impl Executor<'e, Database = Any>,
    hash: &str,
) -> Result<Option<TokenGrant>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT t.id, t.user_id, t.expires_at, t.last_used_at, u.status FROM access_tokens t \
         JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(TokenGrant {
            id: r.try_get("id")?,
            user_id: r.try_get("user_id")?,
            expires_at: r.try_get("expires_at")?,
            last_used_at: r.try_get("last_used_at")?,
            user_status: r.try_get("status")?,
        })
    })
    .transpose()
}

/// Stamps the token's last use.
pub async fn touch<'e>(db: impl Executor<'e, Database = Any>, id: i64, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE access_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

//! Queries on `settings` (key → text value).

use sqlx::{Any, Executor, Row};

use crate::domain::time::now_ms;

pub async fn set<'e>(db: impl Executor<'e, Database = Any>, key: &str, value: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3",
    )
    .bind(key)
    .bind(value)
    .bind(now_ms())
    .execute(db)
    .await
    .map(|_| ())
}

/// Every setting whose key starts with `prefix`.
pub async fn with_prefix<'e>(
    db: impl Executor<'e, Database = Any>,
    prefix: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT key, value FROM settings WHERE key LIKE $1")
        .bind(format!("{prefix}%"))
        .fetch_all(db)
        .await?;
    let mut found = Vec::new();
    for row in rows {
        let key: String = row.try_get("key")?;
        // LIKE treats `_` and `%` in the prefix as wildcards: keep exact matches only.
        if key.starts_with(prefix) {
            found.push((key, row.try_get("value")?));
        }
    }
    Ok(found)
}

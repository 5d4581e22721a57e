//! Queries for the low-balance email: who is below the threshold and not yet told, and re-arming
//! those whose balance is back.

use sqlx::{Any, Executor, Row};

/// Clears the "told" mark of users at or above `threshold` (every user when it is 0: off).
pub async fn rearm<'e>(db: impl Executor<'e, Database = Any>, threshold: i64) -> Result<u64, sqlx::Error> {
    let query = if threshold > 0 {
        sqlx::query(
            "UPDATE users SET low_balance_notified_at = NULL \
             WHERE low_balance_notified_at IS NOT NULL AND balance >= $1",
        )
        .bind(threshold)
    } else {
        sqlx::query("UPDATE users SET low_balance_notified_at = NULL WHERE low_balance_notified_at IS NOT NULL")
    };
    Ok(query.execute(db).await?.rows_affected())
}

/// Marks active users below `threshold` and not yet told as told now, and returns their
/// addresses: one statement, so two replicas never both claim a user. Accounts that never had
/// money (no ledger row) are left alone: their balance did not fall.
pub async fn claim<'e>(
    db: impl Executor<'e, Database = Any>,
    threshold: i64,
    now: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE users SET low_balance_notified_at = $2 \
         WHERE balance < $1 AND low_balance_notified_at IS NULL AND status = 'active' \
         AND EXISTS (SELECT 1 FROM ledger WHERE ledger.user_id = users.id) \
         RETURNING id, email",
    )
    .bind(threshold)
    .bind(now)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("email")?))).collect()
}

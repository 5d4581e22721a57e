//! Queries on `channel_keys`: the state of each upstream key of a channel, by fingerprint (a key
//! without a row is active). The keys themselves live encrypted in `channels`.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::domain::time::now_ms;

/// One key's stored state.
#[derive(Clone, Debug)]
pub struct KeyStateRow {
    pub channel_id: i64,
    pub fingerprint: String,
    /// `active`, `auto_disabled` or `manually_disabled`.
    pub status: String,
    pub reason: Option<String>,
    pub changed_at: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub tested_at: Option<i64>,
    pub test_latency_ms: Option<i64>,
}

impl KeyStateRow {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

const COLUMNS: &str =
    "channel_id, fingerprint, status, reason, changed_at, last_error, last_error_at, tested_at, test_latency_ms";

fn from_row(row: &AnyRow) -> Result<KeyStateRow, sqlx::Error> {
    Ok(KeyStateRow {
        channel_id: row.try_get("channel_id")?,
        fingerprint: row.try_get("fingerprint")?,
        status: row.try_get("status")?,
        reason: row.try_get("reason")?,
        changed_at: row.try_get("changed_at")?,
        last_error: row.try_get("last_error")?,
        last_error_at: row.try_get("last_error_at")?,
        tested_at: row.try_get("tested_at")?,
        test_latency_ms: row.try_get("test_latency_ms")?,
    })
}

/// Every stored key state (the routing snapshot reads them all at once).
pub async fn all<'e>(db: impl Executor<'e, Database = Any>) -> Result<Vec<KeyStateRow>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM channel_keys")).fetch_all(db).await?;
    rows.iter().map(from_row).collect()
}

/// The stored key states of one channel.
pub async fn of_channel<'e>(
    db: impl Executor<'e, Database = Any>,
    channel_id: i64,
) -> Result<Vec<KeyStateRow>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM channel_keys WHERE channel_id = $1"))
        .bind(channel_id)
        .fetch_all(db)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Disables an active key automatically (with its reason, also its last error); false when it
/// was already disabled (by hand or by another request), so the caller acts on the event once.
pub async fn auto_disable(
    conn: &mut AnyConnection,
    channel_id: i64,
    fingerprint: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO channel_keys (channel_id, fingerprint, status, reason, changed_at, last_error, last_error_at) \
         VALUES ($1, $2, 'auto_disabled', $3, $4, $3, $4) \
         ON CONFLICT (channel_id, fingerprint) DO UPDATE SET status = 'auto_disabled', reason = excluded.reason, \
         changed_at = excluded.changed_at, last_error = excluded.last_error, last_error_at = excluded.last_error_at \
         WHERE channel_keys.status = 'active'",
    )
    .bind(channel_id)
    .bind(fingerprint)
    .bind(reason)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets a key's status by hand (`active` or `manually_disabled`); the reason is cleared.
pub async fn set_status(
    conn: &mut AnyConnection,
    channel_id: i64,
    fingerprint: &str,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO channel_keys (channel_id, fingerprint, status, changed_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (channel_id, fingerprint) DO UPDATE SET status = excluded.status, reason = NULL, \
         changed_at = excluded.changed_at",
    )
    .bind(channel_id)
    .bind(fingerprint)
    .bind(status)
    .bind(now_ms())
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Re-enables a key that was disabled automatically (not one disabled by hand); true when it was.
pub async fn reenable_auto_disabled(
    conn: &mut AnyConnection,
    channel_id: i64,
    fingerprint: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE channel_keys SET status = 'active', reason = NULL, changed_at = $1 \
         WHERE channel_id = $2 AND fingerprint = $3 AND status = 'auto_disabled'",
    )
    .bind(now_ms())
    .bind(channel_id)
    .bind(fingerprint)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a key's probe: its latency when it passed, else its error.
pub async fn record_test(
    conn: &mut AnyConnection,
    channel_id: i64,
    fingerprint: &str,
    outcome: Result<i64, &str>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let (latency, error) = match outcome {
        Ok(ms) => (Some(ms), None),
        Err(e) => (None, Some(e)),
    };
    sqlx::query(
        "INSERT INTO channel_keys (channel_id, fingerprint, changed_at, tested_at, test_latency_ms, last_error, \
         last_error_at) VALUES ($1, $2, $3, $3, $4, $5, $6) \
         ON CONFLICT (channel_id, fingerprint) DO UPDATE SET tested_at = excluded.tested_at, \
         test_latency_ms = COALESCE(excluded.test_latency_ms, channel_keys.test_latency_ms), \
         last_error = COALESCE(excluded.last_error, channel_keys.last_error), \
         last_error_at = COALESCE(excluded.last_error_at, channel_keys.last_error_at)",
    )
    .bind(channel_id)
    .bind(fingerprint)
    .bind(now)
    .bind(latency)
    .bind(error)
    .bind(error.map(|_| now))
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Forgets the states of keys the channel no longer holds.
pub async fn prune(conn: &mut AnyConnection, channel_id: i64, kept: &[String]) -> Result<(), sqlx::Error> {
    for row in of_channel(&mut *conn, channel_id).await? {
        if !kept.contains(&row.fingerprint) {
            sqlx::query("DELETE FROM channel_keys WHERE channel_id = $1 AND fingerprint = $2")
                .bind(channel_id)
                .bind(&row.fingerprint)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

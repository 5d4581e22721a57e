//! Queries on `channels` and the `abilities` derived from them.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use super::AnyQuery;
use crate::domain::time::now_ms;

/// A channel row as stored (keys still encrypted, JSON columns as text).
#[derive(Clone, Debug)]
pub struct ChannelRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub keys_encrypted: Vec<u8>,
    pub models: String,
    pub model_mapping: String,
    pub groups: String,
    pub priority: i64,
    pub weight: i64,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub config: String,
    pub test_latency_ms: Option<i64>,
    pub tested_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Spend routed through the channel, nano-units.
    pub used_amount: i64,
}

/// The writable columns of a channel.
pub struct ChannelWrite<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub base_url: &'a str,
    pub keys_encrypted: &'a [u8],
    pub models: &'a str,
    pub model_mapping: &'a str,
    pub groups: &'a str,
    pub priority: i64,
    pub weight: i64,
    pub status: &'a str,
    pub config: &'a str,
}

const COLUMNS: &str = "id, name, type, base_url, keys_encrypted, models, model_mapping, groups, priority, weight, \
                       status, disabled_reason, config, test_latency_ms, tested_at, created_at, updated_at, \
                       last_error, last_error_at, used_amount";

fn from_row(row: &AnyRow) -> Result<ChannelRow, sqlx::Error> {
    Ok(ChannelRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("type")?,
        base_url: row.try_get("base_url")?,
        keys_encrypted: row.try_get("keys_encrypted")?,
        models: row.try_get("models")?,
        model_mapping: row.try_get("model_mapping")?,
        groups: row.try_get("groups")?,
        priority: row.try_get("priority")?,
        weight: row.try_get("weight")?,
        status: row.try_get("status")?,
        disabled_reason: row.try_get("disabled_reason")?,
        config: row.try_get("config")?,
        test_latency_ms: row.try_get("test_latency_ms")?,
        tested_at: row.try_get("tested_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_error: row.try_get("last_error")?,
        last_error_at: row.try_get("last_error_at")?,
        used_amount: row.try_get("used_amount")?,
    })
}

pub async fn list<'e>(db: impl Executor<'e, Database = Any>) -> Result<Vec<ChannelRow>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM channels ORDER BY id")).fetch_all(db).await?;
    rows.iter().map(from_row).collect()
}

pub async fn get<'e>(db: impl Executor<'e, Database = Any>, id: i64) -> Result<Option<ChannelRow>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM channels WHERE id = $1")).bind(id).fetch_optional(db).await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn id_by_name<'e>(db: impl Executor<'e, Database = Any>, name: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT id FROM channels WHERE name = $1 ORDER BY id LIMIT 1")
        .bind(name)
        .fetch_optional(db)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()
}

/// Binds the writable columns as `$1`…`$12` (`$12`: now).
fn bind_columns<'q>(query: AnyQuery<'q>, c: &ChannelWrite<'q>) -> AnyQuery<'q> {
    query
        .bind(c.name)
        .bind(c.kind)
        .bind(c.base_url)
        .bind(c.keys_encrypted)
        .bind(c.models)
        .bind(c.model_mapping)
        .bind(c.groups)
        .bind(c.priority)
        .bind(c.weight)
        .bind(c.status)
        .bind(c.config)
        .bind(now_ms())
}

pub async fn insert<'e>(db: impl Executor<'e, Database = Any>, c: &ChannelWrite<'_>) -> Result<i64, sqlx::Error> {
    bind_columns(
        sqlx::query(
            "INSERT INTO channels (name, type, base_url, keys_encrypted, models, model_mapping, groups, priority, weight, \
             status, config, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
        ),
        c,
    )
    .fetch_one(db)
    .await?
    .try_get("id")
}

/// Overwrites every writable column; a status change to enabled clears the disable reason.
pub async fn update<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
    c: &ChannelWrite<'_>,
) -> Result<bool, sqlx::Error> {
    let done = bind_columns(
        sqlx::query(
            "UPDATE channels SET name = $1, type = $2, base_url = $3, keys_encrypted = $4, models = $5, model_mapping = $6, \
             groups = $7, priority = $8, weight = $9, config = $11, updated_at = $12, \
             disabled_reason = CASE WHEN $10 = 'enabled' THEN NULL ELSE disabled_reason END, \
             disabled_at = CASE WHEN $10 = 'enabled' THEN NULL ELSE disabled_at END, \
             status = $10 WHERE id = $13",
        ),
        c,
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete<'e>(db: impl Executor<'e, Database = Any>, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM channels WHERE id = $1").bind(id).execute(db).await?;
    Ok(done.rows_affected() == 1)
}

/// Disables an enabled channel automatically; returns false when it was not enabled (already
/// disabled by hand or by another request), so the caller acts on the event once.
pub async fn auto_disable(conn: &mut AnyConnection, id: i64, reason: &str) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE channels SET status = 'auto_disabled', disabled_reason = $1, disabled_at = $2, updated_at = $2, \
         last_error = $1, last_error_at = $2 \
         WHERE id = $3 AND status = 'enabled'",
    )
    .bind(reason)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    set_abilities_enabled(conn, id, false).await?;
    Ok(done.rows_affected() == 1)
}

/// Re-enables a channel that was disabled automatically (not one disabled by hand).
pub async fn reenable_auto_disabled(conn: &mut AnyConnection, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE channels SET status = 'enabled', disabled_reason = NULL, disabled_at = NULL, updated_at = $1 \
         WHERE id = $2 AND status = 'auto_disabled'",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        set_abilities_enabled(conn, id, true).await?;
    }
    Ok(done.rows_affected() == 1)
}

/// Records the latency of a successful probe.
pub async fn record_test<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
    latency_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE channels SET test_latency_ms = $1, tested_at = $2 WHERE id = $3")
        .bind(latency_ms)
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

/// Records a failed probe (the channel's last error).
pub async fn record_error<'e>(db: impl Executor<'e, Database = Any>, id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE channels SET last_error = $1, last_error_at = $2 WHERE id = $3")
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

/// Replaces a channel's abilities with one row per group × model.
pub async fn replace_abilities(
    conn: &mut AnyConnection,
    channel_id: i64,
    groups: &[String],
    models: &[String],
    priority: i64,
    weight: i64,
    enabled: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM abilities WHERE channel_id = $1").bind(channel_id).execute(&mut *conn).await?;
    for group in groups {
        for model in models {
            sqlx::query(
                "INSERT INTO abilities (group_name, model, channel_id, priority, weight, enabled) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (group_name, model, channel_id) DO NOTHING",
            )
            .bind(group)
            .bind(model)
            .bind(channel_id)
            .bind(priority)
            .bind(weight)
            .bind(i64::from(enabled))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn set_abilities_enabled(conn: &mut AnyConnection, channel_id: i64, enabled: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE abilities SET enabled = $1 WHERE channel_id = $2")
        .bind(i64::from(enabled))
        .bind(channel_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// One ability: a channel serving a model for a group.
pub struct AbilityRow {
    pub group: String,
    pub model: String,
    pub channel_id: i64,
    pub priority: i64,
    pub weight: i64,
    pub enabled: bool,
}

/// Every ability, enabled or not (a disabled one still says the model exists for the group).
pub async fn abilities<'e>(db: impl Executor<'e, Database = Any>) -> Result<Vec<AbilityRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT group_name, model, channel_id, priority, weight, enabled FROM abilities")
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AbilityRow {
                group: r.try_get("group_name")?,
                model: r.try_get("model")?,
                channel_id: r.try_get("channel_id")?,
                priority: r.try_get("priority")?,
                weight: r.try_get("weight")?,
                enabled: r.try_get::<i64, _>("enabled")? == 1,
            })
        })
        .collect()
}

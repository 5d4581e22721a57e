//! Queries on `request_logs`: one row per gateway request.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::sql_builder::SqlBuilder;
use crate::domain::pricing::Usage;

/// A finished request, as logged.
#[derive(Clone, Debug, Default)]
pub struct RequestLog {
    pub request_id: String,
    pub created_at: i64,
    pub user_id: i64,
    pub api_key_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub endpoint: String,
    pub requested_model: String,
    pub upstream_model: String,
    pub usage: Usage,
    pub cost: i64,
    pub status_code: i64,
    pub error_class: Option<String>,
    pub latency_ms: i64,
    pub ttfb_ms: Option<i64>,
    pub is_stream: bool,
    pub attempts: i64,
    pub client_ip: Option<String>,
    /// The settlement's unique key (gateway requests): a retried settlement finds it and is not
    /// written, or charged, twice.
    pub settle_key: Option<String>,
}

const COLUMNS: &str = "request_id, created_at, user_id, api_key_id, channel_id, endpoint, requested_model, \
    upstream_model, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost, \
    status_code, error_class, latency_ms, ttfb_ms, is_stream, attempts, client_ip, settle_key";
const WIDTH: usize = 22;

/// The settlements among `keys` already written, with what each charged.
pub async fn settled(conn: &mut AnyConnection, keys: &[&str]) -> Result<HashMap<String, i64>, sqlx::Error> {
    let mut done = HashMap::new();
    for chunk in keys.chunks(64) {
        let mut b = SqlBuilder::new("SELECT settle_key, cost FROM request_logs WHERE settle_key IN (");
        for (i, key) in chunk.iter().enumerate() {
            b.push(if i == 0 { "" } else { ", " }).push_bind(*key);
        }
        b.push(")");
        for row in b.build().fetch_all(&mut *conn).await? {
            done.insert(row.try_get("settle_key")?, row.try_get("cost")?);
        }
    }
    Ok(done)
}

/// Inserts many rows in few statements (group commit).
pub async fn insert_many(conn: &mut AnyConnection, logs: &[&RequestLog]) -> Result<(), sqlx::Error> {
    for (chunk, values) in crate::db::insert_chunks(conn, logs, WIDTH) {
        let sql = format!("INSERT INTO request_logs ({COLUMNS}) VALUES {values}");
        let mut query = sqlx::query(&sql);
        for log in chunk {
            query = query
                .bind(&log.request_id)
                .bind(log.created_at)
                .bind(log.user_id)
                .bind(log.api_key_id)
                .bind(log.channel_id)
                .bind(&log.endpoint)
                .bind(&log.requested_model)
                .bind(&log.upstream_model)
                .bind(log.usage.prompt_tokens)
                .bind(log.usage.completion_tokens)
                .bind(log.usage.cached_tokens)
                .bind(log.usage.cache_write_tokens)
                .bind(log.usage.reasoning_tokens)
                .bind(log.cost)
                .bind(log.status_code)
                .bind(log.error_class.as_deref())
                .bind(log.latency_ms)
                .bind(log.ttfb_ms)
                .bind(i64::from(log.is_stream))
                .bind(log.attempts)
                .bind(log.client_ip.as_deref())
                .bind(log.settle_key.as_deref());
        }
        query.execute(&mut *conn).await?;
    }
    // The channels' used amounts follow in the same transaction: one update per channel.
    let mut per_channel: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    for log in logs.iter().filter(|l| l.cost != 0) {
        if let Some(channel) = log.channel_id {
            *per_channel.entry(channel).or_default() += log.cost;
        }
    }
    for (channel, cost) in per_channel {
        sqlx::query("UPDATE channels SET used_amount = used_amount + $1 WHERE id = $2")
            .bind(cost)
            .bind(channel)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn insert(conn: &mut AnyConnection, log: &RequestLog) -> Result<(), sqlx::Error> {
    insert_many(conn, &[log]).await
}

/// What a user may filter their usage log by.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub model: Option<String>,
    pub key_id: Option<i64>,
    /// `Some(true)`: only failures (status ≥ 400); `Some(false)`: only successes.
    pub failed: Option<bool>,
    /// Unix ms, inclusive / exclusive.
    pub from: Option<i64>,
    pub until: Option<i64>,
    /// Rows older than this id (keyset pagination).
    pub before_id: Option<i64>,
}

/// One row of a user's usage log.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub id: i64,
    pub created_at: i64,
    pub key_id: Option<i64>,
    pub key_name: Option<String>,
    pub model: String,
    pub endpoint: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: i64,
    pub status_code: i64,
    pub error_class: Option<String>,
    pub latency_ms: i64,
    pub is_stream: bool,
}

/// The columns every log listing selects first, in [`LogRow::decode`]'s order.
pub(crate) const LOG_ROW_COLUMNS: &str = "l.id, l.created_at, k.name AS key_name, l.requested_model, l.endpoint, \
    l.prompt_tokens, l.completion_tokens, l.cost, l.status_code, l.error_class, l.latency_ms, l.is_stream, l.api_key_id";

impl LogRow {
    /// Reads the first columns of a row selected with [`LOG_ROW_COLUMNS`].
    pub(crate) fn decode(r: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            id: r.try_get("id")?,
            created_at: r.try_get("created_at")?,
            key_name: r.try_get("key_name")?,
            model: r.try_get("requested_model")?,
            endpoint: r.try_get("endpoint")?,
            prompt_tokens: r.try_get("prompt_tokens")?,
            completion_tokens: r.try_get("completion_tokens")?,
            cost: r.try_get("cost")?,
            status_code: r.try_get("status_code")?,
            error_class: r.try_get("error_class")?,
            latency_ms: r.try_get("latency_ms")?,
            is_stream: r.try_get::<i64, _>("is_stream")? != 0,
            key_id: r.try_get("api_key_id")?,
        })
    }
}

/// The user's log rows matching `filter`, newest first, at most `limit`. Only ever this user's.
pub async fn list_for_user<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    filter: &LogFilter,
    limit: i64,
) -> Result<Vec<LogRow>, sqlx::Error> {
    let mut b = SqlBuilder::new(format!(
        "SELECT {LOG_ROW_COLUMNS} FROM request_logs l LEFT JOIN api_keys k ON k.id = l.api_key_id WHERE l.user_id = "
    ));
    b.push_bind(user_id);
    push_filter(&mut b, filter);
    b.push(" ORDER BY l.id DESC LIMIT ").push_bind(limit);
    let rows = b.build().fetch_all(db).await?;
    rows.iter().map(LogRow::decode).collect()
}

/// The user's spend and requests per UTC day since `since_ms`: `(day number since the epoch,
/// cost, requests)`, oldest first.
pub async fn daily_totals<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    since_ms: i64,
) -> Result<Vec<(i64, i64, i64)>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT created_at / 86400000 AS day, CAST(SUM(cost) AS BIGINT) AS cost_sum, CAST(COUNT(*) AS BIGINT) AS requests \
         FROM request_logs WHERE user_id = $1 AND created_at >= $2 GROUP BY created_at / 86400000 ORDER BY day",
    )
    .bind(user_id)
    .bind(since_ms)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("day")?, r.try_get("cost_sum")?, r.try_get("requests")?))).collect()
}

/// The user's requests per minute since `since_ms`: `(minute number since the epoch, requests)`,
/// oldest first. (Reads the `(user_id, created_at)` index range.)
pub async fn requests_per_minute<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    since_ms: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT created_at / 60000 AS minute, CAST(COUNT(*) AS BIGINT) AS requests \
         FROM request_logs WHERE user_id = $1 AND created_at >= $2 GROUP BY created_at / 60000 ORDER BY minute",
    )
    .bind(user_id)
    .bind(since_ms)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("minute")?, r.try_get("requests")?))).collect()
}

/// The user's input and output tokens per requested model since `since_ms`, the `limit` models
/// with the most tokens first: `(model, input tokens, output tokens)`.
pub async fn tokens_by_model<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT requested_model, CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_sum, CAST(SUM(completion_tokens) AS BIGINT) AS completion_sum \
         FROM request_logs WHERE user_id = $1 AND created_at >= $2 GROUP BY requested_model \
         ORDER BY SUM(prompt_tokens) + SUM(completion_tokens) DESC, requested_model LIMIT $3",
    )
    .bind(user_id)
    .bind(since_ms)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("requested_model")?, r.try_get("prompt_sum")?, r.try_get("completion_sum")?)))
        .collect()
}

/// Appends `filter`'s conditions on `request_logs l`, each value bound to its own placeholder
/// (the user's and the site-wide log share it).
pub(crate) fn push_filter(b: &mut SqlBuilder, filter: &LogFilter) {
    if let Some(model) = &filter.model {
        b.push(" AND l.requested_model = ").push_bind(model.as_str());
    }
    if let Some(key) = filter.key_id {
        b.push(" AND l.api_key_id = ").push_bind(key);
    }
    match filter.failed {
        Some(true) => {
            b.push(" AND l.status_code >= 400");
        }
        Some(false) => {
            b.push(" AND l.status_code < 400");
        }
        None => {}
    }
    if let Some(from) = filter.from {
        b.push(" AND l.created_at >= ").push_bind(from);
    }
    if let Some(until) = filter.until {
        b.push(" AND l.created_at < ").push_bind(until);
    }
    if let Some(before) = filter.before_id {
        b.push(" AND l.id < ").push_bind(before);
    }
}

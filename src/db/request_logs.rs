//! Queries on `request_logs`: one row per gateway request.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

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
        let list = (1..=chunk.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT settle_key, cost FROM request_logs WHERE settle_key IN ({list})");
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = query.bind(*key);
        }
        for row in query.fetch_all(&mut *conn).await? {
            done.insert(row.try_get(0)?, row.try_get(1)?);
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
pub(crate) const LOG_ROW_COLUMNS: &str = "l.id, l.created_at, k.name, l.requested_model, l.endpoint, \
    l.prompt_tokens, l.completion_tokens, l.cost, l.status_code, l.error_class, l.latency_ms, l.is_stream, l.api_key_id";

impl LogRow {
    /// Reads the first columns of a row selected with [`LOG_ROW_COLUMNS`].
    pub(crate) fn decode(r: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            id: r.try_get(0)?,
            created_at: r.try_get(1)?,
            key_name: r.try_get(2)?,
            model: r.try_get(3)?,
            endpoint: r.try_get(4)?,
            prompt_tokens: r.try_get(5)?,
            completion_tokens: r.try_get(6)?,
            cost: r.try_get(7)?,
            status_code: r.try_get(8)?,
            error_class: r.try_get(9)?,
            latency_ms: r.try_get(10)?,
            is_stream: r.try_get::<i64, _>(11)? != 0,
            key_id: r.try_get(12)?,
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
    let mut sql = format!(
        "SELECT {LOG_ROW_COLUMNS} FROM request_logs l LEFT JOIN api_keys k ON k.id = l.api_key_id WHERE l.user_id = $1"
    );
    let mut n = 1;
    push_filter(&mut sql, &mut n, filter);
    n += 1;
    sql.push_str(&format!(" ORDER BY l.id DESC LIMIT ${n}"));
    let query = bind_filter(sqlx::query(&sql).bind(user_id), filter);
    let rows = query.bind(limit).fetch_all(db).await?;
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
        "SELECT created_at / 86400000 AS day, CAST(SUM(cost) AS BIGINT), CAST(COUNT(*) AS BIGINT) \
         FROM request_logs WHERE user_id = $1 AND created_at >= $2 GROUP BY created_at / 86400000 ORDER BY day",
    )
    .bind(user_id)
    .bind(since_ms)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
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
        "SELECT created_at / 60000 AS minute, CAST(COUNT(*) AS BIGINT) \
         FROM request_logs WHERE user_id = $1 AND created_at >= $2 GROUP BY created_at / 60000 ORDER BY minute",
    )
    .bind(user_id)
    .bind(since_ms)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
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
        "SELECT requested_model, CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT) \
         FROM request_logs WHERE user_id = $1 AND created_at >= $2 GROUP BY requested_model \
         ORDER BY SUM(prompt_tokens) + SUM(completion_tokens) DESC, requested_model LIMIT $3",
    )
    .bind(user_id)
    .bind(since_ms)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
}

/// Appends `filter`'s conditions on `request_logs l` to `sql`, numbering placeholders after `n`
/// (the user's and the site-wide log share it; [`bind_filter`] binds in the same order).
pub(crate) fn push_filter(sql: &mut String, n: &mut usize, filter: &LogFilter) {
    let mut next = |clause: &str| {
        *n += 1;
        format!(" AND {}", clause.replace('?', &format!("${n}")))
    };
    if filter.model.is_some() {
        sql.push_str(&next("l.requested_model = ?"));
    }
    if filter.key_id.is_some() {
        sql.push_str(&next("l.api_key_id = ?"));
    }
    match filter.failed {
        Some(true) => sql.push_str(" AND l.status_code >= 400"),
        Some(false) => sql.push_str(" AND l.status_code < 400"),
        None => {}
    }
    if filter.from.is_some() {
        sql.push_str(&next("l.created_at >= ?"));
    }
    if filter.until.is_some() {
        sql.push_str(&next("l.created_at < ?"));
    }
    if filter.before_id.is_some() {
        sql.push_str(&next("l.id < ?"));
    }
}

/// Binds `filter`'s values for the conditions [`push_filter`] wrote.
pub(crate) fn bind_filter<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    filter: &LogFilter,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    if let Some(model) = &filter.model {
        query = query.bind(model.clone());
    }
    if let Some(key) = filter.key_id {
        query = query.bind(key);
    }
    for value in [filter.from, filter.until, filter.before_id].into_iter().flatten() {
        query = query.bind(value);
    }
    query
}

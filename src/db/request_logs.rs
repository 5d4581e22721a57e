//! Queries on `request_logs`: one row per gateway request.

use sqlx::AnyConnection;

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
}

const COLUMNS: &str = "request_id, created_at, user_id, api_key_id, channel_id, endpoint, requested_model, \
    upstream_model, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost, \
    status_code, error_class, latency_ms, ttfb_ms, is_stream, attempts, client_ip";
const WIDTH: usize = 21;

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
                .bind(log.client_ip.as_deref());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

pub async fn insert(conn: &mut AnyConnection, log: &RequestLog) -> Result<(), sqlx::Error> {
    insert_many(conn, &[log]).await
}

//! Aggregates of `request_logs` for the operator's monitoring (`/admin`, `/metrics`): every
//! query reads a `created_at` range (the `(created_at)` index) and sums in SQL; latency
//! percentiles come from a bounded sample of the newest rows, computed by the caller.

use sqlx::{Any, Executor, Row};

/// Sums over a set of requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: i64,
}

/// The sum columns of [`Totals`], in order, for a `SELECT`.
const SUMS: &str = "CAST(COUNT(*) AS BIGINT) AS requests, \
    CAST(COALESCE(SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
    CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_sum, \
    CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_sum, \
    CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost_sum";

fn totals(row: &sqlx::any::AnyRow) -> Result<Totals, sqlx::Error> {
    Ok(Totals {
        requests: row.try_get("requests")?,
        errors: row.try_get("errors")?,
        prompt_tokens: row.try_get("prompt_sum")?,
        completion_tokens: row.try_get("completion_sum")?,
        cost: row.try_get("cost_sum")?,
    })
}

/// Totals per time bucket of `bucket_ms` since `since_ms`: `(bucket index from since_ms, totals)`.
pub async fn buckets<'e>(
    db: impl Executor<'e, Database = Any>,
    since_ms: i64,
    bucket_ms: i64,
) -> Result<Vec<(i64, Totals)>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT (created_at - $1) / $2 AS bucket, {SUMS} FROM request_logs WHERE created_at >= $1 \
         GROUP BY (created_at - $1) / $2 ORDER BY bucket"
    ))
    .bind(since_ms)
    .bind(bucket_ms.max(1))
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("bucket")?, totals(r)?))).collect()
}

/// Totals per requested model since `since_ms`, busiest first, at most `limit`.
pub async fn by_model<'e>(
    db: impl Executor<'e, Database = Any>,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<(String, Totals)>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT requested_model, {SUMS} FROM request_logs WHERE created_at >= $1 \
         GROUP BY requested_model ORDER BY COUNT(*) DESC, requested_model LIMIT $2"
    ))
    .bind(since_ms)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("requested_model")?, totals(r)?))).collect()
}

/// Totals per channel since `since_ms` (`None`: requests no channel served), busiest first.
pub async fn by_channel<'e>(
    db: impl Executor<'e, Database = Any>,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<(Option<i64>, Totals)>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT channel_id, {SUMS} FROM request_logs WHERE created_at >= $1 \
         GROUP BY channel_id ORDER BY COUNT(*) DESC, channel_id LIMIT $2"
    ))
    .bind(since_ms)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("channel_id")?, totals(r)?))).collect()
}

/// The newest `limit` requests since `since_ms`: `(model, channel, latency ms)`.
pub async fn latency_sample<'e>(
    db: impl Executor<'e, Database = Any>,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<(String, Option<i64>, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT requested_model, channel_id, latency_ms FROM request_logs WHERE created_at >= $1 \
         ORDER BY created_at DESC LIMIT $2",
    )
    .bind(since_ms)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("requested_model")?, r.try_get("channel_id")?, r.try_get("latency_ms")?)))
        .collect()
}

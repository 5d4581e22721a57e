//! Queries on `model_capabilities`: the operator's capability rows (flags as BIGINT 0/1, NULL =
//! not known). The shipped defaults are not stored; they live in `domain::capabilities`.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::domain::capabilities::Capabilities;
use crate::domain::time::now_ms;

fn flag(row: &AnyRow, index: usize) -> Result<Option<bool>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(index)?.map(|v| v != 0))
}

fn stored(value: Option<bool>) -> Option<i64> {
    value.map(i64::from)
}

/// Every stored row, by model.
pub async fn all<'e>(db: impl Executor<'e, Database = Any>) -> Result<Vec<(String, Capabilities)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT model, max_output_tokens, context_window, reasoning, tools, vision, audio \
         FROM model_capabilities ORDER BY model",
    )
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let caps = Capabilities {
                max_output_tokens: r.try_get("max_output_tokens")?,
                context_window: r.try_get("context_window")?,
                reasoning: flag(r, 3)?,
                tools: flag(r, 4)?,
                vision: flag(r, 5)?,
                audio: flag(r, 6)?,
            };
            Ok((r.try_get("model")?, caps))
        })
        .collect()
}

/// Creates or replaces `model`'s row (every field, unknown ones as NULL).
pub async fn upsert<'e>(
    db: impl Executor<'e, Database = Any>,
    model: &str,
    c: &Capabilities,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO model_capabilities \
         (model, max_output_tokens, context_window, reasoning, tools, vision, audio, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (model) DO UPDATE SET max_output_tokens = $2, context_window = $3, reasoning = $4, \
         tools = $5, vision = $6, audio = $7, updated_at = $8",
    )
    .bind(model)
    .bind(c.max_output_tokens)
    .bind(c.context_window)
    .bind(stored(c.reasoning))
    .bind(stored(c.tools))
    .bind(stored(c.vision))
    .bind(stored(c.audio))
    .bind(now_ms())
    .execute(db)
    .await
    .map(|_| ())
}

/// Removes `model`'s row (it falls back to the shipped default); false when it had none.
pub async fn delete<'e>(db: impl Executor<'e, Database = Any>, model: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM model_capabilities WHERE model = $1").bind(model).execute(db).await?;
    Ok(done.rows_affected() == 1)
}

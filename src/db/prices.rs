//! Queries on `model_prices`, `group_model_prices` and `groups`.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use super::AnyQuery;
use crate::domain::pricing::Price;
use crate::domain::time::now_ms;

const PRICE_COLUMNS: &str = "input_per_mtok, output_per_mtok, cached_input_per_mtok, cache_write_per_mtok, per_request";

fn price_at(row: &AnyRow) -> Result<Price, sqlx::Error> {
    Ok(Price {
        input_per_mtok: row.try_get("input_per_mtok")?,
        output_per_mtok: row.try_get("output_per_mtok")?,
        cached_input_per_mtok: row.try_get("cached_input_per_mtok")?,
        cache_write_per_mtok: row.try_get("cache_write_per_mtok")?,
        per_request: row.try_get("per_request")?,
    })
}

/// Binds the price columns, then the update time, after the key columns already bound.
fn bind_price<'q>(query: AnyQuery<'q>, p: &Price) -> AnyQuery<'q> {
    query
        .bind(p.input_per_mtok)
        .bind(p.output_per_mtok)
        .bind(p.cached_input_per_mtok)
        .bind(p.cache_write_per_mtok)
        .bind(p.per_request)
        .bind(now_ms())
}

pub async fn all_model_prices<'e>(db: impl Executor<'e, Database = Any>) -> Result<Vec<(String, Price)>, sqlx::Error> {
    let rows =
        sqlx::query(&format!("SELECT model, {PRICE_COLUMNS} FROM model_prices ORDER BY model")).fetch_all(db).await?;
    rows.iter().map(|r| Ok((r.try_get("model")?, price_at(r)?))).collect()
}

pub async fn model_price<'e>(db: impl Executor<'e, Database = Any>, model: &str) -> Result<Option<Price>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {PRICE_COLUMNS} FROM model_prices WHERE model = $1"))
        .bind(model)
        .fetch_optional(db)
        .await?;
    row.map(|r| price_at(&r)).transpose()
}

pub async fn upsert_model_price<'e>(
    db: impl Executor<'e, Database = Any>,
    model: &str,
    p: &Price,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO model_prices (model, {PRICE_COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (model) DO UPDATE SET input_per_mtok = $2, output_per_mtok = $3, cached_input_per_mtok = $4, \
         cache_write_per_mtok = $5, per_request = $6, updated_at = $7"
    );
    let query = sqlx::query(&sql).bind(model);
    bind_price(query, p).execute(db).await.map(|_| ())
}

/// Sets a group's own price for a model (used instead of the model price times the multiplier).
pub async fn upsert_group_price<'e>(
    db: impl Executor<'e, Database = Any>,
    group: &str,
    model: &str,
    p: &Price,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO group_model_prices (group_name, model, {PRICE_COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (group_name, model) DO UPDATE SET input_per_mtok = $3, output_per_mtok = $4, cached_input_per_mtok = $5, \
         cache_write_per_mtok = $6, per_request = $7, updated_at = $8"
    );
    let query = sqlx::query(&sql).bind(group).bind(model);
    bind_price(query, p).execute(db).await.map(|_| ())
}

pub async fn all_group_prices<'e>(
    db: impl Executor<'e, Database = Any>,
) -> Result<Vec<(String, String, Price)>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT group_name, model, {PRICE_COLUMNS} FROM group_model_prices"))
        .fetch_all(db)
        .await?;
    rows.iter().map(|r| Ok((r.try_get("group_name")?, r.try_get("model")?, price_at(r)?))).collect()
}

/// A group and its price multiplier (parts per million).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRow {
    pub name: String,
    pub description: String,
    pub multiplier_ppm: i64,
}

pub async fn all_groups<'e>(db: impl Executor<'e, Database = Any>) -> Result<Vec<GroupRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT name, description, multiplier_ppm FROM groups ORDER BY name").fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            Ok(GroupRow {
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                multiplier_ppm: r.try_get("multiplier_ppm")?,
            })
        })
        .collect()
}

pub async fn group<'e>(db: impl Executor<'e, Database = Any>, name: &str) -> Result<Option<GroupRow>, sqlx::Error> {
    let row = sqlx::query("SELECT name, description, multiplier_ppm FROM groups WHERE name = $1")
        .bind(name)
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        Ok(GroupRow {
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            multiplier_ppm: r.try_get("multiplier_ppm")?,
        })
    })
    .transpose()
}

pub async fn upsert_group<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
    description: Option<&str>,
    multiplier_ppm: i64,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO groups (name, description, multiplier_ppm, created_at, updated_at) VALUES ($1, COALESCE($2, ''), $3, $4, $4) \
         ON CONFLICT (name) DO UPDATE SET multiplier_ppm = $3, description = COALESCE($2, groups.description), updated_at = $4",
    )
    .bind(name)
    .bind(description)
    .bind(multiplier_ppm)
    .bind(now)
    .execute(db)
    .await
    .map(|_| ())
}

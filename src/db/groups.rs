//! Queries on `groups` beyond the price multiplier (in `prices`): the models a group may use,
//! its members count, deletion, and removing prices.

use sqlx::{Any, Executor, Row};

/// A group as the operator's pages show it.
#[derive(Clone, Debug)]
pub struct GroupListing {
    pub name: String,
    pub description: String,
    pub multiplier_ppm: i64,
    /// JSON list, or `None` for every model its channels serve.
    pub allowed_models: Option<String>,
    pub users: i64,
    /// `billing.cap_output_by_balance`: a request without an output cap gets one the balance pays.
    pub cap_output_by_balance: bool,
    /// The budget and rate limits each member gets.
    pub limits: super::limits::StoredLimits,
    /// Per-model limits for each member (JSON), if any.
    pub model_limits: Option<String>,
}

pub async fn list<'e>(db: impl Executor<'e, Database = Any>) -> Result<Vec<GroupListing>, sqlx::Error> {
    let sql = format!(
        "SELECT g.name, g.description, g.multiplier_ppm, g.allowed_models, \
         (SELECT COUNT(*) FROM users u WHERE u.group_name = g.name) AS user_count, g.cap_output_by_balance, g.model_limits, {} \
         FROM groups g ORDER BY g.name",
        super::limits::columns("g")
    );
    let rows = sqlx::query(&sql).fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            Ok(GroupListing {
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                multiplier_ppm: r.try_get("multiplier_ppm")?,
                allowed_models: r.try_get("allowed_models")?,
                users: r.try_get("user_count")?,
                cap_output_by_balance: r.try_get::<i64, _>("cap_output_by_balance")? != 0,
                limits: super::limits::StoredLimits::from_row(r, "g_")?,
                model_limits: r.try_get("model_limits")?,
            })
        })
        .collect()
}

/// Every group's model allowlist that is set: `(group, JSON list)`.
pub async fn allowlists<'e>(db: impl Executor<'e, Database = Any>) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT name, allowed_models FROM groups WHERE allowed_models IS NOT NULL").fetch_all(db).await?;
    rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("allowed_models")?))).collect()
}

pub async fn set_allowed_models<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
    models: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE groups SET allowed_models = $1 WHERE name = $2")
        .bind(models)
        .bind(name)
        .execute(db)
        .await
        .map(|_| ())
}

/// The groups whose `billing.cap_output_by_balance` is on.
pub async fn capping_output<'e>(db: impl Executor<'e, Database = Any>) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query("SELECT name FROM groups WHERE cap_output_by_balance = 1").fetch_all(db).await?;
    rows.iter().map(|r| r.try_get("name")).collect()
}

pub async fn set_cap_output_by_balance<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
    on: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE groups SET cap_output_by_balance = $1 WHERE name = $2")
        .bind(i64::from(on))
        .bind(name)
        .execute(db)
        .await
        .map(|_| ())
}

/// Deletes a group that no user belongs to; false when it is missing or has users.
pub async fn delete_unused<'e>(db: impl Executor<'e, Database = Any>, name: &str) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM groups WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM users WHERE group_name = $1)")
            .bind(name)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_model_price<'e>(db: impl Executor<'e, Database = Any>, model: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM model_prices WHERE model = $1").bind(model).execute(db).await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_group_price<'e>(
    db: impl Executor<'e, Database = Any>,
    group: &str,
    model: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM group_model_prices WHERE group_name = $1 AND model = $2")
        .bind(group)
        .bind(model)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

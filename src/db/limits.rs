//! The budget and rate limits stored on users and groups (migration 0020): a group's are the
//! defaults each member gets, a user's own replace them. A user's row also holds their budget's
//! count, whichever budget applies; reserving on it is in `ledger`.

use sqlx::{Any, AnyConnection, Executor, Row, any::AnyRow};

use crate::domain::budget::Budget;
use crate::domain::limits::{Limits, ModelLimits, RateLimits, stored_count};

/// Whose limits.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    User(i64),
    Group(&'a str),
}

/// The limits as stored: amounts in nano-units, `None` where none is set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredLimits {
    pub budget: Option<i64>,
    pub budget_period: Option<String>,
    /// When the budget was set (rolling periods count from it).
    pub budget_anchor: i64,
    pub rpm: Option<i64>,
    pub rpd: Option<i64>,
    pub tpm: Option<i64>,
    pub concurrency: Option<i64>,
}

impl StoredLimits {
    pub fn budget(&self) -> Option<Budget> {
        Budget::from_stored(self.budget, self.budget_period.as_deref(), self.budget_anchor)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            budget: self.budget(),
            rates: RateLimits {
                rpm: stored_count(self.rpm),
                rpd: stored_count(self.rpd),
                tpm: stored_count(self.tpm),
                concurrency: stored_count(self.concurrency),
            },
        }
    }

    /// Reads the columns (under their own names, or prefixed: `u_budget`, …) of a row.
    pub fn from_row(r: &AnyRow, prefix: &str) -> Result<Self, sqlx::Error> {
        let col = |name: &str| format!("{prefix}{name}");
        Ok(Self {
            budget: r.try_get(col("budget").as_str())?,
            budget_period: r.try_get(col("budget_period").as_str())?,
            budget_anchor: r.try_get(col("budget_anchor").as_str())?,
            rpm: r.try_get(col("rate_limit_rpm").as_str())?,
            rpd: r.try_get(col("rate_limit_rpd").as_str())?,
            tpm: r.try_get(col("rate_limit_tpm").as_str())?,
            concurrency: r.try_get(col("max_concurrent").as_str())?,
        })
    }
}

/// The limit columns, for a SELECT (`u.` → `u.budget AS u_budget, …` with `alias` "u").
pub fn columns(alias: &str) -> String {
    ["budget", "budget_period", "budget_anchor", "rate_limit_rpm", "rate_limit_rpd", "rate_limit_tpm", "max_concurrent"]
        .iter()
        .map(|c| format!("{alias}.{c} AS {alias}_{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn table(owner: Owner<'_>) -> (&'static str, &'static str) {
    match owner {
        Owner::User(_) => ("users", "id"),
        Owner::Group(_) => ("groups", "name"),
    }
}

/// An owner's stored limits; `None` when there is no such user or group.
pub async fn get<'e>(
    db: impl Executor<'e, Database = Any>,
    owner: Owner<'_>,
) -> Result<Option<StoredLimits>, sqlx::Error> {
    let (table, id) = table(owner);
    let sql = format!("SELECT {} FROM {table} t WHERE t.{id} = $1", columns("t"));
    let query = sqlx::query(&sql);
    let query = match owner {
        Owner::User(user) => query.bind(user),
        Owner::Group(name) => query.bind(name),
    };
    query.fetch_optional(db).await?.map(|r| StoredLimits::from_row(&r, "t_")).transpose()
}

/// Replaces an owner's limits. With `restart_count`, the budget's count starts again: the user's
/// own, or (for a group) that of every member without a budget of their own.
pub async fn set(
    conn: &mut AnyConnection,
    owner: Owner<'_>,
    limits: &StoredLimits,
    restart_count: bool,
) -> Result<(), sqlx::Error> {
    let (table, id) = table(owner);
    let sql = format!(
        "UPDATE {table} SET budget = $1, budget_period = $2, budget_anchor = $3, rate_limit_rpm = $4, \
         rate_limit_rpd = $5, rate_limit_tpm = $6, max_concurrent = $7 WHERE {id} = $8"
    );
    let query = sqlx::query(&sql)
        .bind(limits.budget)
        .bind(limits.budget_period.as_deref())
        .bind(limits.budget_anchor)
        .bind(limits.rpm)
        .bind(limits.rpd)
        .bind(limits.tpm)
        .bind(limits.concurrency);
    match owner {
        Owner::User(user) => query.bind(user).execute(&mut *conn).await?,
        Owner::Group(name) => query.bind(name).execute(&mut *conn).await?,
    };
    if restart_count {
        let restart = "UPDATE users SET budget_spent = 0, budget_window = 0, budget_warned_window = 0";
        match owner {
            Owner::User(user) => {
                sqlx::query(&format!("{restart} WHERE id = $1")).bind(user).execute(&mut *conn).await?
            }
            Owner::Group(name) => {
                sqlx::query(&format!("{restart} WHERE group_name = $1 AND budget IS NULL"))
                    .bind(name)
                    .execute(&mut *conn)
                    .await?
            }
        };
    }
    Ok(())
}

/// A group's per-model limits (`None` without any or without the group).
pub async fn model_limits<'e>(
    db: impl Executor<'e, Database = Any>,
    group: &str,
) -> Result<Option<ModelLimits>, sqlx::Error> {
    let json: Option<Option<String>> =
        sqlx::query_scalar("SELECT model_limits FROM groups WHERE name = $1").bind(group).fetch_optional(db).await?;
    // Written only from checked values: an unreadable one reads as none, as the gateway reads it.
    Ok(json.flatten().and_then(|j| serde_json::from_str(&j).ok()))
}

pub async fn set_model_limits<'e>(
    db: impl Executor<'e, Database = Any>,
    group: &str,
    models: Option<&ModelLimits>,
) -> Result<(), sqlx::Error> {
    let json = models.map(serde_json::to_string).transpose().map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("UPDATE groups SET model_limits = $1 WHERE name = $2").bind(json).bind(group).execute(db).await?;
    Ok(())
}

/// Every group's limits and per-model limits (JSON), for the routing snapshot.
pub async fn all_groups<'e>(
    db: impl Executor<'e, Database = Any>,
) -> Result<Vec<(String, StoredLimits, Option<String>)>, sqlx::Error> {
    let sql = format!("SELECT g.name, g.model_limits, {} FROM groups g", columns("g"));
    let rows = sqlx::query(&sql).fetch_all(db).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("name")?, StoredLimits::from_row(r, "g_")?, r.try_get("model_limits")?)))
        .collect()
}

/// A user's budget count: the window (its start, unix ms) it counts and what was spent in it.
pub async fn user_budget_count<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    // What was charged: the count less what gateway processes reserved on it ahead.
    let leased = super::budget_leases::leased_sql("user", "users.id", Some("users.budget_window"));
    let sql = format!(
        "SELECT budget_window, CASE WHEN budget_spent > {leased} THEN budget_spent - {leased} ELSE 0 END AS spent \
         FROM users WHERE id = $1"
    );
    let row = sqlx::query(&sql).bind(user_id).fetch_optional(db).await?;
    row.map(|r| Ok((r.try_get("budget_window")?, r.try_get("spent")?))).transpose()
}

/// A user whose budget count crossed the warning threshold in a window not yet warned about.
#[derive(Clone, Debug)]
pub struct BudgetCrossing {
    pub user_id: i64,
    pub spent: i64,
    /// The window (its start, unix ms) the count is of.
    pub window: i64,
}

/// Claims the active users whose count has reached `percent` % of the budget that applies (their
/// own, else their group's) in a window not yet warned about: one statement, so two replicas
/// never both claim one.
pub async fn claim_budget_warnings<'e>(
    db: impl Executor<'e, Database = Any>,
    percent: i64,
) -> Result<Vec<BudgetCrossing>, sqlx::Error> {
    // `budget / 100 * percent` rather than `budget_spent * 100`: no overflow for any amount.
    let budget = "COALESCE(budget, (SELECT g.budget FROM groups g WHERE g.name = users.group_name))";
    let leased = super::budget_leases::leased_sql("user", "users.id", Some("users.budget_window"));
    let sql = format!(
        "UPDATE users SET budget_warned_window = budget_window \
         WHERE status = 'active' AND budget_window > budget_warned_window AND {budget} > 0 \
           AND budget_spent - {leased} >= {budget} / 100 * $1 \
         RETURNING id, budget_spent, budget_window"
    );
    let rows = sqlx::query(&sql).bind(percent).fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            Ok(BudgetCrossing {
                user_id: r.try_get("id")?,
                spent: r.try_get("budget_spent")?,
                window: r.try_get("budget_window")?,
            })
        })
        .collect()
}

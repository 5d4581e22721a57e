//! Queries for the operator's user administration: search and paging, role and status changes,
//! per-user spend totals. Balance changes are not here (they go through `billing`).

use sqlx::{Any, Executor, Row};

use crate::db::sql_builder::SqlBuilder;
use crate::domain::time::now_ms;

/// What a search matches: free text on email and display name, and exact role, group, status.
#[derive(Clone, Debug, Default)]
pub struct UserSearch {
    pub text: Option<String>,
    pub role: Option<String>,
    pub group: Option<String>,
    pub status: Option<String>,
}

/// One row of the user list.
#[derive(Clone, Debug)]
pub struct UserListRow {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub status: String,
    pub group: String,
    pub balance: i64,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
    /// Set when an operator should look at the account.
    pub flag: Option<String>,
}

/// Appends the WHERE clause of `search` (nothing when it matches everyone).
fn push_conditions(b: &mut SqlBuilder, search: &UserSearch) {
    let mut first = true;
    let mut and = |b: &mut SqlBuilder| {
        b.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    if let Some(text) = &search.text {
        let pattern = format!("%{}%", text.to_lowercase());
        and(b);
        // LOWER(..) LIKE works the same on both engines (ILIKE is Postgres only).
        b.push("(LOWER(email) LIKE ").push_bind(pattern.as_str());
        b.push(" OR LOWER(display_name) LIKE ").push_bind(pattern).push(")");
    }
    for (column, value) in [("role", &search.role), ("group_name", &search.group), ("status", &search.status)] {
        if let Some(value) = value {
            and(b);
            b.push(column).push(" = ").push_bind(value.as_str());
        }
    }
}

/// One page of matching users (newest first) and how many match in all.
pub async fn search<'e, E>(
    db: E,
    search: &UserSearch,
    limit: i64,
    offset: i64,
) -> Result<(Vec<UserListRow>, i64), sqlx::Error>
where
    E: Executor<'e, Database = Any> + Copy,
{
    let mut count = SqlBuilder::new("SELECT COUNT(*) AS n FROM users");
    push_conditions(&mut count, search);
    let total: i64 = count.build().fetch_one(db).await?.try_get("n")?;
    let mut page = SqlBuilder::new(
        "SELECT id, email, display_name, role, status, group_name, balance, created_at, last_login_at, flag FROM users",
    );
    push_conditions(&mut page, search);
    page.push(" ORDER BY id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
    let rows = page.build().fetch_all(db).await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok(UserListRow {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
                display_name: r.try_get("display_name")?,
                role: r.try_get("role")?,
                status: r.try_get("status")?,
                group: r.try_get("group_name")?,
                balance: r.try_get("balance")?,
                created_at: r.try_get("created_at")?,
                last_login_at: r.try_get("last_login_at")?,
                flag: r.try_get("flag")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((rows, total))
}

pub async fn set_role<'e>(db: impl Executor<'e, Database = Any>, id: i64, role: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
        .bind(role)
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn set_status<'e>(db: impl Executor<'e, Database = Any>, id: i64, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status)
        .bind(now_ms())
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

/// How many active root accounts there are (the last one may not be demoted or disabled).
pub async fn count_active_roots<'e>(db: impl Executor<'e, Database = Any>) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'root' AND status = 'active'")
        .fetch_one(db)
        .await?
        .try_get("n")
}

/// `(requests, spend)` of the user since `since_ms`.
pub async fn usage_totals<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
    since_ms: i64,
) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS requests, CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost_sum FROM request_logs WHERE user_id = $1 AND created_at >= $2",
    )
    .bind(user_id)
    .bind(since_ms)
    .fetch_one(db)
    .await?;
    Ok((row.try_get("requests")?, row.try_get("cost_sum")?))
}

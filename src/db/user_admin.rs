//! Queries for the operator's user administration: search and paging, role and status changes,
//! per-user spend totals. Balance changes are not here (they go through `billing`).

use sqlx::{Any, Executor, Row};

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

/// The WHERE clause and its values, `$1…$n` in order.
fn conditions(search: &UserSearch) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    if let Some(text) = &search.text {
        values.push(format!("%{}%", text.to_lowercase()));
        let n = values.len();
        // LOWER(..) LIKE works the same on both engines (ILIKE is Postgres only).
        clauses.push(format!("(LOWER(email) LIKE ${n} OR LOWER(display_name) LIKE ${n})"));
    }
    for (column, value) in [("role", &search.role), ("group_name", &search.group), ("status", &search.status)] {
        if let Some(value) = value {
            values.push(value.clone());
            clauses.push(format!("{column} = ${}", values.len()));
        }
    }
    let sql = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
    (sql, values)
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
    let (filter, values) = conditions(search);
    let count_sql = format!("SELECT COUNT(*) FROM users{filter}");
    let mut count = sqlx::query(&count_sql);
    for v in &values {
        count = count.bind(v.clone());
    }
    let total: i64 = count.fetch_one(db).await?.try_get(0)?;
    let n = values.len();
    let sql = format!(
        "SELECT id, email, display_name, role, status, group_name, balance, created_at, last_login_at, flag FROM users{filter} \
         ORDER BY id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut query = sqlx::query(&sql);
    for v in &values {
        query = query.bind(v.clone());
    }
    let rows = query.bind(limit).bind(offset).fetch_all(db).await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok(UserListRow {
                id: r.try_get(0)?,
                email: r.try_get(1)?,
                display_name: r.try_get(2)?,
                role: r.try_get(3)?,
                status: r.try_get(4)?,
                group: r.try_get(5)?,
                balance: r.try_get(6)?,
                created_at: r.try_get(7)?,
                last_login_at: r.try_get(8)?,
                flag: r.try_get(9)?,
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
    sqlx::query("SELECT COUNT(*) FROM users WHERE role = 'root' AND status = 'active'").fetch_one(db).await?.try_get(0)
}

/// `(requests, spend)` of the user since `since_ms`.
pub async fn usage_totals<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
    since_ms: i64,
) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*), CAST(COALESCE(SUM(cost), 0) AS BIGINT) FROM request_logs WHERE user_id = $1 AND created_at >= $2",
    )
    .bind(user_id)
    .bind(since_ms)
    .fetch_one(db)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

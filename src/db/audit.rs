//! Queries reading `audit_log` (rows are written by `services::audit::record`).

use sqlx::{Any, Executor, Row};

use super::all_logs::contains_pattern;

/// What the audit log may be filtered by; every field optional.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Part of the acting user's email.
    pub actor: Option<String>,
    /// An action or the start of one (`setting.` matches every setting change).
    pub action: Option<String>,
    /// A target id, or a target type (`setting`, `user`, …).
    pub target: Option<String>,
    /// Rows older than this id.
    pub before_id: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct AuditRow {
    pub id: i64,
    pub created_at: i64,
    pub actor_user_id: Option<i64>,
    pub actor_email: Option<String>,
    /// `user`, `token` or `system`.
    pub actor_kind: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub details: String,
    pub ip: Option<String>,
}

/// Rows matching `filter`, newest first.
pub async fn list<'e>(
    db: impl Executor<'e, Database = Any>,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT a.id, a.created_at, a.actor_user_id, u.email, a.actor_kind, a.action, a.target_type, a.target_id, \
         a.details, a.ip FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id WHERE 1 = 1",
    );
    let mut binds: Vec<String> = Vec::new();
    if let Some(actor) = &filter.actor {
        binds.push(contains_pattern(actor));
        sql.push_str(&format!(" AND LOWER(u.email) LIKE ${} ESCAPE '\\'", binds.len()));
    }
    if let Some(action) = &filter.action {
        let escaped = action.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        binds.push(format!("{escaped}%"));
        sql.push_str(&format!(" AND a.action LIKE ${} ESCAPE '\\'", binds.len()));
    }
    if let Some(target) = &filter.target {
        binds.push(target.clone());
        let n = binds.len();
        sql.push_str(&format!(" AND (a.target_id = ${n} OR a.target_type = ${n})"));
    }
    let mut n = binds.len();
    if filter.before_id.is_some() {
        n += 1;
        sql.push_str(&format!(" AND a.id < ${n}"));
    }
    sql.push_str(&format!(" ORDER BY a.id DESC LIMIT ${}", n + 1));
    let mut query = sqlx::query(&sql);
    for value in binds {
        query = query.bind(value);
    }
    if let Some(before) = filter.before_id {
        query = query.bind(before);
    }
    let rows = query.bind(limit).fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            Ok(AuditRow {
                id: r.try_get(0)?,
                created_at: r.try_get(1)?,
                actor_user_id: r.try_get(2)?,
                actor_email: r.try_get(3)?,
                actor_kind: r.try_get(4)?,
                action: r.try_get(5)?,
                target_type: r.try_get(6)?,
                target_id: r.try_get(7)?,
                details: r.try_get(8)?,
                ip: r.try_get(9)?,
            })
        })
        .collect()
}

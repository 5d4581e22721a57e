//! Queries on `audit_log`: the insert behind `services::audit::record` (which decides what a row
//! says and never fails the action it records) and the operators' filtered listing.

use sqlx::{Any, Executor, Row};

use super::all_logs::contains_pattern;
use super::sql_builder::SqlBuilder;

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

/// One audit row to write.
pub struct NewAuditRow<'a> {
    pub created_at: i64,
    pub actor_user_id: Option<i64>,
    /// `user`, `token` or `system`.
    pub actor_kind: &'a str,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    /// JSON text.
    pub details: &'a str,
    pub ip: Option<&'a str>,
}

pub async fn insert<'e>(db: impl Executor<'e, Database = Any>, row: &NewAuditRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (created_at, actor_user_id, actor_kind, action, target_type, target_id, details, ip) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(row.created_at)
    .bind(row.actor_user_id)
    .bind(row.actor_kind)
    .bind(row.action)
    .bind(row.target_type)
    .bind(row.target_id)
    .bind(row.details)
    .bind(row.ip)
    .execute(db)
    .await?;
    Ok(())
}

/// Rows matching `filter`, newest first.
pub async fn list<'e>(
    db: impl Executor<'e, Database = Any>,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let mut b = SqlBuilder::new(
        "SELECT a.id, a.created_at, a.actor_user_id, u.email, a.actor_kind, a.action, a.target_type, a.target_id, \
         a.details, a.ip FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id WHERE 1 = 1",
    );
    if let Some(actor) = &filter.actor {
        b.push(" AND LOWER(u.email) LIKE ").push_bind(contains_pattern(actor)).push(" ESCAPE '\\'");
    }
    if let Some(action) = &filter.action {
        let escaped = action.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        b.push(" AND a.action LIKE ").push_bind(format!("{escaped}%")).push(" ESCAPE '\\'");
    }
    if let Some(target) = &filter.target {
        b.push(" AND (a.target_id = ").push_bind(target.as_str());
        b.push(" OR a.target_type = ").push_bind(target.as_str()).push(")");
    }
    if let Some(before) = filter.before_id {
        b.push(" AND a.id < ").push_bind(before);
    }
    b.push(" ORDER BY a.id DESC LIMIT ").push_bind(limit);
    let rows = b.build().fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            Ok(AuditRow {
                id: r.try_get("id")?,
                created_at: r.try_get("created_at")?,
                actor_user_id: r.try_get("actor_user_id")?,
                actor_email: r.try_get("email")?,
                actor_kind: r.try_get("actor_kind")?,
                action: r.try_get("action")?,
                target_type: r.try_get("target_type")?,
                target_id: r.try_get("target_id")?,
                details: r.try_get("details")?,
                ip: r.try_get("ip")?,
            })
        })
        .collect()
}

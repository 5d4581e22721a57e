//! What operators read: every user's request log (the user console's filters plus the user's
//! email) and the audit log (by actor, action, target). Shared by `/admin/logs`, `/admin/audit`
//! and `/api/admin/logs`, `/api/admin/audit`; read-only.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::all_logs::{self, SiteLogRow};
use crate::db::audit::{self, AuditFilter, AuditRow};
use crate::domain::money::Money;
use crate::services::logs::{self, LogQuery};
use crate::state::AppState;

/// The extra filter of the site's log: part of the user's email.
#[derive(Debug, Default, Deserialize)]
pub struct UserQuery {
    #[serde(default)]
    pub user: String,
}

impl UserQuery {
    pub fn email(&self) -> Option<&str> {
        Some(self.user.trim()).filter(|u| !u.is_empty())
    }
}

/// One request of the site's log, as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SiteLogView {
    pub id: i64,
    pub created_at: i64,
    pub user_id: i64,
    pub user_email: String,
    pub key_id: Option<i64>,
    pub key_name: Option<String>,
    pub channel_id: Option<i64>,
    pub model: String,
    /// The channel's name for the model (after its model mapping).
    pub upstream_model: String,
    pub endpoint: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: String,
    pub status_code: i64,
    pub error_class: Option<String>,
    pub latency_ms: i64,
    pub stream: bool,
}

impl From<SiteLogRow> for SiteLogView {
    fn from(r: SiteLogRow) -> Self {
        Self {
            id: r.row.id,
            created_at: r.row.created_at,
            user_id: r.user_id,
            user_email: r.user_email,
            key_id: r.row.key_id,
            key_name: r.row.key_name,
            channel_id: r.channel_id,
            model: r.row.model,
            upstream_model: r.upstream_model,
            endpoint: r.row.endpoint,
            prompt_tokens: r.row.prompt_tokens,
            completion_tokens: r.row.completion_tokens,
            cost: Money(r.row.cost).to_string(),
            status_code: r.row.status_code,
            error_class: r.row.error_class,
            latency_ms: r.row.latency_ms,
            stream: r.row.is_stream,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The site's log rows for a filter, at most `limit` (validated by the caller's page size).
pub async fn site_logs(
    state: &AppState,
    query: &LogQuery,
    user: &UserQuery,
    limit: i64,
) -> Result<Vec<SiteLogRow>, LogsError> {
    let filter = query.filter().map_err(LogsError::Invalid)?;
    Ok(all_logs::list(state.db().pool(), user.email(), &filter, limit).await?)
}

/// The audit log's filter as sent (blanks mean "any").
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub before: Option<i64>,
    #[serde(default)]
    pub limit: Option<i64>,
}

impl AuditQuery {
    pub fn filter(&self) -> AuditFilter {
        let given = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        AuditFilter {
            actor: given(&self.actor),
            action: given(&self.action),
            target: given(&self.target),
            before_id: self.before,
        }
    }

    pub fn page_size(&self) -> Result<i64, String> {
        logs::page_size(self.limit)
    }

    /// The filter as a query string, for "older" links.
    pub fn query_string(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("actor", &self.actor)
            .append_pair("action", &self.action)
            .append_pair("target", &self.target)
            .finish()
    }
}

/// One audit row as the API shows it: `actor` is the acting user's email, `root token` or
/// `system`.
#[derive(Clone, Debug, Serialize)]
pub struct AuditView {
    pub id: i64,
    pub created_at: i64,
    pub actor: String,
    pub actor_user_id: Option<i64>,
    pub actor_kind: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub details: Value,
    pub ip: Option<String>,
}

impl From<AuditRow> for AuditView {
    fn from(r: AuditRow) -> Self {
        Self {
            actor: actor_name(&r),
            id: r.id,
            created_at: r.created_at,
            actor_user_id: r.actor_user_id,
            actor_kind: r.actor_kind,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
            ip: r.ip,
        }
    }
}

/// Who acted, in words.
pub fn actor_name(r: &AuditRow) -> String {
    match (&r.actor_email, r.actor_kind.as_str()) {
        (Some(email), _) => email.clone(),
        (None, "system") => "system".into(),
        (None, _) => "root token".into(),
    }
}

pub async fn audit_log(state: &AppState, query: &AuditQuery, limit: i64) -> Result<Vec<AuditRow>, sqlx::Error> {
    audit::list(state.db().pool(), &query.filter(), limit).await
}

//! `/admin/audit`: the audit log — who did what to which target, with the changed fields —
//! filtered by actor, action and target, paged back by id. Read-only; rows never hold secrets
//! (`services::audit` leaves them out when writing).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::AdminUser;
use crate::console::Layout;
use crate::console::error::ConsoleError;
use crate::console::layout::format_time;
use crate::routes::Routes;
use crate::services::logs;
use crate::services::logs::PAGE;
use crate::services::logs::admin::{AuditQuery, actor_name};
use crate::state::AppState;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes.page_get("/admin/audit", page)
}

/// One formatted row.
pub struct AuditLine {
    pub time: String,
    pub actor: String,
    pub via: String,
    pub action: String,
    pub target: String,
    /// The details, one line per field: `name: before → after`, or `name: value`.
    pub details: Vec<String>,
    pub ip: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/audit.html")]
pub struct AuditPage {
    layout: Layout,
    query: AuditQuery,
    rows: Vec<AuditLine>,
    older: Option<String>,
    newest: String,
}

/// `GET /admin/audit`.
pub async fn page(State(state): State<AppState>, admin: AdminUser, Query(query): Query<AuditQuery>) -> Response {
    let rows = match logs::admin::audit_log(&state, &query, PAGE).await {
        Ok(rows) => rows,
        Err(e) => {
            return ConsoleError::internal("loading the audit log", e).into_response();
        }
    };
    let filters = query.query_string();
    let older = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| format!("/admin/audit?{filters}&before={}", r.id)))
        .flatten();
    let lines = rows
        .iter()
        .map(|r| AuditLine {
            time: format_time(r.created_at),
            actor: actor_name(r),
            via: r.actor_kind.clone(),
            action: r.action.clone(),
            target: match (&r.target_type, &r.target_id) {
                (Some(t), Some(id)) => format!("{t} {id}"),
                (Some(t), None) => t.clone(),
                (None, Some(id)) => id.clone(),
                (None, None) => "—".into(),
            },
            details: summarize(&r.details),
            ip: r.ip.clone().unwrap_or_default(),
        })
        .collect();
    AuditPage { layout: admin.user.layout, rows: lines, older, newest: format!("/admin/audit?{filters}"), query }
        .into_response()
}

/// The details as lines a person reads: `field: before → after` for a change record, else
/// `field: value` per top-level field (any other JSON shown as it is).
fn summarize(details: &str) -> Vec<String> {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(details) else {
        return if details.is_empty() { Vec::new() } else { vec![details.to_string()] };
    };
    let shown = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    };
    if let (Some(Value::Object(before)), Some(Value::Object(after))) = (fields.get("before"), fields.get("after")) {
        return after
            .iter()
            .map(|(name, new)| format!("{name}: {} → {}", before.get(name).map_or("—".into(), shown), shown(new)))
            .collect();
    }
    fields.iter().map(|(name, value)| format!("{name}: {}", shown(value))).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn details_read_as_changes() {
        let lines = super::summarize(r#"{"before":{"value":"A"},"after":{"value":"B"}}"#);
        assert_eq!(lines, ["value: A → B"]);
        assert_eq!(super::summarize(r#"{"changed":true}"#), ["changed: true"]);
        assert!(super::summarize("{}").is_empty());
    }
}

//! The audit log: every admin and reseller action writes a row — who (user or token), what,
//! which target, and the changed fields before and after — never a secret. Writing the row never
//! fails the action it records (a failure is logged), so callers record after they succeed.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::db;
use crate::db::audit::NewAuditRow;
use crate::db::users::Role;
use crate::domain::time::now_ms;
use crate::state::AppState;

/// How the actor reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A console session.
    Session,
    /// A bearer token: the root token or a personal access token.
    Token,
    /// The server itself (bootstrap, maintenance).
    System,
}

/// Who is acting: a user (through a session or their access token) or the root token.
#[derive(Clone, Debug)]
pub struct Actor {
    /// `None` for the root token and the system.
    pub user_id: Option<i64>,
    pub role: Role,
    pub via: Via,
    pub ip: Option<IpAddr>,
}

impl Actor {
    /// The root token of `BURNCLOUD_ADMIN_TOKEN`.
    pub fn root_token(ip: Option<IpAddr>) -> Self {
        Self { user_id: None, role: Role::Root, via: Via::Token, ip }
    }

    pub fn system() -> Self {
        Self { user_id: None, role: Role::Root, via: Via::System, ip: None }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::Root | Role::Admin)
    }

    /// Whether this actor may act on an account with `target` role: root on anyone, an admin
    /// on resellers and users only (never on another admin or root), nobody else.
    pub fn may_manage(&self, target: Role) -> bool {
        match self.role {
            Role::Root => true,
            Role::Admin => matches!(target, Role::Reseller | Role::User),
            Role::Reseller | Role::User => false,
        }
    }
}

/// Field names whose values never reach the audit log.
const SECRET_FIELDS: &[&str] = &["key", "keys", "password", "password_hash", "secret", "token", "api_key"];

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_FIELDS.contains(&name.as_str()) || name.ends_with("_key") || name.ends_with("_secret")
}

/// `{"before": {…}, "after": {…}}` with only the top-level fields that differ; secret fields are
/// reported as changed (`"[redacted]"`) without their values.
pub fn changes(before: &Value, after: &Value) -> Value {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut old = Map::new();
    let mut new = Map::new();
    for name in before.keys().chain(after.keys()) {
        let (b, a) = (before.get(name), after.get(name));
        if b == a || old.contains_key(name) || new.contains_key(name) {
            continue;
        }
        let shown = |v: Option<&Value>| match v {
            _ if is_secret(name) => Value::String("[redacted]".into()),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        old.insert(name.clone(), shown(b));
        new.insert(name.clone(), shown(a));
    }
    serde_json::json!({ "before": old, "after": new })
}

/// Drops secret fields from a JSON object (for "created" rows that record the new values).
pub fn without_secrets(value: &Value) -> Value {
    match value.as_object() {
        Some(fields) => Value::Object(
            fields.iter().filter(|(name, _)| !is_secret(name)).map(|(n, v)| (n.clone(), v.clone())).collect(),
        ),
        None => value.clone(),
    }
}

/// Writes one audit row. `action` is a dotted verb like `channel.update`; `details` is usually
/// [`changes`] or [`without_secrets`] of the target.
pub async fn record(state: &AppState, actor: &Actor, action: &str, target: (&str, &str), details: Value) {
    let kind = match actor.via {
        Via::Session => "user",
        Via::Token => "token",
        Via::System => "system",
    };
    let details = details.to_string();
    let ip = actor.ip.map(|ip| ip.to_string());
    let row = NewAuditRow {
        created_at: now_ms(),
        actor_user_id: actor.user_id,
        actor_kind: kind,
        action,
        target_type: target.0,
        target_id: target.1,
        details: &details,
        ip: ip.as_deref(),
    };
    let result = db::audit::insert(state.db().writer(), &row).await;
    if let Err(e) = result {
        tracing::error!(error = %e, action, "writing an audit row failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_keep_what_differs_and_hide_secrets() {
        let before = json!({ "name": "a", "priority": 1, "key": "sk-old", "models": ["x"] });
        let after = json!({ "name": "a", "priority": 2, "key": "sk-new", "models": ["x"], "weight": 3 });
        let diff = changes(&before, &after);
        assert_eq!(diff["before"], json!({ "priority": 1, "key": "[redacted]", "weight": null }));
        assert_eq!(diff["after"], json!({ "priority": 2, "key": "[redacted]", "weight": 3 }));
        assert!(!diff.to_string().contains("sk-"));
        assert_eq!(without_secrets(&json!({ "name": "n", "api_key": "s", "password": "p" })), json!({ "name": "n" }));
    }

    #[test]
    fn admins_cannot_manage_admins_or_root() {
        let admin = Actor { user_id: Some(2), role: Role::Admin, via: Via::Session, ip: None };
        assert!(admin.may_manage(Role::User) && admin.may_manage(Role::Reseller));
        assert!(!admin.may_manage(Role::Admin) && !admin.may_manage(Role::Root));
        assert!(Actor::root_token(None).may_manage(Role::Admin));
        let reseller = Actor { user_id: Some(3), role: Role::Reseller, via: Via::Session, ip: None };
        assert!(!reseller.may_manage(Role::User) && !reseller.is_admin());
    }
}

//! The operator's actions on users' API keys (`/api/admin/users/{id}/keys`,
//! `/api/admin/keys/{id}`): the role rule of every other action on a user
//! (`user_admin::manageable`: an admin never acts for an admin or root) applied to the key's
//! owner, then `services::keys`, then an audit row (never the secret). No HTTP here.

use serde_json::{Value, json};

use crate::services::audit::{self, Actor};
use crate::services::keys::{self, KeyPatch, KeyScope, KeyView, NewKeyInput};
use crate::services::users::admin::{AdminUserError, manageable};
use crate::state::AppState;

/// What the audit log keeps of a key: its settings, not its usage counters.
fn audited(key: &KeyView) -> Value {
    let mut v = serde_json::to_value(key).unwrap_or(Value::Null);
    if let Some(fields) = v.as_object_mut() {
        for name in ["spent", "last_used_at", "expired", "created_at"] {
            fields.remove(name);
        }
        fields.insert("user_id".into(), json!(key.user_id));
    }
    audit::without_secrets(&v)
}

/// Issues a key for a user the actor may manage; the secret is returned once, and the audit row
/// records the key's prefix and limits only.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    user_id: i64,
    input: NewKeyInput,
) -> Result<(i64, String), AdminUserError> {
    manageable(state, actor, user_id).await?;
    let (id, secret) = keys::create_key(state, user_id, input).await?;
    let details = match keys::get_key(state, KeyScope::Any, id).await {
        Ok(key) => audited(&key),
        Err(_) => json!({ "user_id": user_id }),
    };
    audit::record(state, actor, "key.create", ("key", &id.to_string()), details).await;
    Ok((id, secret))
}

/// The key, if its owner is someone the actor may manage (`Forbidden` otherwise, `NotFound`
/// for a missing key).
async fn reachable(state: &AppState, actor: &Actor, id: i64) -> Result<KeyView, AdminUserError> {
    let key = keys::get_key(state, KeyScope::Any, id).await?;
    manageable(state, actor, key.user_id).await?;
    Ok(key)
}

/// Changes a key of a user the actor may manage; the key as it is now.
pub async fn update(state: &AppState, actor: &Actor, id: i64, patch: &KeyPatch) -> Result<KeyView, AdminUserError> {
    let before = reachable(state, actor, id).await?;
    let after = keys::update_key(state, KeyScope::Any, id, patch).await?;
    let details = audit::changes(&audited(&before), &audited(&after));
    audit::record(state, actor, "key.update", ("key", &id.to_string()), details).await;
    Ok(after)
}

/// Deletes a key of a user the actor may manage.
pub async fn delete(state: &AppState, actor: &Actor, id: i64) -> Result<(), AdminUserError> {
    let before = reachable(state, actor, id).await?;
    keys::delete_key(state, KeyScope::Any, id).await?;
    audit::record(state, actor, "key.delete", ("key", &id.to_string()), audited(&before)).await;
    Ok(())
}

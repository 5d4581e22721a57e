//! The operator's user administration, shared by `/admin/users` and `/api/admin/users*`:
//! search, credit and debit with a mandatory note (through `billing`), group, role and status
//! changes under the role rules, each with an audit row. Disabling ends the user's console
//! sessions and stops their keys at once (the gateway's key cache is cleared, and its grants
//! check the user's status).

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::billing::{self, BillingError};
use crate::db::ledger::{self, Kind};
use crate::db::limits::Owner;
use crate::db::prices;
use crate::db::users::admin::{self as user_admin, UserListRow, UserSearch};
use crate::db::users::{self, Role};
use crate::domain::money::Money;
use crate::services::audit::{self, Actor};
use crate::services::changes::{self, Change};
use crate::services::limits::LimitsPatch;
use crate::services::users::{UserError, UserView, get as get_view};
use crate::state::AppState;

/// Why an operator's action on a user was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminUserError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such user")]
    NotFound,
    /// The role rules: an admin on an admin or root, or a non-root making or unmaking admins.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for AdminUserError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<UserError> for AdminUserError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Invalid(m) => Self::Invalid(m),
            UserError::NotFound => Self::NotFound,
            UserError::InsufficientBalance => Self::Conflict(e.to_string()),
            UserError::EmailTaken => Self::Conflict(e.to_string()),
            UserError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<BillingError> for AdminUserError {
    fn from(e: BillingError) -> Self {
        UserError::from(e).into()
    }
}

/// The most users one page lists.
pub const MAX_PER_PAGE: i64 = 100;

/// A search as the console's query string and the API take it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub per_page: Option<i64>,
}

fn present(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

impl SearchQuery {
    /// The validated filter, page (from 1) and page size.
    pub fn parsed(&self) -> Result<(UserSearch, i64, i64), AdminUserError> {
        let role = present(&self.role);
        if role.as_deref().is_some_and(|r| Role::parse(r).is_none()) {
            return Err(AdminUserError::Invalid("role: root, admin, reseller or user".into()));
        }
        let status = present(&self.status);
        if status.as_deref().is_some_and(|s| s != "active" && s != "disabled") {
            return Err(AdminUserError::Invalid("status: active or disabled".into()));
        }
        let text = present(&self.q);
        if text.as_deref().is_some_and(|t| t.chars().count() > 200) {
            return Err(AdminUserError::Invalid("q: at most 200 characters".into()));
        }
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(25);
        if !(1..=1_000_000).contains(&page) {
            return Err(AdminUserError::Invalid("page: 1 or more".into()));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(AdminUserError::Invalid(format!("per_page: 1 to {MAX_PER_PAGE}")));
        }
        Ok((UserSearch { text, role, group: present(&self.group), status }, page, per_page))
    }
}

/// One page of a search.
pub struct SearchPage {
    pub rows: Vec<UserListRow>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl SearchPage {
    pub fn has_next(&self) -> bool {
        self.page * self.per_page < self.total
    }
}

pub async fn search(state: &AppState, query: &SearchQuery) -> Result<SearchPage, AdminUserError> {
    let (filter, page, per_page) = query.parsed()?;
    let (rows, total) = user_admin::search(state.db().pool(), &filter, per_page, (page - 1) * per_page).await?;
    Ok(SearchPage { rows, total, page, per_page })
}

/// The target user, refused with `Forbidden` when the actor may not manage them: the one role
/// rule of every operator action on a user or their keys.
pub(crate) async fn manageable(state: &AppState, actor: &Actor, id: i64) -> Result<UserView, AdminUserError> {
    let user = get_view(state, id).await?;
    let role = Role::parse(&user.role).unwrap_or(Role::User);
    if !actor.may_manage(role) {
        return Err(AdminUserError::Forbidden("only the root account can change an admin or the root account"));
    }
    Ok(user)
}

/// Whether the actor may change `id` at all (the console shows or hides its forms by this).
pub async fn may_manage(state: &AppState, actor: &Actor, id: i64) -> Result<bool, AdminUserError> {
    match manageable(state, actor, id).await {
        Ok(_) => Ok(true),
        Err(AdminUserError::Forbidden(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Longest note on an adjustment.
const MAX_NOTE_CHARS: usize = 500;

/// The ledger's idempotency key of an operator's adjustment: scoped to the actor, so two
/// operators' keys never collide and nobody can replay (or block) another operator's request.
fn adjustment_key(actor: &Actor, key: &str) -> String {
    let who = match actor.user_id {
        Some(id) => id.to_string(),
        None if actor.via == audit::Via::System => "system".into(),
        None => "root-token".into(),
    };
    format!("admin-credit:{who}:{key}")
}

/// A repeated request answered from the ledger row its key claimed: the same balance as the
/// first answer when it is the same operation, `Conflict` when the key was used for another.
fn replay(claim: &ledger::Claim, id: i64, amount: i64, note: &str) -> Result<i64, AdminUserError> {
    if claim.user_id == id && claim.amount == amount && claim.note.as_deref() == Some(note) {
        Ok(claim.balance_after)
    } else {
        Err(AdminUserError::Conflict("Idempotency-Key: already used for a different request".into()))
    }
}

/// Credits (a positive amount) or debits (a negative one) with a mandatory note: one ledger row
/// through `billing::adjust`. A debit larger than the balance is refused and changes nothing.
/// With an idempotency key (the client's `Idempotency-Key`), the key is claimed by the ledger
/// row in the same transaction, so any number of repeats — concurrent or later — move the
/// balance once and all get the first answer. Returns the new balance.
pub async fn adjust(
    state: &AppState,
    actor: &Actor,
    id: i64,
    amount: &str,
    note: &str,
    idempotency_key: Option<&str>,
) -> Result<i64, AdminUserError> {
    let amount = Money::parse(amount).map_err(|e| AdminUserError::Invalid(format!("amount: {e}")))?.nanos();
    if amount == 0 {
        return Err(AdminUserError::Invalid("amount: must not be zero".into()));
    }
    let note = note.trim();
    if note.is_empty() {
        return Err(AdminUserError::Invalid("note: say why the balance changes".into()));
    }
    if note.chars().count() > MAX_NOTE_CHARS || note.chars().any(char::is_control) {
        return Err(AdminUserError::Invalid(format!("note: one line of at most {MAX_NOTE_CHARS} characters")));
    }
    let before = manageable(state, actor, id).await?;
    let key = idempotency_key.map(|k| adjustment_key(actor, k));
    if let Some(key) = &key
        && let Some(claim) = ledger::claim(state.db().writer(), key).await?
    {
        return replay(&claim, id, amount, note);
    }
    if amount < 0 {
        // A debit may only take what no gateway lease has promised to requests.
        state.billing().give_back_lease(id).await?;
    }
    let result = billing::adjust(state.db(), id, amount, Kind::Adjustment, Some(note), key.as_deref()).await;
    let balance = match (result, &key) {
        (Ok(Some(balance)), _) => balance,
        // Lost the race for the key to a concurrent repeat (the claim is its ledger row), or a
        // repeated debit found the balance already taken by the first: answer as the first did.
        (Ok(None) | Err(BillingError::InsufficientBalance), Some(key)) => {
            return match ledger::claim(state.db().writer(), key).await? {
                Some(claim) => replay(&claim, id, amount, note),
                None => Err(UserError::InsufficientBalance.into()),
            };
        }
        (Ok(None), None) => {
            return Err(AdminUserError::Internal("adjustment without idempotency key was deduplicated".into()));
        }
        (Err(e), _) => return Err(e.into()),
    };
    let verb = if amount > 0 { "user.credit" } else { "user.debit" };
    let details = json!({
        "amount": Money(amount).to_string(),
        "note": note,
        "before": { "balance": before.balance },
        "after": { "balance": Money(balance).to_string() },
    });
    audit::record(state, actor, verb, ("user", &id.to_string()), details).await;
    Ok(balance)
}

/// The fields an operator may change; absent ones stay.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// The user's own budget and rate limits (absent fields stay; `null` gives the group's back).
    #[serde(default)]
    pub limits: Option<LimitsPatch>,
}

/// Changes a user's group, role or status under the role rules: only root makes or unmakes
/// admins (and root accounts), an admin never acts on an admin or root, and the last active
/// root is never demoted or disabled. Disabling ends every console session of the user and
/// stops their keys at once. The user as they are now.
pub async fn update(state: &AppState, actor: &Actor, id: i64, patch: &UserPatch) -> Result<UserView, AdminUserError> {
    if patch.group.is_none() && patch.role.is_none() && patch.status.is_none() && patch.limits.is_none() {
        return Err(AdminUserError::Invalid("nothing to change: send group, role, status or limits".into()));
    }
    let before = manageable(state, actor, id).await?;
    let current_role = Role::parse(&before.role).unwrap_or(Role::User);
    let role = match patch.role.as_deref().map(str::trim) {
        None => None,
        Some(r) => {
            Some(Role::parse(r).ok_or_else(|| AdminUserError::Invalid("role: root, admin, reseller or user".into()))?)
        }
    };
    if let Some(role) = role
        && role != current_role
        && (matches!(role, Role::Admin | Role::Root) || matches!(current_role, Role::Admin | Role::Root))
        && actor.role != Role::Root
    {
        return Err(AdminUserError::Forbidden("only the root account can make or unmake admins"));
    }
    let status = match patch.status.as_deref().map(str::trim) {
        None => None,
        Some(s @ ("active" | "disabled")) => Some(s),
        Some(_) => return Err(AdminUserError::Invalid("status: active or disabled".into())),
    };
    let group = match patch.group.as_deref().map(str::trim) {
        None => None,
        Some(g) => match prices::group(state.db().pool(), g).await? {
            Some(row) => Some(row.name),
            None => return Err(AdminUserError::Invalid(format!("group: {g:?} does not exist"))),
        },
    };
    let loses_root = current_role == Role::Root
        && before.status == "active"
        && (role.is_some_and(|r| r != Role::Root) || status == Some("disabled"));
    if loses_root && user_admin::count_active_roots(state.db().pool()).await? <= 1 {
        return Err(AdminUserError::Conflict("this is the last root account: make another root first".into()));
    }
    let mut tx = state.db().writer().begin().await?;
    if let Some(group) = &group {
        users::set_group(&mut *tx, id, group).await?;
    }
    if let Some(role) = role {
        user_admin::set_role(&mut *tx, id, role.as_str()).await?;
    }
    if let Some(status) = status {
        user_admin::set_status(&mut *tx, id, status).await?;
    }
    if let Some(limits) = &patch.limits {
        match crate::services::limits::patch(&mut tx, Owner::User(id), limits).await? {
            Some(Ok(_)) => {}
            Some(Err(why)) => return Err(AdminUserError::Invalid(format!("limits.{why}"))),
            None => return Err(AdminUserError::NotFound),
        }
    }
    tx.commit().await?;
    if status == Some("disabled") && before.status != "disabled" {
        crate::db::sessions::end_user_sessions(state.db(), id, None).await?;
    }
    // Group, role, status and limits all live in the gateway's cached key grants: drop them now.
    changes::publish(state, Change::User(id)).await;
    let after = get_view(state, id).await?;
    let view = |u: &UserView| json!({ "group": u.group, "role": u.role, "status": u.status, "limits": u.limits.own });
    let changes = audit::changes(&view(&before), &view(&after));
    audit::record(state, actor, "user.update", ("user", &id.to_string()), changes).await;
    Ok(after)
}

/// `(requests, spend)` of the user over the last 30 days.
pub async fn recent_usage(state: &AppState, id: i64) -> Result<(i64, i64), AdminUserError> {
    let since = crate::domain::time::now_ms() - 30 * 86_400_000;
    Ok(user_admin::usage_totals(state.db().pool(), id, since).await?)
}

/// Clears the account's flag (an operator has looked at the refund it records), under the role
/// rules, with an audit row keeping what it said. `Conflict` when the account has no flag.
pub async fn clear_flag(state: &AppState, actor: &Actor, id: i64) -> Result<UserView, AdminUserError> {
    let before = manageable(state, actor, id).await?;
    let Some(flag) = before.flag else {
        return Err(AdminUserError::Conflict("the account has no flag".into()));
    };
    if !users::clear_flag(state.db().writer(), id).await? {
        // Cleared by someone else in between: nothing left to do, and nothing to record twice.
        return Err(AdminUserError::Conflict("the account has no flag".into()));
    }
    let details = json!({ "before": { "flag": flag }, "after": { "flag": null } });
    audit::record(state, actor, "user.clear_flag", ("user", &id.to_string()), details).await;
    Ok(get_view(state, id).await?)
}

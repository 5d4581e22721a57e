//! `/admin/users`: search users by email, name, group, role and status (paged); a user's page
//! with balance, ledger, keys and recent usage; credit or debit with a note, group and role
//! changes, disable and re-enable — all through `services::users::admin`, like the API. Forms
//! work without JavaScript: success redirects back with a notice, a refusal re-renders the
//! page with the reason.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::limits_form::LimitsForm;
use super::{AdminUser, forbidden_target};
use crate::console::Layout;
use crate::console::error::ConsoleError;
use crate::console::error::PathId;
use crate::console::layout::format_time;
use crate::db::request_logs::LogFilter;
use crate::domain::money::Money;
use crate::routes::Id;
use crate::routes::Routes;
use crate::services::keys::{self, KeyView};
use crate::services::pricing::groups;
use crate::services::users::admin::{AdminUserError, SearchQuery, UserPatch};
use crate::services::users::{self, UserView};
use crate::services::{logs, statement};
use crate::state::AppState;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes
        .page_get("/admin/users", list)
        .page_get("/admin/users/{id}", detail)
        .page_post("/admin/users/{id}/adjust", adjust)
        .page_post("/admin/users/{id}/update", update)
        .page_post("/admin/users/{id}/status", status)
        .page_post("/admin/users/{id}/limits", limits)
        .page_post("/admin/users/{id}/clear-flag", clear_flag)
}

/// One row of the user list, formatted.
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    pub group: String,
    pub active: bool,
    pub balance: String,
    pub joined: String,
    /// Why the account needs a look, when it does.
    pub flag: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/users.html")]
pub struct UsersPage {
    layout: Layout,
    rows: Vec<UserRow>,
    groups: Vec<String>,
    q: String,
    role: String,
    group: String,
    status: String,
    total: i64,
    page: i64,
    prev: Option<String>,
    next: Option<String>,
    error: Option<String>,
}

/// The list's link for another page, keeping the filters.
fn page_link(q: &SearchQuery, page: i64) -> String {
    let pairs = [("q", &q.q), ("role", &q.role), ("group", &q.group), ("status", &q.status)];
    let mut url = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            url.append_pair(name, v);
        }
    }
    url.append_pair("page", &page.to_string());
    format!("/admin/users?{}", url.finish())
}

/// `GET /admin/users`.
pub async fn list(State(state): State<AppState>, admin: AdminUser, Query(q): Query<SearchQuery>) -> Response {
    let groups = match groups::all(&state).await {
        Ok(g) => g.into_iter().map(|g| g.name).collect(),
        Err(e) => return ConsoleError::internal("an /admin/users page", e).into_response(),
    };
    let shown = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut page = UsersPage {
        layout: admin.user.layout,
        rows: Vec::new(),
        groups,
        q: shown(&q.q),
        role: shown(&q.role),
        group: shown(&q.group),
        status: shown(&q.status),
        total: 0,
        page: 1,
        prev: None,
        next: None,
        error: None,
    };
    match users::admin::search(&state, &q).await {
        Ok(found) => {
            page.total = found.total;
            page.page = found.page;
            page.prev = (found.page > 1).then(|| page_link(&q, found.page - 1));
            page.next = found.has_next().then(|| page_link(&q, found.page + 1));
            page.rows = found
                .rows
                .into_iter()
                .map(|u| UserRow {
                    id: u.id,
                    email: u.email,
                    name: if u.display_name.is_empty() { "—".into() } else { u.display_name },
                    role: u.role,
                    group: u.group,
                    active: u.status == "active",
                    balance: Money(u.balance).to_string(),
                    joined: format_time(u.created_at),
                    flag: u.flag,
                })
                .collect();
            page.into_response()
        }
        Err(AdminUserError::Invalid(m)) => {
            page.error = Some(m);
            (StatusCode::BAD_REQUEST, page).into_response()
        }
        Err(e) => ConsoleError::internal("an /admin/users page", e).into_response(),
    }
}

pub struct LedgerLine {
    pub time: String,
    pub kind: String,
    pub amount: String,
    pub credit: bool,
    pub balance: String,
    pub note: String,
}

pub struct UsageLine {
    pub time: String,
    pub model: String,
    pub tokens: String,
    pub cost: String,
    pub status: i64,
    pub failed: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/user.html")]
pub struct UserPage {
    layout: Layout,
    user: UserView,
    /// The viewer may change this user (an admin may not change admins or root).
    manageable: bool,
    viewer_is_root: bool,
    groups: Vec<String>,
    ledger: Vec<LedgerLine>,
    keys: Vec<KeyView>,
    usage: Vec<UsageLine>,
    requests_30d: i64,
    spend_30d: String,
    notice: Option<&'static str>,
    error: Option<String>,
    amount: String,
    note: String,
    /// The user's own limits, as set (or as sent, when refused).
    limits_form: LimitsForm,
}

impl UserPage {
    fn key_created(&self, key: &KeyView) -> String {
        format_time(key.created_at)
    }

    fn key_last_used(&self, key: &KeyView) -> String {
        key.last_used_at.map(format_time).unwrap_or_else(|| "—".into())
    }

    fn key_spent(&self, key: &KeyView) -> String {
        Money(key.spent).to_string()
    }
}

#[derive(Deserialize, Default)]
pub struct DetailQuery {
    #[serde(default)]
    done: String,
}

fn notice_for(done: &str) -> Option<&'static str> {
    match done {
        "credited" => Some("Balance credited."),
        "debited" => Some("Balance debited."),
        "updated" => Some("User updated."),
        "disabled" => Some("User disabled: their sessions ended and their keys stopped working."),
        "enabled" => Some("User enabled again."),
        "flag-cleared" => Some("Flag cleared."),
        _ => None,
    }
}

/// Loads everything the user's page shows; `None`: no such user.
async fn load(state: &AppState, admin: &AdminUser, id: i64) -> Result<Option<UserPage>, Response> {
    let user = match users::get(state, id).await {
        Ok(u) => u,
        Err(crate::services::users::UserError::NotFound) => return Ok(None),
        Err(e) => return Err(ConsoleError::internal("an /admin/users page", e).into_response()),
    };
    let manageable = users::admin::may_manage(state, &admin.actor, id)
        .await
        .map_err(|e| ConsoleError::internal("an /admin/users page", e).into_response())?;
    let groups = groups::all(state)
        .await
        .map_err(|e| ConsoleError::internal("an /admin/users page", e).into_response())?
        .into_iter()
        .map(|g| g.name)
        .collect();
    let ledger = statement::recent(state, id, 20)
        .await
        .map_err(|e| ConsoleError::internal("an /admin/users page", e).into_response())?
        .into_iter()
        .map(|r| LedgerLine {
            time: format_time(r.created_at),
            kind: r.kind,
            credit: r.amount >= 0,
            amount: Money(r.amount).to_string(),
            balance: Money(r.balance_after).to_string(),
            note: r.note.unwrap_or_default(),
        })
        .collect();
    let keys = keys::list_keys(state, id)
        .await
        .map_err(|e| ConsoleError::internal("an /admin/users page", e).into_response())?;
    let usage = logs::for_user(state, id, &LogFilter::default(), 20)
        .await
        .map_err(|e| ConsoleError::internal("an /admin/users page", e).into_response())?
        .into_iter()
        .map(|r| UsageLine {
            time: format_time(r.created_at),
            model: r.model,
            tokens: format!("{} / {}", r.prompt_tokens, r.completion_tokens),
            cost: Money(r.cost).to_string(),
            status: r.status_code,
            failed: r.status_code >= 400,
        })
        .collect();
    let (requests_30d, spend) = users::admin::recent_usage(state, id)
        .await
        .map_err(|e| ConsoleError::internal("an /admin/users page", e).into_response())?;
    Ok(Some(UserPage {
        layout: admin.user.layout.clone(),
        limits_form: LimitsForm::of(&user.limits.own),
        user,
        manageable,
        viewer_is_root: admin.actor.role == crate::db::users::Role::Root,
        groups,
        ledger,
        keys,
        usage,
        requests_30d,
        spend_30d: Money(spend).to_string(),
        notice: None,
        error: None,
        amount: String::new(),
        note: String::new(),
    }))
}

fn not_found(admin: &AdminUser) -> Response {
    let page = crate::console::auth::NoticePage::new(
        admin.user.layout.clone(),
        "No such user",
        "This user does not exist (any more).",
    );
    (StatusCode::NOT_FOUND, page).into_response()
}

/// `GET /admin/users/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id, _): PathId,
    Query(q): Query<DetailQuery>,
) -> Response {
    match load(&state, &admin, id).await {
        Ok(Some(mut page)) => {
            page.notice = notice_for(&q.done);
            page.into_response()
        }
        Ok(None) => not_found(&admin),
        Err(response) => response,
    }
}

/// A refused action: the page again with the reason (and the adjustment form as sent).
async fn refused(
    state: &AppState,
    admin: &AdminUser,
    id: i64,
    error: AdminUserError,
    form: Option<&AdjustForm>,
) -> Response {
    let status = match &error {
        AdminUserError::Forbidden(_) => return forbidden_target(&admin.user),
        AdminUserError::NotFound => return not_found(admin),
        AdminUserError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminUserError::Conflict(_) => StatusCode::CONFLICT,
        AdminUserError::Internal(_) => return ConsoleError::internal("an /admin/users page", error).into_response(),
    };
    match load(state, admin, id).await {
        Ok(Some(mut page)) => {
            page.error = Some(error.to_string());
            if let Some(form) = form {
                page.amount = form.amount.clone();
                page.note = form.note.clone();
            }
            (status, page).into_response()
        }
        Ok(None) => not_found(admin),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub struct AdjustForm {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    note: String,
    /// `credit` or `debit`: the amount's direction.
    #[serde(default)]
    direction: String,
}

/// `POST /admin/users/{id}/adjust`: credit or debit with a note.
pub async fn adjust(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id, _): PathId,
    Form(form): Form<AdjustForm>,
) -> Response {
    let debit = form.direction == "debit";
    let amount = form.amount.trim();
    let signed = if debit && !amount.starts_with('-') { format!("-{amount}") } else { amount.to_string() };
    if amount.starts_with('-') || amount.starts_with('+') {
        let error = AdminUserError::Invalid("amount: enter a positive amount and choose credit or debit".into());
        return refused(&state, &admin, id, error, Some(&form)).await;
    }
    match users::admin::adjust(&state, &admin.actor, id, &signed, &form.note, None).await {
        Ok(_) => Redirect::to(&format!("/admin/users/{id}?done={}", if debit { "debited" } else { "credited" }))
            .into_response(),
        Err(e) => refused(&state, &admin, id, e, Some(&form)).await,
    }
}

#[derive(Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

/// `POST /admin/users/{id}/update`: group and role.
pub async fn update(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id, _): PathId,
    Form(form): Form<UpdateForm>,
) -> Response {
    let patch = UserPatch { group: form.group, role: form.role, ..UserPatch::default() };
    match users::admin::update(&state, &admin.actor, id, &patch).await {
        Ok(_) => Redirect::to(&format!("/admin/users/{id}?done=updated")).into_response(),
        Err(e) => refused(&state, &admin, id, e, None).await,
    }
}

/// `POST /admin/users/{id}/limits`: the user's own budget and rate limits (blank: the group's).
pub async fn limits(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id, _): PathId,
    Form(form): Form<LimitsForm>,
) -> Response {
    let updated = match form.to_patch() {
        Ok(patch) => {
            let patch = UserPatch { limits: Some(patch), ..UserPatch::default() };
            users::admin::update(&state, &admin.actor, id, &patch).await
        }
        Err(why) => Err(AdminUserError::Invalid(why)),
    };
    match updated {
        Ok(_) => Redirect::to(&format!("/admin/users/{id}?done=updated#limits")).into_response(),
        Err(e @ AdminUserError::Invalid(_)) => match load(&state, &admin, id).await {
            Ok(Some(mut page)) => {
                page.error = Some(e.to_string());
                page.limits_form = form;
                (StatusCode::BAD_REQUEST, page).into_response()
            }
            Ok(None) => not_found(&admin),
            Err(response) => response,
        },
        Err(e) => refused(&state, &admin, id, e, None).await,
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    status: String,
}

/// `POST /admin/users/{id}/status`: disable (ends sessions, stops keys) or enable.
pub async fn status(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id, _): PathId,
    Form(form): Form<StatusForm>,
) -> Response {
    let patch = UserPatch { status: Some(form.status.clone()), ..UserPatch::default() };
    match users::admin::update(&state, &admin.actor, id, &patch).await {
        Ok(_) => {
            let done = if form.status == "disabled" { "disabled" } else { "enabled" };
            Redirect::to(&format!("/admin/users/{id}?done={done}")).into_response()
        }
        Err(e) => refused(&state, &admin, id, e, None).await,
    }
}

/// `POST /admin/users/{id}/clear-flag`: the operator has looked at what the flag says.
pub async fn clear_flag(State(state): State<AppState>, admin: AdminUser, Id(id, _): PathId) -> Response {
    match users::admin::clear_flag(&state, &admin.actor, id).await {
        Ok(_) => Redirect::to(&format!("/admin/users/{id}?done=flag-cleared")).into_response(),
        Err(e) => refused(&state, &admin, id, e, None).await,
    }
}

//! `/console/keys`: the user's API keys — list (prefix only), create with optional limits (the
//! full key shown once), disable / enable, delete. Editing a key's limits is in `edit`. Every
//! action goes through `services::keys` with the user's scope: another user's key id answers 404,
//! as a missing one does.

pub mod edit;
pub mod form;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::Layout;
use super::auth::CurrentUser;
use crate::console::error::ConsoleError;
use crate::console::error::PathId;
use crate::console::layout::format_time;
use crate::domain::money::Money;
use crate::routes::Id;
use crate::services::keys::{self as key_service, KeyPatch, KeyScope, KeyView};
use crate::services::users::UserError;
use crate::state::AppState;
use form::KeyForm;

/// One row of the keys table, formatted (`None`: no limit / never).
pub struct KeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub active: bool,
    pub expired: bool,
    pub spent: String,
    pub limit: Option<String>,
    pub expires: Option<String>,
    pub last_used: Option<String>,
    pub models: Option<String>,
    pub ips: Option<String>,
    pub rpm: Option<i64>,
    pub rpd: Option<i64>,
    pub tpm: Option<i64>,
    pub concurrency: Option<i64>,
    /// Whether the group's fallback models may answer.
    pub fallback: bool,
    pub budget: Option<BudgetShown>,
}

/// A key's budget as its row shows it: spent this period, of how much, per what, and when the
/// period ends.
pub struct BudgetShown {
    pub spent: String,
    pub amount: String,
    /// The period's label in the form ("Per day"), translated by the template.
    pub period: &'static str,
    pub resets: String,
}

impl From<&KeyView> for KeyRow {
    fn from(k: &KeyView) -> Self {
        Self {
            id: k.id,
            name: if k.name.is_empty() { "—".into() } else { k.name.clone() },
            prefix: k.prefix.clone(),
            active: k.status == "active",
            expired: k.expired,
            spent: Money(k.spent).to_string(),
            limit: k.spend_limit.map(|l| Money(l).to_string()),
            expires: k.expires_at.map(format_time),
            last_used: k.last_used_at.map(format_time),
            models: k.models.as_ref().map(|m| m.join(", ")),
            ips: k.ips.as_ref().map(|m| m.join(", ")),
            rpm: k.rpm,
            rpd: k.rpd,
            tpm: k.tpm,
            concurrency: k.concurrency,
            fallback: k.fallback,
            budget: k.budget.map(|amount| BudgetShown {
                spent: Money(k.budget_spent).to_string(),
                amount: Money(amount).to_string(),
                period: form::BUDGET_PERIODS
                    .iter()
                    .find(|(value, _)| Some(*value) == k.budget_period.as_deref())
                    .map_or("", |(_, label)| *label),
                resets: k.budget_resets_at.map(format_time).unwrap_or_default(),
            }),
        }
    }
}

/// A key's edit form, open in the table: its values (as sent, when refused) and the error.
pub struct KeyEdit {
    pub id: i64,
    pub form: KeyForm,
    pub error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "keys.html")]
pub struct KeysPage {
    layout: Layout,
    keys: Vec<KeyRow>,
    /// A key just created: shown in full this once.
    created: Option<String>,
    error: Option<String>,
    /// The create form (kept as sent when refused).
    new_key: KeyForm,
    /// The key whose edit form is open (editing without JavaScript).
    edit: Option<KeyEdit>,
    /// The account's budget and rate limits (its own or its group's), when it has any: every key
    /// is held to them too, whatever its own.
    account: Option<crate::services::limits::UserLimits>,
}

impl KeysPage {
    /// (`id` by reference: the template's loop variables are.)
    fn editing(&self, id: &i64) -> Option<&KeyEdit> {
        self.edit.as_ref().filter(|e| e.id == *id)
    }
}

/// What a keys page shows besides the list.
#[derive(Default)]
pub struct PageParts {
    pub created: Option<String>,
    pub error: Option<String>,
    pub new_key: KeyForm,
    pub edit: Option<KeyEdit>,
}

/// The full keys page; 400 when it carries an error.
pub async fn render(state: &AppState, user: &CurrentUser, parts: PageParts) -> Response {
    let keys = match key_service::list_keys(state, user.id).await {
        Ok(keys) => keys.iter().map(KeyRow::from).collect(),
        Err(e) => return failed(&e),
    };
    let refused = parts.error.is_some() || parts.edit.as_ref().is_some_and(|e| e.error.is_some());
    let status = if refused { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let account = match crate::services::users::get(state, user.id).await {
        Ok(view) => Some(view.limits).filter(|l| l.effective != crate::services::limits::LimitsView::default()),
        Err(e) => return failed(&e),
    };
    let page = KeysPage {
        account,
        layout: user.layout.clone(),
        keys,
        created: parts.created,
        error: parts.error,
        new_key: parts.new_key,
        edit: parts.edit,
    };
    (status, page).into_response()
}

pub(super) fn failed(e: &UserError) -> Response {
    match e {
        UserError::NotFound => ConsoleError::not_found("No such key."),
        e => ConsoleError::internal("a key operation", e),
    }
    .into_response()
}

/// `GET /console/keys`.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Response {
    render(&state, &user, PageParts::default()).await
}

/// `POST /console/keys`: creates a key with the form's limits and shows it once (a fixed key
/// string is for operators' automation, not self-service: the form has no such field).
pub async fn create(State(state): State<AppState>, user: CurrentUser, Form(form): Form<KeyForm>) -> Response {
    let refused =
        |error: String, form: KeyForm| PageParts { error: Some(error), new_key: form, ..PageParts::default() };
    let input = match form.parse(None) {
        Ok(fields) => fields.into_new_key(),
        Err(message) => return render(&state, &user, refused(message, form)).await,
    };
    match key_service::create_key(&state, user.id, input).await {
        Ok((_, key)) => render(&state, &user, PageParts { created: Some(key), ..PageParts::default() }).await,
        Err(UserError::Invalid(message)) => render(&state, &user, refused(message, form)).await,
        Err(e) => failed(&e),
    }
}

#[derive(Deserialize)]
pub struct KeyAction {
    #[serde(default)]
    status: String,
}

/// `POST /console/keys/{id}/status`: `status` = `active` or `disabled`.
pub async fn set_status(
    State(state): State<AppState>,
    user: CurrentUser,
    Id(id, _): PathId,
    Form(form): Form<KeyAction>,
) -> Response {
    let patch = KeyPatch { status: Some(form.status), ..KeyPatch::default() };
    match key_service::update_key(&state, KeyScope::Owner(user.id), id, &patch).await {
        Ok(_) => Redirect::to("/console/keys").into_response(),
        Err(UserError::Invalid(message)) => {
            render(&state, &user, PageParts { error: Some(message), ..PageParts::default() }).await
        }
        Err(e) => failed(&e),
    }
}

/// `POST /console/keys/{id}/delete`.
pub async fn delete(State(state): State<AppState>, user: CurrentUser, Id(id, _): PathId) -> Response {
    match key_service::delete_key(&state, KeyScope::Owner(user.id), id).await {
        Ok(()) => Redirect::to("/console/keys").into_response(),
        Err(e) => failed(&e),
    }
}

//! `/console/keys`: the user's API keys — list (prefix only), create (the full key shown once),
//! disable / enable, delete. Every action checks the key belongs to the logged-in user: another
//! user's key id answers 404, as a missing one does.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::Layout;
use super::auth::CurrentUser;
use crate::db::api_keys::{self, KeyListing};
use crate::domain::money::Money;
use crate::services::users::{self as user_service, KeyPatch, NewKeyInput, UserError};
use crate::state::AppState;

/// One row of the keys table, formatted.
pub struct KeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub active: bool,
    pub spent: String,
    pub limit: String,
    pub last_used: String,
}

impl From<KeyListing> for KeyRow {
    fn from(k: KeyListing) -> Self {
        Self {
            id: k.id,
            name: if k.name.is_empty() { "—".into() } else { k.name },
            prefix: k.prefix,
            active: k.status == "active",
            spent: Money(k.spent).to_string(),
            limit: k.spend_limit.map_or_else(|| "no limit".to_string(), |l| Money(l).to_string()),
            last_used: k.last_used_at.map_or_else(|| "never".to_string(), format_time),
        }
    }
}

pub(super) fn format_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| {
            format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        })
        .unwrap_or_default()
}

#[derive(Template, WebTemplate)]
#[template(path = "keys.html")]
pub struct KeysPage {
    layout: Layout,
    keys: Vec<KeyRow>,
    /// A key just created: shown in full this once.
    created: Option<String>,
    error: Option<String>,
}

async fn page(state: &AppState, user: &CurrentUser, created: Option<String>, error: Option<String>) -> Response {
    let keys = match api_keys::list_for_user(state.db().pool(), user.id).await {
        Ok(keys) => keys.into_iter().map(KeyRow::from).collect(),
        Err(e) => {
            tracing::error!(error = %e, "listing keys failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = KeysPage { layout: user.layout.clone(), keys, created, error };
    (status, page).into_response()
}

/// `GET /console/keys`.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Response {
    page(&state, &user, None, None).await
}

#[derive(Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    spend_limit: String,
}

/// `POST /console/keys`: creates a key and shows it once. Only the name and a spend limit are
/// taken from the form (a fixed key string is for operators' automation, not self-service).
pub async fn create(State(state): State<AppState>, user: CurrentUser, Form(form): Form<NewKeyForm>) -> Response {
    let name = form.name.trim();
    if name.chars().count() > 64 {
        return page(&state, &user, None, Some("The name is at most 64 characters.".into())).await;
    }
    let limit = form.spend_limit.trim();
    let input = NewKeyInput {
        name: (!name.is_empty()).then(|| name.to_string()),
        spend_limit: (!limit.is_empty()).then(|| limit.to_string()),
        ..NewKeyInput::default()
    };
    match user_service::create_key(&state, user.id, input).await {
        Ok((_, key)) => page(&state, &user, Some(key), None).await,
        Err(UserError::Invalid(message)) => page(&state, &user, None, Some(message)).await,
        Err(e) => {
            tracing::error!(error = %e, "creating a key failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct KeyAction {
    #[serde(default)]
    status: String,
}

/// An action on a key: the key must be the user's (else 404: missing and foreign keys look
/// alike). The CSRF token was checked by the console's middleware.
async fn owned(state: &AppState, user: &CurrentUser, id: i64) -> Result<(), Response> {
    match api_keys::owner(state.db().pool(), id).await {
        Ok(Some(owner)) if owner == user.id => Ok(()),
        Ok(_) => Err((StatusCode::NOT_FOUND, "No such key.").into_response()),
        Err(e) => {
            tracing::error!(error = %e, "loading a key failed");
            Err(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

/// `POST /console/keys/{id}/status`: `status` = `active` or `disabled`.
pub async fn set_status(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(form): Form<KeyAction>,
) -> Response {
    if let Err(response) = owned(&state, &user, id).await {
        return response;
    }
    match user_service::set_key_status(&state, id, &KeyPatch { status: form.status }).await {
        Ok(()) => Redirect::to("/console/keys").into_response(),
        Err(UserError::Invalid(message)) => page(&state, &user, None, Some(message)).await,
        Err(UserError::NotFound) => (StatusCode::NOT_FOUND, "No such key.").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "changing a key failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `POST /console/keys/{id}/delete`.
pub async fn delete(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> Response {
    if let Err(response) = owned(&state, &user, id).await {
        return response;
    }
    match user_service::delete_key(&state, id).await {
        Ok(()) | Err(UserError::NotFound) => Redirect::to("/console/keys").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "deleting a key failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

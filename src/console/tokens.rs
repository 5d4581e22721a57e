//! The access-token section of `/console/profile` (`templates/profile_tokens.html`): create a
//! personal access token for `/api/me` (a name, optionally the last UTC day it works; the token
//! is shown once), list and revoke them. htmx swaps the section in place; without JavaScript,
//! creating answers a page holding the section (with the new token) and revoking redirects
//! back to the profile. Another user's token id answers 404, as a missing one does.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::Layout;
use super::auth::CurrentUser;
use super::htmx::{HxRequest, vary};
use super::keys::form::{last_day, parse_last_day};
use super::layout::format_time;
use crate::console::error::ConsoleError;
use crate::console::error::PathId;
use crate::routes::Id;
use crate::services::accounts::access_tokens::{self, TokenView};
use crate::services::users::UserError;
use crate::state::AppState;

/// One row of the tokens table, formatted (`None`: never).
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub expires: Option<String>,
    pub expired: bool,
    pub last_used: Option<String>,
    pub created: String,
}

impl From<TokenView> for TokenRow {
    fn from(t: TokenView) -> Self {
        Self {
            id: t.id,
            name: if t.name.is_empty() { "—".into() } else { t.name },
            prefix: t.prefix,
            expires: t.expires_at.map(last_day),
            expired: t.expired,
            last_used: t.last_used_at.map(format_time),
            created: format_time(t.created_at),
        }
    }
}

/// What the section shows.
#[derive(Default)]
pub struct TokenSection {
    pub rows: Vec<TokenRow>,
    /// A token just created: shown in full this once.
    pub created: Option<String>,
    pub error: Option<String>,
    /// The form as sent (kept when refused).
    pub name: String,
    pub expires: String,
}

impl TokenSection {
    /// The user's tokens; a failure is the 500 answer to return.
    pub async fn load(state: &AppState, user_id: i64) -> Result<Self, Response> {
        match access_tokens::list(state, user_id).await {
            Ok(tokens) => Ok(Self { rows: tokens.into_iter().map(TokenRow::from).collect(), ..Self::default() }),
            Err(e) => Err(failed(&e)),
        }
    }
}

/// The section alone (htmx).
#[derive(Template, WebTemplate)]
#[template(path = "profile_tokens.html")]
pub struct TokensFragment {
    layout: Layout,
    tokens: TokenSection,
}

/// The section in a page of its own (answers without JavaScript).
#[derive(Template, WebTemplate)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    layout: Layout,
    tokens: TokenSection,
}

fn failed(e: &UserError) -> Response {
    match e {
        UserError::NotFound => ConsoleError::not_found("No such token."),
        e => ConsoleError::internal("an access token operation", e),
    }
    .into_response()
}

/// The section after an action: a fragment for htmx (200 even when refused, so htmx swaps the
/// message in), else the page (400 when refused).
async fn answer(state: &AppState, user: &CurrentUser, hx: bool, mut section: TokenSection) -> Response {
    match TokenSection::load(state, user.id).await {
        Ok(loaded) => section.rows = loaded.rows,
        Err(response) => return response,
    }
    let layout = user.layout.clone();
    if hx {
        return vary(TokensFragment { layout, tokens: section }.into_response());
    }
    let status = if section.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    vary((status, TokensPage { layout, tokens: section }).into_response())
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    /// `YYYY-MM-DD`, the last day the token works (blank: no expiry).
    #[serde(default)]
    expires: String,
}

/// `POST /console/profile/tokens`.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    HxRequest(hx): HxRequest,
    Form(form): Form<TokenForm>,
) -> Response {
    let refused = |error: String, form: TokenForm| TokenSection {
        error: Some(error),
        name: form.name,
        expires: form.expires,
        ..TokenSection::default()
    };
    let expires_at = match parse_last_day(&form.expires, None) {
        Ok(at) => at,
        Err(message) => return answer(&state, &user, hx, refused(message, form)).await,
    };
    match access_tokens::create(&state, user.id, &form.name, expires_at).await {
        Ok((_, secret)) => {
            answer(&state, &user, hx, TokenSection { created: Some(secret), ..TokenSection::default() }).await
        }
        Err(UserError::Invalid(message)) => answer(&state, &user, hx, refused(message, form)).await,
        Err(e) => failed(&e),
    }
}

/// `POST /console/profile/tokens/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    user: CurrentUser,
    HxRequest(hx): HxRequest,
    Id(id, _): PathId,
) -> Response {
    match access_tokens::revoke(&state, user.id, id).await {
        Ok(()) if hx => answer(&state, &user, hx, TokenSection::default()).await,
        Ok(()) => vary(Redirect::to("/console/profile#tokens").into_response()),
        Err(e) => failed(&e),
    }
}

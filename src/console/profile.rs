//! `/console/profile`: the display name, the email address (changed through a link to the new
//! address, after the current password), the password (the current one required; every other
//! session of the user ends, and the access tokens too unless the user unticks the box), how
//! many sessions are signed in, and sign out everywhere else.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Layout;
use super::auth::CurrentUser;
use crate::console::error::ConsoleError;
use crate::domain::password;
use crate::services::accounts::recovery::{self, EmailChange, EmailChangeError};
use crate::services::users;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "profile.html")]
pub struct ProfilePage {
    layout: Layout,
    email: String,
    display_name: String,
    sessions: i64,
    message: Option<String>,
    error: Option<String>,
    tokens: super::tokens::TokenSection,
}

async fn render(state: &AppState, user: &CurrentUser, message: Option<String>, error: Option<String>) -> Response {
    let sessions = match users::session_count(state, user.id).await {
        Ok(n) => n.max(1),
        Err(e) => return ConsoleError::internal("the profile page", e).into_response(),
    };
    let (email, display_name) = match users::summary(state, user.id).await {
        Ok(Some(summary)) => (summary.email, summary.display_name),
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return ConsoleError::internal("the profile page", e).into_response(),
    };
    let tokens = match super::tokens::TokenSection::load(state, user.id).await {
        Ok(tokens) => tokens,
        Err(response) => return response,
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let t = |text: String| user.layout.t(&text).to_string();
    let (message, error) = (message.map(t), error.map(t));
    let page = ProfilePage { layout: user.layout.clone(), email, display_name, sessions, message, error, tokens };
    (status, page).into_response()
}

#[derive(Deserialize)]
pub struct ProfileQuery {
    /// `email`: a change of address was just confirmed.
    #[serde(default)]
    done: String,
}

/// `GET /console/profile`.
pub async fn page(State(state): State<AppState>, user: CurrentUser, Query(query): Query<ProfileQuery>) -> Response {
    let message = (query.done == "email").then(|| "Your new email address is confirmed.".to_string());
    render(&state, &user, message, None).await
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    display_name: String,
}

/// `POST /console/profile/name`.
pub async fn change_name(State(state): State<AppState>, user: CurrentUser, Form(form): Form<NameForm>) -> Response {
    let name = form.display_name.trim();
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return render(&state, &user, None, Some("The display name is at most 64 characters.".into())).await;
    }
    if let Err(e) = users::set_display_name(&state, user.id, name).await {
        return ConsoleError::internal("the profile page", e).into_response();
    }
    render(&state, &user, Some("Saved.".into()), None).await
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    email: String,
}

/// `POST /console/profile/email`: the current password, then a link to the new address (or the
/// change at once when the site sends no mail).
pub async fn change_email(State(state): State<AppState>, user: CurrentUser, Form(form): Form<EmailForm>) -> Response {
    match recovery::change_email(&state, user.id, &form.password, &form.email, user.layout.lang).await {
        Ok(EmailChange::LinkSent) => {
            let message = "We sent a link to the new address. Your email changes when you open it.";
            render(&state, &user, Some(message.into()), None).await
        }
        Ok(EmailChange::Changed) => render(&state, &user, Some("Your email address was changed.".into()), None).await,
        Err(EmailChangeError::Internal(e)) => ConsoleError::internal("changing an email", e).into_response(),
        Err(e) => render(&state, &user, None, Some(e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    revoke_tokens: Option<String>,
    #[serde(default)]
    tokens_choice: Option<String>,
}

/// The "Also revoke my access tokens" checkbox of the password forms (profile and reset), checked
/// by default. A form that shows it also sends `tokens_choice`, so an unchecked box (sent as
/// nothing) can be told from a post that never offered the choice (an older page, a script):
/// that one revokes, the safe default.
pub(super) fn revoke_tokens_chosen(revoke_tokens: Option<&str>, tokens_choice: Option<&str>) -> bool {
    revoke_tokens.is_some() || tokens_choice.is_none()
}

/// `POST /console/profile/password`.
pub async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<PasswordForm>,
) -> Response {
    let hash = match users::password_hash(&state, user.id).await {
        Ok(Some(hash)) => hash,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return ConsoleError::internal("the profile page", e).into_response(),
    };
    let current = form.current.clone();
    let Ok(matches) = crate::services::accounts::passwords::verify(current, Some(hash)).await else {
        return super::auth::busy();
    };
    if !matches {
        return render(&state, &user, None, Some("The current password is not right.".into())).await;
    }
    if let Err(message) = password::validate(&form.new) {
        return render(&state, &user, None, Some(message)).await;
    }
    let new = form.new.clone();
    let hashed = match crate::services::accounts::passwords::hash(new).await {
        Ok(Ok(hash)) => hash,
        Ok(Err(e)) => return ConsoleError::internal("hashing a new password", e).into_response(),
        Err(_) => return super::auth::busy(),
    };
    if let Err(e) = users::set_password_hash(&state, user.id, &hashed).await {
        return ConsoleError::internal("the profile page", e).into_response();
    }
    // Whoever else holds a session (maybe whoever learned the old password) is signed out.
    let keep = user.session.id().map(|id| id.to_string());
    if let Err(e) = users::end_sessions(&state, user.id, keep.as_deref()).await {
        return ConsoleError::internal("the profile page", e).into_response();
    }
    if revoke_tokens_chosen(form.revoke_tokens.as_deref(), form.tokens_choice.as_deref()) {
        if let Err(e) = crate::services::accounts::access_tokens::revoke_all(&state, user.id).await {
            return ConsoleError::internal("the profile page", e).into_response();
        }
        let message = "Password changed. Every other session was signed out and your access tokens were revoked.";
        return render(&state, &user, Some(message.into()), None).await;
    }
    render(&state, &user, Some("Password changed. Every other session was signed out.".into()), None).await
}

/// `POST /console/profile/sign-out-others`.
pub async fn sign_out_others(State(state): State<AppState>, user: CurrentUser) -> Response {
    let keep = user.session.id().map(|id| id.to_string());
    match users::end_sessions(&state, user.id, keep.as_deref()).await {
        Ok(n) => render(&state, &user, Some(format!("Signed out {n} other session(s).")), None).await,
        Err(e) => ConsoleError::internal("the profile page", e).into_response(),
    }
}

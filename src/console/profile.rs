//! `/console/profile`: change the password (the current one required; every other session of the
//! user ends), see how many sessions are signed in, and sign out everywhere else.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Layout;
use super::auth::CurrentUser;
use super::session_store::{count_user_sessions, end_user_sessions};
use crate::db::users;
use crate::domain::password;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "profile.html")]
pub struct ProfilePage {
    layout: Layout,
    email: String,
    sessions: i64,
    message: Option<String>,
    error: Option<String>,
    tokens: super::tokens::TokenSection,
}

async fn render(state: &AppState, user: &CurrentUser, message: Option<String>, error: Option<String>) -> Response {
    let sessions = match count_user_sessions(state.db(), user.id).await {
        Ok(n) => n.max(1),
        Err(e) => return failed(&e),
    };
    let tokens = match super::tokens::TokenSection::load(state, user.id).await {
        Ok(tokens) => tokens,
        Err(response) => return response,
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = ProfilePage { layout: user.layout.clone(), email: user.email.clone(), sessions, message, error, tokens };
    (status, page).into_response()
}

/// `GET /console/profile`.
pub async fn page(State(state): State<AppState>, user: CurrentUser) -> Response {
    render(&state, &user, None, None).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

/// `POST /console/profile/password`.
pub async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<PasswordForm>,
) -> Response {
    let hash = match users::password_hash(state.db().pool(), user.id).await {
        Ok(Some(hash)) => hash,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return failed(&e),
    };
    let current = form.current.clone();
    if !tokio::task::spawn_blocking(move || password::verify(&current, &hash)).await.unwrap_or(false) {
        return render(&state, &user, None, Some("The current password is not right.".into())).await;
    }
    if let Err(message) = password::validate(&form.new) {
        return render(&state, &user, None, Some(message)).await;
    }
    let new = form.new.clone();
    let hashed = match tokio::task::spawn_blocking(move || password::hash(&new)).await {
        Ok(Ok(hash)) => hash,
        _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    if let Err(e) = users::set_password_hash(state.db().writer(), user.id, &hashed).await {
        return failed(&e);
    }
    // Whoever else holds a session (maybe whoever learned the old password) is signed out.
    let keep = user.session.id().map(|id| id.to_string());
    if let Err(e) = end_user_sessions(state.db(), user.id, keep.as_deref()).await {
        return failed(&e);
    }
    render(&state, &user, Some("Password changed. Every other session was signed out.".into()), None).await
}

/// `POST /console/profile/sign-out-others`.
pub async fn sign_out_others(State(state): State<AppState>, user: CurrentUser) -> Response {
    let keep = user.session.id().map(|id| id.to_string());
    match end_user_sessions(state.db(), user.id, keep.as_deref()).await {
        Ok(n) => render(&state, &user, Some(format!("Signed out {n} other session(s).")), None).await,
        Err(e) => failed(&e),
    }
}

fn failed(e: &sqlx::Error) -> Response {
    tracing::error!(error = %e, "the profile page failed");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

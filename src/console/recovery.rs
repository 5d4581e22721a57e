//! The pages behind emailed links and the password reset: `/verify-email` (a new account's
//! address, or a changed one), `/forgot-password` and `/reset-password`. A link's GET only shows
//! a page with a button; using it is a POST (mail scanners that follow links use nothing).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::Layout;
use super::auth::{ClientAddr, LOGIN, NoticePage, busy, too_many};
use crate::console::error::ConsoleError;
use crate::services::accounts::recovery::{self, ResetError};
use crate::services::accounts::signup::{self, Verified};
use crate::services::attempts;
use crate::state::AppState;

const LINK_GONE: &str = "This link is not valid any more: it was used or has expired. Ask for a new one.";

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "verify_email.html")]
pub struct VerifyEmailPage {
    layout: Layout,
    token: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "forgot_password.html")]
pub struct ForgotPasswordPage {
    layout: Layout,
    error: Option<&'static str>,
}

#[derive(Template, WebTemplate)]
#[template(path = "reset_password.html")]
pub struct ResetPasswordPage {
    layout: Layout,
    token: String,
    error: Option<String>,
}

fn link_gone(layout: Layout) -> Response {
    (StatusCode::BAD_REQUEST, NoticePage::new(layout, "This link has expired", LINK_GONE)).into_response()
}

/// `GET /verify-email?token=…`: a button that confirms the address.
pub async fn verify_page(State(state): State<AppState>, layout: Layout, Query(query): Query<TokenQuery>) -> Response {
    match signup::verification_link_is_open(&state, &query.token).await {
        Ok(true) => VerifyEmailPage { layout, token: query.token }.into_response(),
        Ok(false) => link_gone(layout),
        Err(e) => ConsoleError::internal("an email-link page", e).into_response(),
    }
}

/// `POST /verify-email`: uses the link.
pub async fn verify(State(state): State<AppState>, layout: Layout, Form(form): Form<TokenQuery>) -> Response {
    match signup::verify(&state, &form.token).await {
        Ok(Some(Verified::EmailChanged(_))) if layout.logged_in => {
            Redirect::to("/console/profile?done=email").into_response()
        }
        Ok(Some(_)) => Redirect::to("/login?done=verified").into_response(),
        Ok(None) => link_gone(layout),
        Err(e) => ConsoleError::internal("an email-link page", e).into_response(),
    }
}

/// `GET /forgot-password`.
pub async fn forgot_page(State(state): State<AppState>, layout: Layout) -> Response {
    if !state.mailer().is_configured() {
        return no_mail(layout);
    }
    ForgotPasswordPage { layout, error: None }.into_response()
}

/// Without SMTP no link can be sent: say who can help instead of pretending.
fn no_mail(layout: Layout) -> Response {
    let message = "This site does not send email, so passwords cannot be reset by email. Ask the site's operators to reset yours.";
    NoticePage::new(layout, "Reset your password", message).into_response()
}

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// `POST /forgot-password`: the same answer for every address; a link only to real accounts.
/// Requests count towards the login throttle (per address and per account), so nobody can
/// flood an inbox.
pub async fn forgot(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    layout: Layout,
    Form(form): Form<ForgotForm>,
) -> Response {
    if !state.mailer().is_configured() {
        return no_mail(layout);
    }
    let email = form.email.trim().to_lowercase();
    // Over the limit, no mail goes out, and the answer stays the same.
    if attempts::attempt(&state, ip, "forgot", Some(&email)).await.is_ok()
        && let Err(e) = recovery::request_reset(&state, &email, layout.lang).await
    {
        return ConsoleError::internal("an email-link page", e).into_response();
    }
    NoticePage::new(
        layout,
        "Check your inbox",
        "If an account exists for that address, we sent it a link to choose a new password. The link expires in one hour.",
    )
    .into_response()
}

/// `GET /reset-password?token=…`: the new-password form.
pub async fn reset_page(State(state): State<AppState>, layout: Layout, Query(query): Query<TokenQuery>) -> Response {
    match recovery::reset_link_is_open(&state, &query.token).await {
        Ok(true) => ResetPasswordPage { layout, token: query.token, error: None }.into_response(),
        Ok(false) => link_gone(layout),
        Err(e) => ConsoleError::internal("an email-link page", e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    revoke_tokens: Option<String>,
    #[serde(default)]
    tokens_choice: Option<String>,
}

/// `POST /reset-password`: sets the password, signs out every session (and revokes the access
/// tokens, unless the box was unticked), then to the login page. Every attempt counts towards the
/// client's throttle (the token is checked before any hashing, but a flood of bogus tokens still
/// costs lookups).
pub async fn reset(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    layout: Layout,
    Form(form): Form<ResetForm>,
) -> Response {
    if let Err(wait) = attempts::attempt(&state, ip, "reset-password", None).await {
        return too_many(wait);
    }
    let revoke_tokens =
        super::profile::revoke_tokens_chosen(form.revoke_tokens.as_deref(), form.tokens_choice.as_deref());
    match recovery::reset_password(&state, &form.token, &form.password, revoke_tokens).await {
        Ok(email) => {
            // The link proved the inbox: logins to the account are open again from everywhere.
            attempts::clear_account(&state, LOGIN, &email).await;
            Redirect::to("/login?done=reset").into_response()
        }
        Err(ResetError::Busy) => busy(),
        Err(ResetError::WeakPassword(message)) => {
            let page = ResetPasswordPage { layout, token: form.token, error: Some(message) };
            (StatusCode::BAD_REQUEST, page).into_response()
        }
        Err(ResetError::BadLink) => link_gone(layout),
        Err(ResetError::Internal(e)) => ConsoleError::internal("resetting a password", e).into_response(),
    }
}

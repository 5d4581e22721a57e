//! Signing up, logging in and out, and the logged-in user of a console request.
//!
//! Login answers identically for unknown emails, wrong passwords and disabled accounts, and takes
//! comparable time (a password hash is checked either way). The session id is rotated at login
//! and the session ended at logout.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::Layout;
use super::session_store::USER_KEY;
use crate::console::error::ConsoleError;
use crate::domain::email::Email;
use crate::domain::money::Money;
use crate::services::accounts::passwords;
use crate::services::accounts::signup::{self, SignupError, SignupInput, SignupOutcome};
use crate::services::attempts;
use crate::services::users;
use crate::state::AppState;

/// The logged-in user; pages that need one redirect to `/login` without it.
pub struct CurrentUser {
    pub id: i64,
    pub email: String,
    pub balance: String,
    /// `root`, `admin`, `reseller` or `user`.
    pub role: String,
    pub session: Session,
    /// The page layout for this viewer.
    pub layout: Layout,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let to_login = || Redirect::to("/login").into_response();
        let Ok(Some(id)) = session.get::<i64>(USER_KEY).await else { return Err(to_login()) };
        match users::summary(state, id).await {
            Ok(Some(user)) if user.status == "active" => {
                let layout = Layout::from_request_parts(parts, state).await?;
                let balance = Money(user.balance).to_string();
                Ok(Self { id, email: user.email, balance, role: user.role, session, layout })
            }
            Ok(_) => {
                let _ = session.flush().await;
                Err(to_login())
            }
            Err(e) => Err(ConsoleError::internal("loading the session's user", e).into_response()),
        }
    }
}

/// The client's address, when the server knows it (tests and Unix sockets may not); through
/// trusted proxies only (`crate::client_ip`).
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(crate::client_ip::of(parts).0))
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    layout: Layout,
    email: String,
    error: Option<&'static str>,
    /// Why the user is here: just verified, or just reset the password.
    notice: Option<&'static str>,
}

/// A page that only says something: "check your inbox", "this link has expired".
#[derive(Template, WebTemplate)]
#[template(path = "notice.html")]
pub struct NoticePage {
    layout: Layout,
    title: &'static str,
    message: &'static str,
}

impl NoticePage {
    pub fn new(layout: Layout, title: &'static str, message: &'static str) -> Self {
        Self { layout, title, message }
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    /// `verified` (an email link was used) or `reset` (a new password was set).
    #[serde(default)]
    done: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "signup.html")]
pub struct SignupPage {
    layout: Layout,
    invite: String,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct Credentials {
    /// An invitation code (signup only).
    #[serde(default)]
    invite: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `GET /login`.
pub async fn login_page(layout: Layout, Query(query): Query<LoginQuery>) -> LoginPage {
    let notice = match query.done.as_str() {
        "verified" => Some("Your email address is confirmed. Log in to continue."),
        "reset" => Some("Your password was changed and every session signed out. Log in with the new password."),
        _ => None,
    };
    LoginPage { layout, email: String::new(), error: None, notice }
}

/// `POST /login`: one answer for every failure.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    session: Session,
    layout: Layout,
    Form(form): Form<Credentials>,
) -> Response {
    // The slot is taken before the password is checked, keyed by the submitted email whether or
    // not it has an account: concurrent guesses cannot all slip through, and a 429 says nothing.
    if let Err(wait) = attempts::attempt(&state, ip, LOGIN, Some(&form.email)).await {
        return too_many(wait);
    }
    let found = match Email::parse(&form.email) {
        Ok(email) => users::credentials(&state, &email).await.ok().flatten(),
        Err(_) => None,
    };
    let (id, hash, active) = match found {
        Some((id, hash, status)) => (Some(id), Some(hash), status == "active"),
        None => (None, None, false),
    };
    let Ok(matches) = passwords::verify(form.password.clone(), hash).await else {
        attempts::give_back(&state, ip, LOGIN, &form.email).await;
        return busy();
    };
    match id {
        Some(id) if matches && active => {
            attempts::succeeded(&state, ip, LOGIN, &form.email).await;
            if let Some(response) = unverified(&state, id, &layout).await {
                return response;
            }
            if !log_in(&session, id).await {
                return ConsoleError::internal("logging in", "the session could not be written").into_response();
            }
            Redirect::to("/console").into_response()
        }
        _ => {
            let error = Some(layout.t("Incorrect email or password."));
            let page = LoginPage { layout, email: form.email, error, notice: None };
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
    }
}

/// The throttle's scope for logins (reset links clear it: `console::recovery`).
pub(super) const LOGIN: &str = "login";

/// 503 with `Retry-After`, when password hashing is saturated (`services::accounts::passwords`): the same
/// answer for every account, given before any account is looked at.
pub(super) fn busy() -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, "The server is busy. Try again in a moment.").into_response();
    response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("2"));
    response
}

/// 429 with `Retry-After`, for a client over the throttle's limits.
pub(super) fn too_many(wait: std::time::Duration) -> Response {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let message = format!("Too many attempts. Try again in {minutes} minute(s), or reset your password.");
    let mut response = (StatusCode::TOO_MANY_REQUESTS, message).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    response
}

/// Starts the user's session (the first row written for this visitor): a new session id, so a
/// fixated id from before is worthless and the CSRF token, bound to the id, changes too. False
/// when the session store failed.
async fn log_in(session: &Session, id: i64) -> bool {
    session.cycle_id().await.is_ok() && session.insert(USER_KEY, id).await.is_ok()
}

/// With verification required, an account whose address is not verified yet cannot log in: it
/// gets a fresh link instead (only after the right password, so this tells nobody else anything).
async fn unverified(state: &AppState, id: i64, layout: &Layout) -> Option<Response> {
    if !state.site().verification_required(state.mailer().is_configured()) {
        return None;
    }
    match users::verification(state, id).await {
        Ok(Some((_, Some(_), _))) => None,
        Ok(Some((email, None, _))) => {
            let sent = match Email::parse(&email) {
                Ok(email) => signup::send_verification(state, id, &email, layout.lang).await,
                Err(_) => Ok(()),
            };
            if let Err(e) = sent {
                tracing::error!(error = %e, "sending a verification link failed");
            }
            let page = NoticePage::new(
                layout.clone(),
                "Confirm your email address",
                "Your email address is not confirmed yet. We sent you a new link: open it, then log in.",
            );
            Some((StatusCode::FORBIDDEN, page).into_response())
        }
        Ok(None) => Some(StatusCode::NOT_FOUND.into_response()),
        Err(e) => Some(ConsoleError::internal("loading a user", e).into_response()),
    }
}

#[derive(Deserialize)]
pub struct SignupQuery {
    /// An invitation link's code (`/signup?aff=CODE`).
    #[serde(default)]
    aff: String,
}

/// `GET /signup`.
pub async fn signup_page(layout: Layout, Query(query): Query<SignupQuery>) -> SignupPage {
    SignupPage { layout, invite: query.aff, email: String::new(), error: None }
}

/// `POST /signup`: creates the account; logs it in when no verification is needed, else says
/// to check the inbox (the same answer whether or not the address already had an account).
pub async fn signup(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    session: Session,
    layout: Layout,
    Form(form): Form<Credentials>,
) -> Response {
    // Every attempt counts, per address and per email: nobody mass-creates accounts or mails
    // one inbox over and over.
    if let Err(wait) = attempts::attempt(&state, ip, "signup", Some(&form.email)).await {
        return too_many(wait);
    }
    let input = SignupInput {
        email: form.email.clone(),
        password: form.password,
        invite: form.invite.clone(),
        lang: layout.lang,
    };
    let error = match signup::sign_up(&state, input).await {
        Ok(SignupOutcome::Created(id)) => {
            if !log_in(&session, id).await {
                return ConsoleError::internal("logging in", "the session could not be written").into_response();
            }
            return Redirect::to("/console").into_response();
        }
        Ok(SignupOutcome::CheckInbox) => {
            return NoticePage::new(
                layout,
                "Check your inbox",
                "We sent a link to the address you gave. Open it to confirm your email, then log in.",
            )
            .into_response();
        }
        Err(SignupError::Busy) => return busy(),
        Err(SignupError::Internal(e)) => {
            return ConsoleError::internal("signup", e).into_response();
        }
        Err(e) => e,
    };
    let status = match error {
        SignupError::Closed | SignupError::InviteRequired | SignupError::DomainNotAllowed => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = layout.t(&error.to_string()).to_string();
    let page = SignupPage { layout, invite: form.invite, email: form.email, error: Some(message) };
    (status, page).into_response()
}

/// `POST /logout`: ends the session.
pub async fn logout(session: Session) -> Response {
    let _ = session.flush().await;
    Redirect::to("/login").into_response()
}

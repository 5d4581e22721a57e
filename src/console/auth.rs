//! Signing up, logging in and out, and the logged-in user of a console request.
//!
//! Login answers identically for unknown emails, wrong passwords and disabled accounts, and takes
//! comparable time (a password hash is checked either way). The session id is rotated at login
//! and the session ended at logout.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::Layout;
use crate::config::SignupMode;
use crate::db::ledger::Kind;
use crate::db::users;
use crate::domain::email::Email;
use crate::domain::money::Money;
use crate::domain::password;
use crate::services::users::{self as user_service, NewUserInput, UserError};
use crate::state::AppState;

pub(super) const USER_KEY: &str = "user_id";

/// A real hash of a random password, checked for unknown emails so they take as long as known ones.
static DECOY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| password::hash(&password::generate()).unwrap_or_default());

/// The logged-in user; pages that need one redirect to `/login` without it.
pub struct CurrentUser {
    pub id: i64,
    pub email: String,
    pub balance: String,
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
        match users::summary(state.db().pool(), id).await {
            Ok(Some(user)) if user.status == "active" => {
                let layout = Layout::from_request_parts(parts, state).await?;
                Ok(Self { id, email: user.email, balance: Money(user.balance).to_string(), session, layout })
            }
            Ok(_) => {
                let _ = session.flush().await;
                Err(to_login())
            }
            Err(e) => {
                tracing::error!(error = %e, "loading the session's user failed");
                Err(StatusCode::INTERNAL_SERVER_ERROR.into_response())
            }
        }
    }
}

/// The client's address, when the server knows it (tests and Unix sockets may not).
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    layout: Layout,
    email: String,
    error: Option<&'static str>,
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
pub async fn login_page(layout: Layout) -> LoginPage {
    LoginPage { layout, email: String::new(), error: None }
}

/// `POST /login`: one answer for every failure.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    session: Session,
    layout: Layout,
    Form(form): Form<Credentials>,
) -> Response {
    if let Err(wait) = state.login_throttle().check(ip, &form.email) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let message = format!("Too many attempts. Try again in {minutes} minute(s), or reset your password.");
        let mut response = (StatusCode::TOO_MANY_REQUESTS, message).into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        return response;
    }
    let found = match Email::parse(&form.email) {
        Ok(email) => users::credentials(state.db().pool(), &email).await.ok().flatten(),
        Err(_) => None,
    };
    let (id, hash, active) = match found {
        Some((id, hash, status)) => (Some(id), hash, status == "active"),
        None => (None, DECOY_HASH.clone(), false),
    };
    let plain = form.password.clone();
    let matches = tokio::task::spawn_blocking(move || password::verify(&plain, &hash)).await.unwrap_or(false);
    match id {
        Some(id) if matches && active => {
            state.login_throttle().succeeded(ip, &form.email);
            // A new session id at login: a fixated id from before is worthless.
            if session.cycle_id().await.is_err() || session.insert(USER_KEY, id).await.is_err() {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            Redirect::to("/console").into_response()
        }
        _ => {
            state.login_throttle().failed(ip, &form.email);
            let page = LoginPage { layout, email: form.email, error: Some("Incorrect email or password.") };
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct SignupQuery {
    /// An invitation link's code (`/signup?aff=CODE`).
    #[serde(default)]
    aff: String,
}

/// `GET /signup`.
pub async fn signup_page(layout: Layout, axum::extract::Query(query): axum::extract::Query<SignupQuery>) -> SignupPage {
    SignupPage { layout, invite: query.aff, email: String::new(), error: None }
}

/// `POST /signup`: creates the account and logs it in.
pub async fn signup(
    State(state): State<AppState>,
    session: Session,
    layout: Layout,
    Form(form): Form<Credentials>,
) -> Response {
    let invite = form.invite.trim().to_string();
    let refuse = |error: &str| error.to_string();
    let closed = match state.config().signup_mode {
        SignupMode::Closed => Some(refuse("Sign-ups are closed on this site. Ask its operators for an account.")),
        SignupMode::InviteOnly if invite.is_empty() => {
            Some(refuse("This site is invite-only: enter an invitation code."))
        }
        _ => None,
    };
    if let Some(error) = closed {
        let page = SignupPage { layout, invite, email: form.email, error: Some(error) };
        return (StatusCode::FORBIDDEN, page).into_response();
    }
    let inviter = if invite.is_empty() {
        None
    } else {
        match users::id_by_invite_code(state.db().pool(), &invite).await {
            Ok(Some(id)) => Some(id),
            Ok(None) => {
                let error = Some("This invitation code is not valid.".to_string());
                let page = SignupPage { layout, invite, email: form.email, error };
                return (StatusCode::BAD_REQUEST, page).into_response();
            }
            Err(e) => {
                tracing::error!(error = %e, "looking up an invitation code failed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
    };
    let input = NewUserInput { email: form.email.clone(), password: form.password, group: None, role: None };
    let error = match user_service::create(&state, input).await {
        Ok(user) => {
            if let Some(inviter) = inviter
                && let Err(e) = users::set_invited_by(state.db().writer(), user.id, inviter).await
            {
                tracing::error!(error = %e, "recording the inviter failed");
            }
            let welcome = state.config().welcome_credit;
            if welcome > 0 {
                let key = format!("welcome:{}", user.id);
                let credited =
                    crate::billing::adjust(state.db(), user.id, welcome, Kind::WelcomeCredit, None, Some(&key)).await;
                if let Err(e) = credited {
                    tracing::error!(error = %e, "granting the welcome credit failed");
                }
            }
            if session.cycle_id().await.is_err() || session.insert(USER_KEY, user.id).await.is_err() {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            return Redirect::to("/console").into_response();
        }
        Err(UserError::Invalid(message)) => message,
        Err(UserError::EmailTaken) => "An account with this email already exists; log in instead.".to_string(),
        Err(e) => {
            tracing::error!(error = %e, "signup failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let page = SignupPage { layout, invite, email: form.email, error: Some(error) };
    (StatusCode::BAD_REQUEST, page).into_response()
}

/// `POST /logout`: ends the session.
pub async fn logout(session: Session) -> Response {
    let _ = session.flush().await;
    Redirect::to("/login").into_response()
}

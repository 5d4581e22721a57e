//! CSRF protection for the console, without storing anything for anonymous visitors.
//!
//! Every state-changing request carries a token — htmx sends it as the `X-CSRF-Token` header
//! (from `hx-headers` on `<body>`), plain forms as the `csrf` field — that is an HMAC, under
//! the instance's secret key, of a secret the browser holds in an HttpOnly cookie:
//! - logged in: the session id (the session cookie), so the token changes when the id is
//!   rotated at login and dies with the session;
//! - anonymous: a random nonce in the `burncloud_csrf` cookie (a signed double-submit cookie),
//!   set on the first page view. Nothing is written to the database until someone logs in or
//!   signs up, so anonymous page views cost no rows.
//!
//! Another site can neither read the cookie nor compute the HMAC without the key, so it cannot
//! forge the token; a token copied from one browser is worthless in another (its cookie
//! differs). Beside the token, a request whose `Origin` (or, without one, `Referer`) is present
//! and foreign is refused. One middleware ([`protect`]) checks every non-GET console request,
//! so no handler can forget; GET requests never change state.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tower_sessions::Session;

use super::auth::NoticePage;
use super::layout::{Layout, cookie};
use super::session_store::USER_KEY;
use crate::state::AppState;

const FIELD: &str = "csrf";
/// The header htmx requests carry the token in.
pub const HEADER: &str = "x-csrf-token";
/// The anonymous visitor's nonce.
pub const COOKIE: &str = "burncloud_csrf";
const NONCE_LEN: usize = 43;
/// Console forms are small; a bigger body is refused before it is read.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The request's anonymous nonce (from its cookie, or the one this response sets).
#[derive(Clone)]
struct Nonce(String);

/// What a token is bound to.
enum Binding<'a> {
    Session(&'a str),
    Anonymous(&'a str),
}

fn sign(state: &AppState, binding: Binding<'_>) -> String {
    let (kind, value) = match binding {
        Binding::Session(id) => ("session", id),
        Binding::Anonymous(nonce) => ("anonymous", nonce),
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(state.secret_key().bytes()) else {
        unreachable!("HMAC takes any key")
    };
    mac.update(b"burncloud csrf\0");
    mac.update(kind.as_bytes());
    mac.update(b"\0");
    mac.update(value.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The token for this request's forms: bound to the session when someone is logged in, else to
/// the nonce cookie. `logged_in` comes from the session (already loaded by the caller).
pub fn token(state: &AppState, parts: &Parts, session: &Session, logged_in: bool) -> String {
    match (logged_in, session.id()) {
        (true, Some(id)) => sign(state, Binding::Session(&id.to_string())),
        _ => match parts.extensions.get::<Nonce>() {
            Some(Nonce(nonce)) => sign(state, Binding::Anonymous(nonce)),
            None => String::new(),
        },
    }
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_nonce(value: &str) -> bool {
    value.len() == NONCE_LEN && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The origin (`scheme://host[:port]`) of a URL, as browsers write it in `Origin`.
fn origin_of(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// True when the request's `Origin`, or without one its `Referer`, is absent or this site: the
/// public URL's origin, or the host the request was sent to (what the browser's address bar
/// showed; another site cannot make a browser send our cookies with its own `Host`).
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let claimed = match headers.get(header::ORIGIN) {
        Some(origin) => origin.to_str().ok().map(str::to_owned),
        None => match headers.get(header::REFERER) {
            Some(referer) => referer.to_str().ok().and_then(|r| url::Url::parse(r).ok()).map(|u| origin_of(&u)),
            None => return true,
        },
    };
    let Some(claimed) = claimed else { return false };
    if claimed == origin_of(&state.public_url()) {
        return true;
    }
    let authority = url::Url::parse(&claimed).ok().filter(|u| u.has_host()).map(|u| {
        let host = u.host_str().unwrap_or_default().to_string();
        match u.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    });
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// Middleware (inside the session layer): gives anonymous visitors their nonce cookie, and lets
/// a request that is not GET/HEAD/OPTIONS through only from this site and with the right token
/// in the header or the form body; others get 403 and reach no handler.
pub async fn protect(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let existing = cookie(request.headers(), COOKIE).filter(|v| valid_nonce(v)).map(str::to_owned);
    let fresh = existing.is_none();
    let nonce = existing.unwrap_or_else(|| crate::domain::token::random_alphanumeric(NONCE_LEN));
    request.extensions_mut().insert(Nonce(nonce.clone()));

    let mut response = if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        next.run(request).await
    } else {
        check(&state, request, next).await
    };
    if fresh {
        let secure = if state.public_url().scheme() == "https" { "; Secure" } else { "" };
        let value = format!("{COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Lax{secure}");
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

async fn check(state: &AppState, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    if !same_origin(state, &parts.headers) {
        let message = "This form was sent from another site, so it was refused. Open this site directly and try again.";
        return refuse(state, &mut parts, message).await;
    }
    let Some(session) = parts.extensions.get::<Session>().cloned() else {
        return refuse(state, &mut parts, EXPIRED).await;
    };
    let logged_in = matches!(session.get::<i64>(USER_KEY).await, Ok(Some(_)));
    let expected = token(state, &parts, &session, logged_in);
    let header = parts.headers.get(HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(header) = header {
        if expected.is_empty() || !same(&expected, &header) {
            return refuse(state, &mut parts, EXPIRED).await;
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "This form is too large.").into_response();
    };
    let field = form_urlencoded::parse(&bytes).find(|(name, _)| name == FIELD).map(|(_, value)| value.into_owned());
    if expected.is_empty() || !field.is_some_and(|field| same(&expected, &field)) {
        return refuse(state, &mut parts, EXPIRED).await;
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

const EXPIRED: &str = "This form has expired. Go back, reload the page and try again.";

/// 403: a page saying why (htmx requests get the sentence alone, which the console shows).
async fn refuse(state: &AppState, parts: &mut Parts, message: &'static str) -> Response {
    if parts.headers.contains_key("hx-request") {
        let lang = super::layout::language(&parts.headers);
        return (StatusCode::FORBIDDEN, lang.t(message).to_string()).into_response();
    }
    match Layout::from_request_parts(parts, state).await {
        Ok(layout) => {
            (StatusCode::FORBIDDEN, NoticePage::new(layout, "This form was refused", message)).into_response()
        }
        Err(_) => (StatusCode::FORBIDDEN, message).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_checked_for_shape() {
        assert!(valid_nonce(&crate::domain::token::random_alphanumeric(NONCE_LEN)));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce(&"x;".repeat(22)[..NONCE_LEN]));
    }

    #[test]
    fn comparison_needs_equal_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}

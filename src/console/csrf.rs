//! CSRF protection for the console: a random token per session, sent back by every
//! state-changing request — htmx sends it as the `X-CSRF-Token` header (from `hx-headers` on
//! `<body>`), plain forms as the `csrf` field — and compared in constant time. One middleware
//! ([`require_token`]) checks every non-GET console request, so no handler can forget; GET
//! requests never change state.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

const KEY: &str = "csrf";
/// The header htmx requests carry the token in.
pub const HEADER: &str = "x-csrf-token";
/// Console forms are small; a bigger body is refused before it is read.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The session's token, created on first use.
pub async fn token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(KEY).await {
        return token;
    }
    let token = crate::domain::token::random_alphanumeric(43);
    // A store failure leaves the page without a working form; the next request retries.
    let _ = session.insert(KEY, &token).await;
    token
}

/// Drops the session's token (at login: forms from before the login stop working).
pub async fn rotate(session: &Session) {
    let _ = session.remove::<String>(KEY).await;
}

/// True when `provided` is the session's token.
pub async fn verify(session: &Session, provided: Option<&str>) -> bool {
    let (Ok(Some(expected)), Some(provided)) = (session.get::<String>(KEY).await, provided) else {
        return false;
    };
    expected.len() == provided.len()
        && expected.bytes().zip(provided.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Middleware (inside the session layer): every request that is not GET/HEAD must carry the
/// session's token in the header or the form body, or it is refused with 403 and reaches no
/// handler.
pub async fn require_token(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return forbidden();
    };
    let header = request.headers().get(HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(header) = header {
        return if verify(&session, Some(&header)).await { next.run(request).await } else { forbidden() };
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "This form is too large.").into_response();
    };
    let field = form_urlencoded::parse(&bytes).find(|(name, _)| name == KEY).map(|(_, value)| value.into_owned());
    if !verify(&session, field.as_deref()).await {
        return forbidden();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// The answer to a request without a valid token.
pub fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "This form has expired. Go back, reload the page and try again.").into_response()
}

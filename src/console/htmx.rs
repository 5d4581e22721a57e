//! htmx requests: the [`HxRequest`] extractor tells an htmx fragment request (`HX-Request: true`)
//! from a plain browser request, so one handler answers a fragment to htmx and a full page (or a
//! redirect) without JavaScript. Answers that differ by it carry `Vary: HX-Request`.

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::Response;

/// True when htmx made the request (and wants a fragment, not a history restore's full page).
#[derive(Clone, Copy, Debug)]
pub struct HxRequest(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for HxRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let flag = |name: &str| parts.headers.get(name).is_some_and(|v| v.as_bytes() == b"true");
        Ok(Self(flag("hx-request") && !flag("hx-history-restore-request")))
    }
}

/// Marks an answer as depending on `HX-Request` (so caches keep the page and the fragment apart).
pub fn vary(mut response: Response) -> Response {
    response.headers_mut().append(axum::http::header::VARY, HeaderValue::from_static("HX-Request"));
    response
}

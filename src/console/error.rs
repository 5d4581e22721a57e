//! The console's one error type. A handler that cannot answer returns a [`ConsoleError`]: a
//! failure is logged once, with what failed, and the viewer gets the same friendly answer
//! everywhere — a page in their language, or for htmx the message alone — never the detail.

use std::fmt::Display;

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::assets;
use super::layout::language;
use crate::i18n::Lang;

/// What went wrong, as the viewer is told.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleError {
    status: StatusCode,
    message: &'static str,
}

const SOMETHING_WENT_WRONG: &str =
    "Something went wrong on our side. Please try again; if it keeps happening, contact the site's operator.";

impl ConsoleError {
    /// 500: `error` is logged with `context` (what the viewer was doing); they see a friendly
    /// message.
    pub fn internal(context: &'static str, error: impl Display) -> Self {
        tracing::error!(error = %error, "{context} failed");
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: SOMETHING_WENT_WRONG }
    }

    /// 404 with a message naming what is not there (or not the viewer's).
    pub fn not_found(message: &'static str) -> Self {
        Self { status: StatusCode::NOT_FOUND, message }
    }
}

impl crate::routes::NotFound for ConsoleError {
    fn not_found() -> Self {
        Self::not_found("There is nothing here.")
    }
}

/// The id in a console route's path; anything but a number is the friendly 404.
pub type PathId = crate::routes::Id<ConsoleError>;

/// Marks a response as a console failure, for [`friendly`] to render.
#[derive(Clone, Copy)]
struct Failure(&'static str);

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.message).into_response();
        response.extensions_mut().insert(Failure(self.message));
        response
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    lang: Lang,
    html_lang: &'static str,
    css_url: String,
    title: &'a str,
    message: &'a str,
}

impl ErrorPage<'_> {
    fn t<'t>(&self, text: &'t str) -> &'t str {
        self.lang.t(text)
    }
}

#[derive(Template)]
#[template(source = "<p class=\"error\" role=\"alert\">{{ message }}</p>", ext = "html")]
struct AlertFragment<'a> {
    message: &'a str,
}

/// Middleware on the console's pages: a [`ConsoleError`] becomes a page in the viewer's language,
/// or, for htmx, an alert fragment to swap in.
pub async fn friendly(request: Request, next: Next) -> Response {
    let lang = language(request.headers());
    let htmx = request.headers().get("hx-request").is_some_and(|v| v == "true");
    let response = next.run(request).await;
    let Some(Failure(message)) = response.extensions().get::<Failure>().copied() else {
        return response;
    };
    let status = response.status();
    let title = if status == StatusCode::NOT_FOUND { "Not found" } else { "Something went wrong" };
    let html_lang = if lang == Lang::Zh { "zh-CN" } else { "en" };
    let page = ErrorPage { lang, html_lang, css_url: assets::url("app.css"), title, message };
    let body = if htmx { AlertFragment { message: lang.t(message) }.render() } else { page.render() };
    match body {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering the error page failed");
            (status, lang.t(message).to_string()).into_response()
        }
    }
}

//! `POST /preferences`: the viewer's language and colour theme, kept in long-lived cookies (no
//! account needed: the login page has the switch too), then back to the page they came from.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::layout::{LANG_COOKIE, THEME_COOKIE};
use crate::i18n::Lang;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct PreferencesForm {
    #[serde(default)]
    lang: String,
    #[serde(default)]
    theme: String,
    /// Where to go back to: a path on this site only.
    #[serde(default)]
    next: String,
}

pub async fn save(State(state): State<AppState>, Form(form): Form<PreferencesForm>) -> Response {
    let back = if form.next.starts_with('/') && !form.next.starts_with("//") && !form.next.contains('\\') {
        form.next.as_str()
    } else {
        "/"
    };
    let mut response = Redirect::to(back).into_response();
    let secure = if state.public_url().scheme() == "https" { "; Secure" } else { "" };
    let mut set = |name: &str, value: &str, max_age: u32| {
        let cookie = format!("{name}={value}; Path=/; Max-Age={max_age}; SameSite=Lax; HttpOnly{secure}");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    };
    const YEAR: u32 = 365 * 24 * 3600;
    if let Some(lang) = Lang::parse(&form.lang) {
        set(LANG_COOKIE, if lang == Lang::Zh { "zh" } else { "en" }, YEAR);
    }
    match form.theme.as_str() {
        "light" | "dark" => set(THEME_COOKIE, &form.theme, YEAR),
        "system" => set(THEME_COOKIE, "", 0),
        _ => {}
    }
    response
}

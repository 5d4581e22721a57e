//! What every full page's layout (`templates/base.html`) needs, taken from the request: the
//! site's name and announcement, the request's CSRF token (for forms and htmx's header), the
//! viewer's language (cookie, else `Accept-Language`) and colour theme (cookie, else the
//! system's), and whether someone is logged in. Handlers take it as an extractor.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use super::{assets, csrf};
use crate::i18n::Lang;
use crate::state::AppState;

/// The cookie holding the chosen language (`en` or `zh`).
pub const LANG_COOKIE: &str = "burncloud_lang";
/// The cookie holding the chosen theme (`light` or `dark`; absent means the system's).
pub const THEME_COOKIE: &str = "burncloud_theme";

#[derive(Clone)]
pub struct Layout {
    pub site_name: String,
    pub announcement: String,
    /// The site currency's code (`USD`), shown where amounts are explained.
    pub currency: String,
    pub css_url: String,
    pub htmx_url: String,
    /// The console's own small script (copy buttons).
    pub app_js_url: String,
    pub csrf: String,
    pub lang: Lang,
    /// `light`, `dark` or empty (follow the system).
    pub theme: &'static str,
    pub logged_in: bool,
    /// The logged-in user's role (`root`, `admin`, `reseller`, `user`; empty when logged out):
    /// the top bar links operators to `/admin` and resellers to `/console/reseller`.
    pub role: String,
    /// The path of this page, for the preference forms to come back to.
    pub path: String,
}

impl Layout {
    /// `text` in the viewer's language.
    pub fn t<'a>(&self, text: &'a str) -> &'a str {
        self.lang.t(text)
    }

    pub fn is_admin(&self) -> bool {
        matches!(self.role.as_str(), "root" | "admin")
    }

    pub fn is_zh(&self) -> bool {
        self.lang == Lang::Zh
    }

    /// The JSON for `hx-headers` on `<body>`: every htmx request carries the CSRF token.
    pub fn htmx_headers(&self) -> String {
        serde_json::json!({ csrf::HEADER: self.csrf }).to_string()
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// The viewer's language: their choice, else their browser's.
pub fn language(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE).and_then(Lang::parse).unwrap_or_else(|| {
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(Lang::from_accept_language)
            .unwrap_or_default()
    })
}

impl FromRequestParts<AppState> for Layout {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let user_id = session.get::<i64>(super::session_store::USER_KEY).await.ok().flatten();
        let role = match user_id {
            Some(id) => crate::services::users::summary(state, id).await.ok().flatten().map(|u| u.role),
            None => None,
        };
        let site = state.site();
        let theme = match cookie(&parts.headers, THEME_COOKIE) {
            Some("light") => "light",
            Some("dark") => "dark",
            _ => "",
        };
        Ok(Self {
            site_name: site.site_name.clone(),
            announcement: site.announcement.clone(),
            currency: site.currency.clone(),
            css_url: assets::url("app.css"),
            htmx_url: assets::url("htmx.min.js"),
            app_js_url: assets::url("app.js"),
            csrf: csrf::token(state, parts, &session, user_id.is_some()),
            lang: language(&parts.headers),
            theme,
            logged_in: user_id.is_some(),
            role: role.unwrap_or_default(),
            path: parts.uri.path().to_string(),
        })
    }
}

/// A time (unix ms) as the console shows it: `YYYY-MM-DD HH:MM UTC`.
pub fn format_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| {
            format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; burncloud_lang=zh; x_burncloud_theme=dark".parse().unwrap());
        assert_eq!(cookie(&headers, LANG_COOKIE), Some("zh"));
        assert_eq!(cookie(&headers, THEME_COOKIE), None);
        assert_eq!(language(&headers), Lang::Zh);
        headers.insert(header::ACCEPT_LANGUAGE, "zh-CN".parse().unwrap());
        headers.insert(header::COOKIE, "burncloud_lang=en".parse().unwrap());
        assert_eq!(language(&headers), Lang::En, "the choice wins over the browser's");
    }
}

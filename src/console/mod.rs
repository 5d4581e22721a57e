//! The server-rendered console: askama pages, htmx fragments and the embedded static assets.

pub mod assets;
pub mod pages;

/// What every full page's layout (`templates/base.html`) needs.
pub struct Layout {
    pub site_name: &'static str,
    pub css_url: String,
    pub htmx_url: String,
}

impl Layout {
    pub fn new() -> Self {
        Self { site_name: "BurnCloud", css_url: assets::url("app.css"), htmx_url: assets::url("htmx.min.js") }
    }
}

impl Default for Layout {
    fn default() -> Self {
        Self::new()
    }
}

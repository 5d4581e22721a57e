//! Static assets embedded in the binary (see `build.rs`), served under content-hashed names
//! (`/static/app.<hash>.css`) with a one-year immutable cache: a changed file gets a new URL.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub struct StaticAsset {
    pub name: &'static str,
    pub hashed_name: &'static str,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/static_assets.rs"));

/// The URL of an asset by its plain file name; a missing asset yields a URL that 404s, never a panic.
pub fn url(name: &str) -> String {
    let hashed = ASSETS.iter().find(|a| a.name == name).map(|a| a.hashed_name).unwrap_or(name);
    format!("/static/{hashed}")
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// `GET /static/{file}`: only hashed names are served, so every response is cacheable forever.
pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.hashed_name == file) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, content_type(asset.name)),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

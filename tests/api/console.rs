//! The landing page and the embedded static assets.

use crate::support::helpers::{Backend, spawn_app, spawn_app_with};

#[tokio::test]
async fn landing_page_shows_the_api_base_url_and_links_hashed_assets() {
    let app = spawn_app_with(
        Backend::Sqlite,
        |env| {
            env.insert("BURNCLOUD_PUBLIC_URL".into(), "https://llm.example.com".into());
        },
        |r| r,
    )
    .await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(html.contains("<code id=\"api-base\">https://llm.example.com/v1</code>"), "{html}");

    // Every asset the page links is served, with a long immutable cache and the right type.
    let css = extract(&html, "href=\"/static/", "\"");
    let js = extract(&html, "src=\"/static/", "\"");
    assert!(css.starts_with("app.") && css.ends_with(".css"), "{css}");
    assert!(js.starts_with("htmx.") && js.ends_with(".min.js"), "{js}");
    for (file, mime) in [(css, "text/css"), (js, "text/javascript")] {
        let res = app.get(&format!("/static/{file}")).await;
        assert_eq!(res.status(), 200, "{file}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with(mime));
        assert_eq!(res.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert!(!res.bytes().await.unwrap().is_empty());
    }
    // Unhashed or unknown names are not served (they could be cached forever with stale bytes).
    assert_eq!(app.get("/static/app.css").await.status(), 404);
    assert_eq!(app.get("/static/..%2FCargo.toml").await.status(), 404);
}

#[tokio::test]
async fn without_a_public_url_links_use_the_bound_address() {
    let app = spawn_app(Backend::Sqlite).await;
    let html = app.get("/").await.text().await.unwrap();
    assert!(html.contains(&format!("http://127.0.0.1:{}/v1", app.port)), "{html}");
}

fn extract<'a>(haystack: &'a str, start: &str, end: &str) -> &'a str {
    let from = haystack.find(start).unwrap_or_else(|| panic!("{start} not in page")) + start.len();
    let len = haystack[from..].find(end).unwrap();
    &haystack[from..from + len]
}

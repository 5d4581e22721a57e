//! Image URLs for providers that need images inline (Gemini here, Bedrock alike) are fetched by
//! the gateway, which must not become a way into its own network: non-public addresses, redirects
//! to them, oversized bodies, slow servers and non-images are refused with a 400 and nothing sent
//! upstream.

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

use crate::support::fake_gemini::{FakeGemini, KEY, Reply};
use crate::support::helpers::{Backend, TestApp, spawn_app, spawn_app_with};

db_tests!(non_public_image_hosts_are_refused, images_are_fetched_inline_within_limits);

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nfake-image-bytes";

/// An image server on 127.0.0.1 with good and bad answers.
async fn image_server() -> String {
    let app = Router::new()
        .route("/cat.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], PNG) }))
        .route("/big.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 4096]) }))
        .route("/page", get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html></html>") }))
        .route(
            "/to-metadata",
            get(|| async {
                (StatusCode::FOUND, [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")]).into_response()
            }),
        )
        .route(
            "/to-private",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "http://10.0.0.1/cat.png")]).into_response() }),
        )
        .route("/to-cat", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/cat.png")]).into_response() }))
        .route(
            "/slow.png",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                ([(header::CONTENT_TYPE, "image/png")], PNG)
            }),
        );
    let port = crate::support::helpers::serve_locally(app).await;
    format!("http://127.0.0.1:{port}")
}

async fn gemini_channel(app: &TestApp) -> FakeGemini {
    let fake = FakeGemini::start(Reply::Text).await;
    let channel =
        json!({ "name": "g", "type": "gemini", "base_url": fake.base_url(), "key": KEY, "models": ["gemini-test"] });
    app.add_channel(channel).await;
    app.set_price("gemini-test", json!({ "input": "1.00", "output": "2.00" })).await;
    fake
}

fn with_image(url: &str) -> Value {
    json!({ "model": "gemini-test", "messages": [{ "role": "user", "content": [
        { "type": "text", "text": "What is this?" },
        { "type": "image_url", "image_url": { "url": url } }
    ] }] })
}

async fn refused(app: &TestApp, key: &str, url: &str, expect: &str) {
    let response = app.v1(key, "/v1/chat/completions", &with_image(url)).await;
    assert_eq!(response.status(), 400, "{url}");
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(expect), "{url}: {message}");
}

async fn non_public_image_hosts_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = gemini_channel(&app).await;
    let (user, key) = app.user_with_key("1.00").await;
    let images = image_server().await;
    for url in [
        format!("{images}/cat.png"),
        "http://localhost:9/cat.png".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.1.2.3/cat.png".to_string(),
        "http://[::1]/cat.png".to_string(),
        "http://0.0.0.0/cat.png".to_string(),
    ] {
        refused(&app, &key, &url, "not a public address").await;
    }
    assert!(fake.received().is_empty());
    assert_eq!(app.balance(user).await, 1_000_000_000);
    app.assert_ledger_consistent().await;
}

async fn images_are_fetched_inline_within_limits(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_IMAGE_FETCH_ALLOW_LOOPBACK".into(), "true".into());
            env.insert("BURNCLOUD_IMAGE_FETCH_MAX_BYTES".into(), "2048".into());
            env.insert("BURNCLOUD_IMAGE_FETCH_TIMEOUT_SECS".into(), "1".into());
        },
        |router| router,
    )
    .await;
    let fake = gemini_channel(&app).await;
    let (_, key) = app.user_with_key("1.00").await;
    let images = image_server().await;

    for path in ["/cat.png", "/to-cat"] {
        let response = app.v1(&key, "/v1/chat/completions", &with_image(&format!("{images}{path}"))).await;
        assert_eq!(response.status(), 200, "{path}: {}", response.text().await.unwrap());
    }
    let received = fake.received();
    let inline = &received[0].1["contents"][0]["parts"][1]["inlineData"];
    assert_eq!(inline["mimeType"], "image/png");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(inline["data"].as_str().unwrap()).unwrap(), PNG);
    assert_eq!(received[1].1["contents"][0]["parts"][1], received[0].1["contents"][0]["parts"][1], "redirect followed");

    // An Anthropic client's URL image source is fetched the same way.
    let message = json!({ "model": "gemini-test", "max_tokens": 16, "messages": [{ "role": "user", "content": [
        { "type": "image", "source": { "type": "url", "url": format!("{images}/cat.png") } },
        { "type": "text", "text": "What is this?" }] }] });
    let response =
        app.client.post(app.url("/v1/messages")).header("x-api-key", &key).json(&message).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(fake.received()[2].1["contents"][0]["parts"][0]["inlineData"]["mimeType"], "image/png");

    refused(&app, &key, &format!("{images}/big.png"), "larger than 2048 bytes").await;
    refused(&app, &key, &format!("{images}/to-metadata"), "not a public address").await;
    refused(&app, &key, &format!("{images}/to-private"), "not a public address").await;
    refused(&app, &key, &format!("{images}/page"), "not point at an image").await;
    refused(&app, &key, &format!("{images}/slow.png"), "took too long").await;
    assert_eq!(fake.received().len(), 3, "nothing refused reached the upstream");
    app.assert_ledger_consistent().await;
}

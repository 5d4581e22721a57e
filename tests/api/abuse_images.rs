//! Image URLs a request asks the gateway to fetch (issue 13, item 13): their number and the bytes
//! fetched in all are capped per request, all the fetches of a request share one deadline, and a
//! failover attempt reuses the images the first attempt fetched instead of fetching them again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::support::fake_gemini::{FakeGemini, KEY, Reply};
use crate::support::helpers::{Backend, TestApp, spawn_app_with};

db_tests!(
    too_many_image_urls_are_refused_before_any_fetch,
    images_beyond_the_byte_budget_are_refused,
    image_fetches_share_one_deadline,
    images_are_fetched_once_across_failover,
);

/// An image server on 127.0.0.1: `/img/{bytes}/{delay ms}/{name}` answers a PNG of that size
/// after that delay, and counts the hits per path.
struct Images {
    base: String,
    hits: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Images {
    async fn start() -> Self {
        let hits: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let app = Router::new()
            .route(
                "/img/{size}/{delay}/{name}",
                get(
                    |State(hits): State<Arc<Mutex<BTreeMap<String, usize>>>>,
                     Path((size, delay, name)): Path<(usize, u64, String)>| async move {
                        *hits.lock().unwrap().entry(format!("{size}/{delay}/{name}")).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        let mut body = b"\x89PNG\r\n\x1a\n".to_vec();
                        body.resize(size.max(8), 0);
                        ([(header::CONTENT_TYPE, "image/png")], body)
                    },
                ),
            )
            .with_state(hits.clone());
        let port = crate::support::helpers::serve_locally(app).await;
        Self { base: format!("http://127.0.0.1:{port}"), hits }
    }

    fn url(&self, size: usize, delay_ms: u64, name: &str) -> String {
        format!("{}/img/{size}/{delay_ms}/{name}", self.base)
    }

    fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }

    fn hits(&self) -> BTreeMap<String, usize> {
        self.hits.lock().unwrap().clone()
    }
}

async fn spawn(backend: Backend, settings: &[(&str, &str)]) -> TestApp {
    let settings: Vec<(String, String)> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    spawn_app_with(
        backend,
        move |env| {
            env.insert("BURNCLOUD_IMAGE_FETCH_ALLOW_LOOPBACK".into(), "true".into());
            env.extend(settings);
        },
        |router| router,
    )
    .await
}

async fn gemini_channel(app: &TestApp, priority: i64) -> FakeGemini {
    let fake = FakeGemini::start(Reply::Text).await;
    let channel = json!({ "name": format!("g{priority}"), "type": "gemini", "base_url": fake.base_url(), "key": KEY,
        "models": ["gemini-test"], "priority": priority });
    app.add_channel(channel).await;
    app.set_price("gemini-test", json!({ "input": "1.00", "output": "2.00" })).await;
    fake
}

fn chat_with_images(urls: &[String]) -> Value {
    let mut content = vec![json!({ "type": "text", "text": "What are these?" })];
    content.extend(urls.iter().map(|url| json!({ "type": "image_url", "image_url": { "url": url } })));
    json!({ "model": "gemini-test", "messages": [{ "role": "user", "content": content }] })
}

/// Posts a chat completion; `(status, error message)`.
async fn refused(app: &TestApp, key: &str, urls: &[String]) -> (u16, String) {
    let response = app.v1(key, "/v1/chat/completions", &chat_with_images(urls)).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"]["message"].as_str().unwrap_or_default().to_string())
}

async fn too_many_image_urls_are_refused_before_any_fetch(backend: Backend) {
    let app = spawn(backend, &[]).await;
    let fake = gemini_channel(&app, 0).await;
    let (user, key) = app.user_with_key("1.00").await;
    let images = Images::start().await;

    let seventeen: Vec<String> = (0..17).map(|i| images.url(64, 0, &format!("{i}.png"))).collect();
    let (status, message) = refused(&app, &key, &seventeen).await;
    assert_eq!(status, 400);
    assert!(message.contains("17 image URLs") && message.contains("at most 16"), "{message}");
    // An Anthropic client gets Anthropic's error shape.
    let content: Vec<Value> = seventeen
        .iter()
        .map(|url| json!({ "type": "image", "source": { "type": "url", "url": url } }))
        .chain([json!({ "type": "text", "text": "What are these?" })])
        .collect();
    let message =
        json!({ "model": "gemini-test", "max_tokens": 16, "messages": [{ "role": "user", "content": content }] });
    let response =
        app.client.post(app.url("/v1/messages")).header("x-api-key", &key).json(&message).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("invalid_request_error")));
    assert_eq!(images.total_hits(), 0, "nothing was fetched");
    assert!(fake.received().is_empty(), "nothing went upstream");
    assert_eq!(app.balance(user).await, 1_000_000_000, "nothing billed");

    // Sixteen are fine.
    let (status, message) = refused(&app, &key, &seventeen[..16]).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(images.total_hits(), 16);
    app.assert_ledger_consistent().await;
}

async fn images_beyond_the_byte_budget_are_refused(backend: Backend) {
    let app = spawn(backend, &[("BURNCLOUD_IMAGE_FETCH_MAX_TOTAL_BYTES", "5000")]).await;
    let fake = gemini_channel(&app, 0).await;
    let (user, key) = app.user_with_key("1.00").await;
    let images = Images::start().await;

    let one = vec![images.url(3_000, 0, "a.png")];
    assert_eq!(refused(&app, &key, &one).await.0, 200, "one image is within the budget");
    let two = vec![images.url(3_000, 0, "b.png"), images.url(3_000, 0, "c.png")];
    let (status, message) = refused(&app, &key, &two).await;
    assert_eq!(status, 400);
    assert!(message.contains("larger than 5000 bytes in all"), "{message}");
    assert_eq!(fake.received().len(), 1, "the refused request never went upstream");
    let charged = 1_000_000_000 - app.balance(user).await;
    assert!(charged > 0);
    assert_eq!(app.balance(user).await, 1_000_000_000 - charged, "only the first request was billed");
    app.assert_ledger_consistent().await;
}

async fn image_fetches_share_one_deadline(backend: Backend) {
    let app = spawn(backend, &[("BURNCLOUD_IMAGE_FETCH_DEADLINE_SECS", "1")]).await;
    let fake = gemini_channel(&app, 0).await;
    let (user, key) = app.user_with_key("1.00").await;
    let images = Images::start().await;

    // Each image is well within the 10 s allowed for one; together they need 2.4 s.
    let slow: Vec<String> = (0..4).map(|i| images.url(64, 600, &format!("{i}.png"))).collect();
    let started = Instant::now();
    let (status, message) = refused(&app, &key, &slow).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 400);
    assert!(message.contains("took longer than 1 s"), "{message}");
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1_800), "the deadline holds for all the images: {elapsed:?}");
    assert!(images.total_hits() < 4, "the fetches stopped at the deadline");
    assert!(fake.received().is_empty());
    assert_eq!(app.balance(user).await, 1_000_000_000);
    app.assert_ledger_consistent().await;
}

async fn images_are_fetched_once_across_failover(backend: Backend) {
    let app = spawn(backend, &[]).await;
    // The first channel (the higher priority) fails with 500; the second serves.
    let failing_hits = Arc::new(Mutex::new(0usize));
    let failing = Router::new()
        .route(
            "/{*path}",
            post(|State(hits): State<Arc<Mutex<usize>>>| async move {
                *hits.lock().unwrap() += 1;
                (StatusCode::INTERNAL_SERVER_ERROR, "{\"error\":{\"code\":500,\"message\":\"boom\"}}").into_response()
            }),
        )
        .with_state(failing_hits.clone());
    let port = crate::support::helpers::serve_locally(failing).await;
    app.add_channel(json!({ "name": "failing", "type": "gemini", "base_url": format!("http://127.0.0.1:{port}"),
        "key": KEY, "models": ["gemini-test"], "priority": 10 }))
        .await;
    let serving = gemini_channel(&app, 0).await;
    let (_, key) = app.user_with_key("1.00").await;
    let images = Images::start().await;

    let two = vec![images.url(64, 0, "x.png"), images.url(128, 0, "y.png")];
    let (status, message) = refused(&app, &key, &two).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(*failing_hits.lock().unwrap(), 1, "the first channel was tried");
    assert_eq!(serving.received().len(), 1, "the second served");
    let parts = &serving.received()[0].1["contents"][0]["parts"];
    assert_eq!(parts[1]["inlineData"]["mimeType"], "image/png", "{parts}");
    assert_eq!(
        images.hits(),
        BTreeMap::from([("128/0/y.png".to_string(), 1), ("64/0/x.png".to_string(), 1)]),
        "each image fetched once for both attempts"
    );
    app.assert_ledger_consistent().await;
}

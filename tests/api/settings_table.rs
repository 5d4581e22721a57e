//! The run-time settings table's payoff: `gateway.client_stall_secs` and
//! `gateway.default_max_tokens` (start-up only before, as `BURNCLOUD_CLIENT_STALL_SECS` and
//! `BURNCLOUD_DEFAULT_MAX_TOKENS`) are one table entry each, so the settings page and the
//! management API show, validate and apply them, and the next request follows the new value
//! without a restart.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::console_auth::Browser;
use crate::money_faults::{stalled_charge, stream_never_read};
use crate::support::fake_anthropic::{self, FakeAnthropic, Reply};
use crate::support::helpers::{Backend, TestApp, serve_locally, spawn_app};

db_tests!(
    the_client_stall_setting_is_validated_and_shown,
    a_changed_client_stall_cuts_the_next_stream,
    a_changed_default_max_tokens_reaches_the_next_request,
);

const KEY: &str = "gateway.client_stall_secs";
const MODEL: &str = "stall-model";

async fn shown(app: &TestApp) -> Value {
    shown_as(app, KEY).await
}

async fn shown_as(app: &TestApp, key: &str) -> Value {
    let (status, list) = app.admin("GET", "/api/admin/settings", None).await;
    assert_eq!(status, 200, "{list}");
    list["data"].as_array().unwrap().iter().find(|s| s["key"] == key).cloned().unwrap_or(Value::Null)
}

/// Out-of-range and non-numeric values are refused with the accepted range, and change nothing.
async fn the_client_stall_setting_is_validated_and_shown(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(shown(&app).await["value"], "60", "the start-up default is shown");
    for bad in ["0", "3601", "soon", "-1", "1.5"] {
        let (status, body) =
            app.admin("PUT", &format!("/api/admin/settings/{KEY}"), Some(json!({ "value": bad }))).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.to_string().contains("a whole number from 1 to 3600"), "{bad}: {body}");
    }
    assert_eq!(app.state.site().gateway.client_stall, Duration::from_secs(60));
    let stored: i64 = sqlx::query("SELECT COUNT(*) FROM settings WHERE key = $1")
        .bind(KEY)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "a refused value is not stored");

    let (status, body) =
        app.admin("PUT", &format!("/api/admin/settings/{KEY}"), Some(json!({ "value": "3600" }))).await;
    assert_eq!((status, &body["value"]), (200, &json!("3600")), "{body}");
    assert_eq!(app.state.site().gateway.client_stall, Duration::from_secs(3600));

    // The settings page lists it in the gateway section, and a bad value there saves nothing.
    let mut browser = Browser::new(&app);
    browser.log_in_as_root().await;
    let (status, _, page) = browser.get("/admin/settings").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("name=\"{KEY}\"")) && page.contains("value=\"3600\""), "{page}");
    let csrf = browser.csrf("/admin/settings").await;
    let form = [("csrf", csrf.as_str()), ("section", "gateway"), (KEY, "0")];
    let (status, _, page) = browser.post("/admin/settings", &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("a whole number from 1 to 3600"), "{page}");
    assert_eq!(app.state.site().gateway.client_stall, Duration::from_secs(3600));
}

/// An upstream whose answer never ends: a role chunk, 300 chunks of 60 kB, then silence.
async fn endless_upstream() -> u16 {
    let chunk = |text: &str| {
        let event = json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
            "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }] });
        Bytes::from(format!("data: {event}\n\n"))
    };
    let piece = " hello".repeat(10_000);
    let events: Vec<Bytes> = std::iter::once(chunk("")).chain((0..300).map(|_| chunk(&piece))).collect();
    let app = Router::new().fallback(move || {
        let events = events.clone();
        async move {
            let head = futures_util::stream::iter(events.into_iter().map(Ok::<_, std::io::Error>));
            let mut response = Response::new(Body::from_stream(head.chain(futures_util::stream::pending())));
            response.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
            response
        }
    });
    serve_locally(app).await
}

/// Before: a client that stops reading holds its stream for the start-up 60 s. The operator sets
/// 1 s on /admin/settings; the next such client is cut within seconds and billed for what the
/// gateway took from the upstream — no restart.
async fn a_changed_client_stall_cuts_the_next_stream(backend: Backend) {
    let port = endless_upstream().await;
    let app = spawn_app(backend).await;
    app.add_channel(json!({ "name": "c", "type": "openai", "base_url": format!("http://127.0.0.1:{port}/v1"),
        "key": "sk-up", "models": [MODEL] }))
        .await;
    app.set_price(MODEL, json!({ "input": "1.00", "output": "2.00" })).await;
    let (user, key) = app.user_with_key("10.00").await;
    assert_eq!(app.state.site().gateway.client_stall, Duration::from_secs(60));

    let mut browser = Browser::new(&app);
    browser.log_in_as_root().await;
    let csrf = browser.csrf("/admin/settings").await;
    let form = [("csrf", csrf.as_str()), ("section", "gateway"), (KEY, "1")];
    let (status, _, page) = browser.post("/admin/settings", &form).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Saved."), "{page}");
    assert_eq!(shown(&app).await["value"], "1");

    let stream = stream_never_read(&app, &key, MODEL).await;
    let started = std::time::Instant::now();
    // Waits at most 5 s for the log row: with the start-up 60 s still in force, there would be none.
    let (completion, cost) = stalled_charge(&app).await;
    assert!(started.elapsed() < Duration::from_secs(10), "cut after {:?}", started.elapsed());
    assert!(completion > 0 && cost > 0, "what the gateway took is billed: {completion} tokens, {cost}");
    assert_eq!(app.balance(user).await, 10_000_000_000 - cost);
    app.assert_ledger_consistent().await;
    drop(stream);
}

/// A request without an output limit to an upstream that requires one (Anthropic) is sent
/// `gateway.default_max_tokens`: 4096 at start, then what the operator set — on the next request,
/// without a restart. Bad values are refused with the range and change nothing.
async fn a_changed_default_max_tokens_reaches_the_next_request(backend: Backend) {
    const SETTING: &str = "gateway.default_max_tokens";
    let app = spawn_app(backend).await;
    let fake = FakeAnthropic::start(Reply::Text).await;
    app.add_channel(json!({ "name": "claude", "type": "anthropic", "base_url": fake.base_url(),
        "key": fake_anthropic::KEY, "models": ["claude-test"] }))
        .await;
    app.set_price("claude-test", json!({ "input": "1.00", "output": "2.00" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    let chat = json!({ "model": "claude-test", "messages": [{ "role": "user", "content": "Hello" }] });
    assert_eq!(shown_as(&app, SETTING).await["value"], "4096");

    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat).await.status(), 200);
    assert_eq!(fake.received()[0]["max_tokens"], 4096);

    for bad in ["0", "10000001", "many"] {
        let path = format!("/api/admin/settings/{SETTING}");
        let (status, body) = app.admin("PUT", &path, Some(json!({ "value": bad }))).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.to_string().contains("a whole number from 1 to 10000000"), "{bad}: {body}");
    }
    let (status, body) =
        app.admin("PUT", &format!("/api/admin/settings/{SETTING}"), Some(json!({ "value": "1234" }))).await;
    assert_eq!((status, &body["value"]), (200, &json!("1234")), "{body}");

    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat).await.status(), 200);
    assert_eq!(fake.received()[1]["max_tokens"], 1234, "the next request follows the setting");
    app.settled().await;
    let spent: i64 =
        sqlx::query("SELECT CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS spent FROM request_logs WHERE user_id = $1")
            .bind(user)
            .fetch_one(app.db.pool())
            .await
            .unwrap()
            .get("spent");
    assert_eq!(app.balance(user).await, 1_000_000_000 - spent);
    app.assert_ledger_consistent().await;
}

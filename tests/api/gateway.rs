//! The `/v1` relay as a client sees it: passthrough, streaming, model mapping, every endpoint,
//! and every error shape, against a fake OpenAI upstream.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row;

use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app, spawn_app_with};

/// $2.50 in / $10.00 out per 1M tokens: the fake's 12 + 5 tokens cost 80,000 nano-units.
pub const COST_12_5: i64 = 80_000;
pub const START: i64 = 10_000_000_000;

pub async fn priced_channel(app: &TestApp, fake: &FakeOpenAi, name: &str, model: &str, extra: Value) -> i64 {
    let mut channel = json!({
        "name": name, "type": "openai", "base_url": fake.base_url(name), "key": format!("sk-upstream-{name}-secret"),
        "models": [model], "groups": ["default"]
    });
    for (k, v) in extra.as_object().unwrap() {
        channel[k] = v.clone();
    }
    let id = app.add_channel(channel).await;
    app.set_price(model, json!({ "input": "2.50", "output": "10.00" })).await;
    id
}

pub async fn setup(backend: Backend, behavior: Behavior) -> (TestApp, FakeOpenAi) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(behavior).await;
    priced_channel(&app, &fake, "main", "gpt-test", json!({})).await;
    (app, fake)
}

pub fn chat(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "Say hello" }], "max_tokens": 100 })
}

/// The events of an SSE body.
pub fn events(body: &str) -> Vec<String> {
    body.split("\n\n").filter(|e| !e.trim().is_empty()).map(str::to_string).collect()
}

db_tests!(
    chat_completion_passes_through_and_bills_exactly,
    streaming_relays_events_and_strips_the_injected_usage_chunk,
    streaming_keeps_the_usage_chunk_the_client_asked_for,
    model_mapping_rewrites_only_the_model,
    error_shapes_follow_openai,
    models_lists_only_what_the_key_may_use,
    every_endpoint_relays,
    upstream_client_errors_are_translated_and_scrubbed,
    a_stream_cut_short_ends_with_an_error_event,
    a_hanging_upstream_times_out,
    a_client_disconnect_settles_what_was_delivered,
    vendors_that_always_report_usage_get_no_stream_options,
    a_garbage_answer_fails_over,
    uploads_relay_untouched_but_for_the_model,
    a_silent_stream_is_cut_after_the_idle_timeout,
    disabled_keys_and_users_are_refused_once_the_cache_expires,
    unpriced_models_are_free_when_allowed,
);

async fn chat_completion_passes_through_and_bills_exactly(backend: Backend) {
    let (app, fake) = setup(backend, Behavior::default()).await;
    let (user, key) = app.user_with_key("10.00").await;
    let sent = serde_json::to_vec(&chat("gpt-test")).unwrap();
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(sent.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello there!");
    assert_eq!(body["usage"]["prompt_tokens"], 12);

    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/main/v1/chat/completions");
    assert_eq!(received[0].body.as_ref(), sent.as_slice(), "same-protocol requests pass through byte for byte");
    assert_eq!(received[0].headers["authorization"], "Bearer sk-upstream-main-secret");

    assert_eq!(app.balance(user).await, START - COST_12_5);
    // A key without a spend limit is not written at hold time, but its spend still adds up.
    let spent: i64 = sqlx::query("SELECT spent FROM api_keys WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(spent, COST_12_5);
    let log = sqlx::query(
        "SELECT prompt_tokens, completion_tokens, cost, status_code, upstream_model, is_stream, attempts, endpoint \
         FROM request_logs WHERE user_id = $1",
    )
    .bind(user)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(
        (log.get::<i64, _>(0), log.get::<i64, _>(1), log.get::<i64, _>(2), log.get::<i64, _>(3)),
        (12, 5, COST_12_5, 200)
    );
    assert_eq!(log.get::<String, _>(4), "gpt-test");
    assert_eq!((log.get::<i64, _>(5), log.get::<i64, _>(6)), (0, 1));
    assert_eq!(log.get::<String, _>(7), "/v1/chat/completions");
    app.assert_ledger_consistent().await;
}

async fn streaming_relays_events_and_strips_the_injected_usage_chunk(backend: Backend) {
    let (app, fake) = setup(backend, Behavior::default()).await;
    let (user, key) = app.user_with_key("10.00").await;
    let mut request = chat("gpt-test");
    request["stream"] = json!(true);
    let response = app.v1(&key, "/v1/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let body = response.text().await.unwrap();
    let events = events(&body);
    assert_eq!(events.last().unwrap(), "data: [DONE]");
    assert!(events.iter().all(|e| !e.contains("\"choices\":[]")), "the usage-only chunk was not asked for: {body}");
    let text: String = events
        .iter()
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"].as_str().map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Hello there!");

    // The gateway asked the upstream for usage on the client's behalf, and billed it exactly.
    assert_eq!(fake.received()[0].json()["stream_options"]["include_usage"], true);
    assert_eq!(app.balance(user).await, START - COST_12_5);
    app.assert_ledger_consistent().await;
}

async fn streaming_keeps_the_usage_chunk_the_client_asked_for(backend: Backend) {
    let (app, fake) = setup(backend, Behavior::default()).await;
    let (user, key) = app.user_with_key("10.00").await;
    let mut request = chat("gpt-test");
    request["stream"] = json!(true);
    request["stream_options"] = json!({ "include_usage": true });
    let body = app.v1(&key, "/v1/chat/completions", &request).await.text().await.unwrap();
    let usage_event = events(&body).into_iter().find(|e| e.contains("\"choices\":[]")).expect("usage chunk");
    let usage: Value = serde_json::from_str(usage_event.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    // Passed through untouched: the body the upstream got is the client's.
    assert_eq!(fake.received()[0].json(), request);
    assert_eq!(app.balance(user).await, START - COST_12_5);
    app.assert_ledger_consistent().await;
}

async fn model_mapping_rewrites_only_the_model(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "mapped", "alias", json!({ "model_mapping": { "alias": "real-model-2024" } })).await;
    let (_, key) = app.user_with_key("1.00").await;
    let mut request = chat("alias");
    request["temperature"] = json!(0.25);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &request).await.status(), 200);
    let mut upstream = fake.received()[0].json();
    assert_eq!(upstream["model"], "real-model-2024");
    upstream["model"] = json!("alias");
    assert_eq!(upstream, request, "nothing but the model changed");
    app.settled().await;
    let logged: String =
        sqlx::query("SELECT upstream_model FROM request_logs").fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(logged, "real-model-2024");
}

async fn assert_error(response: reqwest::Response, status: u16, code: Option<&str>) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error["type"].is_string() && error.get("param").is_some() && error.get("code").is_some(), "{body}");
    if let Some(code) = code {
        assert_eq!(error["code"], code, "{body}");
    }
    body
}

async fn error_shapes_follow_openai(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_MAX_BODY_BYTES".into(), "4096".into());
        },
        |r| r,
    )
    .await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "main", "gpt-test", json!({})).await;
    app.add_channel(json!({ "name": "free", "type": "openai", "base_url": fake.base_url("free"), "key": "k", "models": ["unpriced-model"] })).await;
    let (user, key) = app.user_with_key("1.00").await;
    let (_, broke) = app.user_with_key("0").await;
    let url = app.url("/v1/chat/completions");

    assert_error(app.client.post(&url).json(&chat("gpt-test")).send().await.unwrap(), 401, Some("invalid_api_key"))
        .await;
    assert_error(
        app.v1("sk-not-a-real-key", "/v1/chat/completions", &chat("gpt-test")).await,
        401,
        Some("invalid_api_key"),
    )
    .await;
    assert_error(
        app.client.post(&url).header("authorization", "Basic abc").json(&chat("gpt-test")).send().await.unwrap(),
        401,
        Some("invalid_api_key"),
    )
    .await;
    let body =
        assert_error(app.v1(&key, "/v1/chat/completions", &chat("no-such-model")).await, 404, Some("model_not_found"))
            .await;
    assert_eq!(body["error"]["param"], "model");
    assert_error(app.v1(&key, "/v1/chat/completions", &chat("unpriced-model")).await, 403, Some("model_not_priced"))
        .await;
    assert_error(app.v1(&broke, "/v1/chat/completions", &chat("gpt-test")).await, 429, Some("insufficient_quota"))
        .await;
    let bad_json = app
        .client
        .post(&url)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{\"model\":")
        .send()
        .await
        .unwrap();
    assert_error(bad_json, 400, None).await;
    let body = assert_error(app.v1(&key, "/v1/chat/completions", &json!({ "messages": [] })).await, 400, None).await;
    assert_eq!(body["error"]["param"], "model");
    let huge = json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "x".repeat(8000) }] });
    assert_error(app.v1(&key, "/v1/chat/completions", &huge).await, 413, Some("request_too_large")).await;
    let mut streamed_embedding = json!({ "model": "gpt-test", "input": "hi" });
    streamed_embedding["stream"] = json!(true);
    assert_error(app.v1(&key, "/v1/embeddings", &streamed_embedding).await, 400, None).await;

    // None of that touched the upstream or the money.
    assert!(fake.received().is_empty());
    assert_eq!(app.balance(user).await, 1_000_000_000);
    app.assert_ledger_consistent().await;
}

async fn models_lists_only_what_the_key_may_use(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "a", "type": "openai", "base_url": fake.base_url("a"), "key": "k", "models": ["model-a", "org/model-b"] })).await;
    app.add_channel(json!({ "name": "vip", "type": "openai", "base_url": fake.base_url("vip"), "key": "k", "models": ["vip-only"], "groups": ["vip"] })).await;
    let (_, key) = app.user_with_key("0").await;
    let (_, limited) = app.user_with_key_in("default", "0", json!({ "models": ["model-a"] })).await;

    let list: Value =
        app.client.get(app.url("/v1/models")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(list["object"], "list");
    assert_eq!(ids, ["model-a", "org/model-b"]);
    assert_eq!(list["data"][0]["object"], "model");

    let list: Value =
        app.client.get(app.url("/v1/models")).bearer_auth(&limited).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let one = app.client.get(app.url("/v1/models/org/model-b")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.unwrap()["id"], "org/model-b");
    let hidden = app.client.get(app.url("/v1/models/vip-only")).bearer_auth(&key).send().await.unwrap();
    assert_error(hidden, 404, Some("model_not_found")).await;
    assert_eq!(app.client.get(app.url("/v1/models")).send().await.unwrap().status(), 401);
}

async fn every_endpoint_relays(backend: Backend) {
    let (app, fake) = setup(backend, Behavior::default()).await;
    app.set_price("img-model", json!({ "per_request": "0.04" })).await;
    app.set_price("tts-model", json!({ "input": "15.00" })).await;
    app.add_channel(json!({ "name": "media", "type": "openai", "base_url": fake.base_url("media"), "key": "k", "models": ["img-model", "tts-model"] })).await;
    let (user, key) = app.user_with_key("10.00").await;

    let cases = [
        ("/v1/completions", json!({ "model": "gpt-test", "prompt": "Say hello", "max_tokens": 10 }), "text_completion"),
        ("/v1/embeddings", json!({ "model": "gpt-test", "input": "hello" }), "list"),
        ("/v1/moderations", json!({ "model": "gpt-test", "input": "hello" }), ""),
        ("/v1/responses", json!({ "model": "gpt-test", "input": "hello" }), "response"),
        ("/v1/images/generations", json!({ "model": "img-model", "prompt": "a cat", "n": 2 }), ""),
    ];
    for (path, body, object) in cases {
        let response = app.v1(&key, path, &body).await;
        assert_eq!(response.status(), 200, "{path}");
        let json: Value = response.json().await.unwrap();
        if !object.is_empty() {
            assert_eq!(json["object"], object, "{path}");
        }
    }
    let speech = app
        .v1(&key, "/v1/audio/speech", &json!({ "model": "tts-model", "input": "Hello world", "voice": "alloy" }))
        .await;
    assert_eq!(speech.status(), 200);
    assert_eq!(speech.headers()["content-type"], "audio/mpeg");
    assert!(speech.bytes().await.unwrap().starts_with(b"ID3"));

    // Each endpoint priced as it should be: tokens from the upstream's usage, images per image,
    // speech per input character (11 at $15 per 1M).
    app.settled().await;
    let costs: std::collections::BTreeMap<String, i64> = sqlx::query("SELECT endpoint, cost FROM request_logs")
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(costs["/v1/completions"], COST_12_5);
    assert_eq!(costs["/v1/responses"], COST_12_5);
    assert_eq!(costs["/v1/embeddings"], 30_000);
    assert_eq!(costs["/v1/images/generations"], 80_000_000);
    assert_eq!(costs["/v1/audio/speech"], 165_000);
    assert!(costs["/v1/moderations"] > 0, "no usage reported: estimated locally");
    assert_eq!(app.balance(user).await, START - costs.values().sum::<i64>());
    app.assert_ledger_consistent().await;
}

async fn upstream_client_errors_are_translated_and_scrubbed(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::Status(400)).await;
    let spare = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "first", "gpt-test", json!({ "priority": 10 })).await;
    priced_channel(&app, &spare, "second", "gpt-test", json!({})).await;
    let (user, key) = app.user_with_key("1.00").await;
    let body = assert_error(
        app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await,
        400,
        Some("context_length_exceeded"),
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.contains("sk-upstream-first-secret"), "the channel key leaked: {message}");
    assert!(!message.contains("127.0.0.1"), "the upstream address leaked: {message}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    // The request itself was at fault: no failover, and a full refund.
    assert_eq!(spare.received().len(), 0);
    assert_eq!(app.balance(user).await, 1_000_000_000);
    app.settled().await;
    let class: String =
        sqlx::query("SELECT error_class FROM request_logs").fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(class, "upstream_rejected");
    app.assert_ledger_consistent().await;
}

async fn a_stream_cut_short_ends_with_an_error_event(backend: Backend) {
    let (app, _fake) = setup(backend, Behavior::Truncated).await;
    let (user, key) = app.user_with_key("1.00").await;
    let mut request = chat("gpt-test");
    request["stream"] = json!(true);
    let response = app.v1(&key, "/v1/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let last = events(&body).pop().unwrap();
    let error: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "upstream_error", "{body}");
    assert!(body.contains("Hello"), "what arrived before the break was relayed");
    // Billed for what was delivered (estimated: the upstream never reported usage).
    let charged = 1_000_000_000 - app.balance(user).await;
    assert!(charged > 0 && charged < 10_000_000, "charged {charged}");
    app.assert_ledger_consistent().await;
}

async fn a_hanging_upstream_times_out(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_UPSTREAM_FIRST_BYTE_TIMEOUT_SECS".into(), "1".into());
        },
        |r| r,
    )
    .await;
    let fake = FakeOpenAi::start(Behavior::Hang).await;
    priced_channel(&app, &fake, "slow", "gpt-test", json!({})).await;
    let (user, key) = app.user_with_key("1.00").await;
    let started = std::time::Instant::now();
    assert_error(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await, 504, Some("upstream_timeout")).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(app.balance(user).await, 1_000_000_000, "a failed request costs nothing");
    app.assert_ledger_consistent().await;
}

async fn a_client_disconnect_settles_what_was_delivered(backend: Backend) {
    let (app, _fake) = setup(backend, Behavior::Slow { chunks: 40, interval: Duration::from_millis(50) }).await;
    let (user, key) = app.user_with_key("1.00").await;
    let mut request = chat("gpt-test");
    request["stream"] = json!(true);
    let mut response = app.v1(&key, "/v1/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let _second = response.chunk().await.unwrap();
    drop(response);

    app.wait_for_logs(1).await;
    app.settled().await;
    let row =
        sqlx::query("SELECT status_code, error_class, cost FROM request_logs").fetch_one(app.db.pool()).await.unwrap();
    assert_eq!(row.get::<i64, _>(0), 499);
    assert_eq!(row.get::<String, _>(1), "client_closed");
    let cost: i64 = row.get(2);
    assert!(cost > 0, "the delivered tokens are billed");
    assert_eq!(app.balance(user).await, 1_000_000_000 - cost, "the rest of the hold is released");
    app.assert_ledger_consistent().await;
}

async fn vendors_that_always_report_usage_get_no_stream_options(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::AlwaysUsage).await;
    priced_channel(&app, &fake, "mistral", "mistral-small", json!({ "type": "mistral" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    let mut request = chat("mistral-small");
    request["stream"] = json!(true);
    let body = app.v1(&key, "/v1/chat/completions", &request).await.text().await.unwrap();
    assert_eq!(fake.received()[0].json(), request, "no stream_options sent to a vendor that rejects them");
    assert!(!body.contains("\"choices\":[]"), "the unrequested usage chunk is dropped");
    assert!(body.ends_with("data: [DONE]\n\n"));
    assert_eq!(app.balance(user).await, 1_000_000_000 - COST_12_5);
    app.assert_ledger_consistent().await;
}

async fn a_garbage_answer_fails_over(backend: Backend) {
    let app = spawn_app(backend).await;
    let garbage = FakeOpenAi::start(Behavior::Garbage).await;
    let healthy = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &garbage, "garbage", "gpt-test", json!({ "priority": 1 })).await;
    priced_channel(&app, &healthy, "healthy", "gpt-test", json!({})).await;
    let (user, key) = app.user_with_key("1.00").await;
    let response = app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["choices"][0]["message"]["content"], "Hello there!");
    assert_eq!(garbage.received().len(), 1);
    assert_eq!(app.balance(user).await, 1_000_000_000 - COST_12_5);
}

fn form(boundary: &str, fields: &[(&str, &str)], file: (&str, &[u8])) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"upload.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n", file.0).as_bytes(),
    );
    body.extend_from_slice(file.1);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

async fn uploads_relay_untouched_but_for_the_model(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "media", "type": "openai", "base_url": fake.base_url("media"), "key": "k",
                            "models": ["whisper", "gpt-image-1"], "model_mapping": { "whisper": "whisper-1" } }))
        .await;
    app.set_price("whisper", json!({ "per_request": "0.006" })).await;
    app.set_price("gpt-image-1", json!({ "per_request": "0.04" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    let audio: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let boundary = "----burncloud-test-7MA4YWxkTrZu0gW";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let post = |path: &'static str, body: Vec<u8>| {
        app.client.post(app.url(path)).bearer_auth(&key).header("content-type", content_type.clone()).body(body).send()
    };

    let sent = form(boundary, &[("model", "whisper"), ("language", "en")], ("file", &audio));
    let response = post("/v1/audio/transcriptions", sent.clone()).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert_eq!(response.json::<Value>().await.unwrap()["text"], "The quick brown fox jumped over the lazy dog.");
    let received = fake.received().pop().unwrap();
    assert_eq!(received.headers["content-type"].to_str().unwrap(), content_type);
    let expected = String::from_utf8_lossy(&sent).replacen("\r\n\r\nwhisper\r\n", "\r\n\r\nwhisper-1\r\n", 1);
    assert_eq!(String::from_utf8_lossy(&received.body), expected, "the upload is forwarded byte for byte");

    let text = post(
        "/v1/audio/translations",
        form(boundary, &[("model", "whisper"), ("response_format", "text")], ("file", &audio)),
    )
    .await
    .unwrap();
    assert_eq!(text.status(), 200);
    assert!(text.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(text.text().await.unwrap(), "The quick brown fox jumped over the lazy dog.");

    let edits = post(
        "/v1/images/edits",
        form(boundary, &[("model", "gpt-image-1"), ("n", "2"), ("prompt", "add a hat")], ("image", &audio)),
    )
    .await
    .unwrap();
    assert_eq!(edits.status(), 200);
    assert_eq!(edits.json::<Value>().await.unwrap()["data"].as_array().unwrap().len(), 2);

    let not_a_form = app.v1(&key, "/v1/audio/transcriptions", &json!({ "model": "whisper" })).await;
    assert_eq!(not_a_form.status(), 400);
    let no_file = post(
        "/v1/audio/transcriptions",
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n--{boundary}--\r\n")
            .into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(no_file.status(), 400, "the upstream's refusal is passed on");

    // Two transcriptions at $0.006 and two edited images at $0.04; the refused upload is free.
    assert_eq!(app.balance(user).await, 1_000_000_000 - 2 * 6_000_000 - 2 * 40_000_000);
    app.assert_ledger_consistent().await;
}

async fn a_silent_stream_is_cut_after_the_idle_timeout(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_UPSTREAM_IDLE_TIMEOUT_SECS".into(), "1".into());
        },
        |r| r,
    )
    .await;
    let fake = FakeOpenAi::start(Behavior::Slow { chunks: 3, interval: Duration::from_millis(1600) }).await;
    priced_channel(&app, &fake, "quiet", "gpt-test", json!({})).await;
    let (user, key) = app.user_with_key("1.00").await;
    let mut request = chat("gpt-test");
    request["stream"] = json!(true);
    let started = std::time::Instant::now();
    let response = app.v1(&key, "/v1/chat/completions", &request).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(4), "cut after about 1 s of silence, not at the end");
    let last = events(&body).pop().unwrap();
    let error: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "upstream_timeout", "{body}");
    app.settled().await;
    let class: String =
        sqlx::query("SELECT error_class FROM request_logs").fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(class, "stream_idle_timeout");
    assert!(app.balance(user).await <= 1_000_000_000);
    app.assert_ledger_consistent().await;
}

async fn disabled_keys_and_users_are_refused_once_the_cache_expires(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_CACHE_TTL_SECS".into(), "1".into());
        },
        |r| r,
    )
    .await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "main", "gpt-test", json!({})).await;
    let (key_owner, key) = app.user_with_key("1.00").await;
    let (user, other) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    assert_eq!(app.v1(&other, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    // Changed behind the gateway's back (another replica): effective within the cache TTL.
    sqlx::query("UPDATE api_keys SET status = 'disabled' WHERE user_id = $1")
        .bind(key_owner)
        .execute(app.db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE users SET status = 'disabled' WHERE id = $1").bind(user).execute(app.db.pool()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_error(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await, 401, Some("invalid_api_key")).await;
    assert_error(app.v1(&other, "/v1/chat/completions", &chat("gpt-test")).await, 401, Some("invalid_api_key")).await;
}

async fn unpriced_models_are_free_when_allowed(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_ALLOW_UNPRICED_MODELS".into(), "true".into());
        },
        |r| r,
    )
    .await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "free", "type": "openai", "base_url": fake.base_url("free"), "key": "k", "models": ["free-model"] })).await;
    let (user, key) = app.user_with_key("0").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("free-model")).await.status(), 200);
    assert_eq!(app.balance(user).await, 0);
    app.settled().await;
    let cost: i64 = sqlx::query("SELECT cost FROM request_logs").fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(cost, 0);
    app.assert_ledger_consistent().await;
}

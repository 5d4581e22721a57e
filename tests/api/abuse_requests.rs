//! Requests the imitated APIs refuse are refused here too, before any hold or upstream call
//! (issue 13, item 17), and holds cover the worst case a request can cost (item 3).

use serde_json::{Value, json};

use crate::gateway::{START, priced_channel};
use crate::support::fake_gemini::{FakeGemini, Reply};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    validate_like_the_api_being_imitated_openai,
    validate_like_the_api_being_imitated_messages,
    validate_like_the_api_being_imitated_gemini,
    server_side_tools_billed_per_call_are_refused,
    holds_cover_the_worst_case_reasoning,
    holds_cover_the_worst_case_gemini_cap,
);

async fn openai_app(backend: Backend) -> (TestApp, FakeOpenAi, i64, String) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "main", "gpt-test", json!({ "models": ["gpt-test", "o3-mini"] })).await;
    app.set_price("o3-mini", json!({ "input": "2.50", "output": "10.00" })).await;
    let (user, key) = app.user_with_key("10.00").await;
    (app, fake, user, key)
}

/// A refused request: its status and error object (in whichever shape), and nothing moved.
async fn refused(app: &TestApp, fake: Option<&FakeOpenAi>, user: i64, response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    if let Some(fake) = fake {
        assert!(fake.received().is_empty(), "no upstream call: {body}");
    }
    assert_eq!(app.balance(user).await, START, "no hold, no charge: {body}");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_logs").fetch_one(app.db.pool()).await.unwrap();
    assert_eq!(rows, 0, "nothing was relayed: {body}");
    body
}

async fn validate_like_the_api_being_imitated_openai(backend: Backend) {
    let (app, fake, user, key) = openai_app(backend).await;
    let base = || json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "hi" }] });
    let cases = [
        ("max_tokens", json!(-1)),
        ("max_tokens", json!(0)),
        ("max_tokens", json!(1_000_000_000_000_i64)),
        ("max_completion_tokens", json!(-5)),
        ("n", json!(0)),
        ("n", json!(100_000)),
        ("temperature", json!(-0.5)),
        ("temperature", json!(2.5)),
        ("top_p", json!(1.5)),
        ("top_p", json!(-1)),
    ];
    for (field, value) in cases {
        let mut body = base();
        body[field] = value.clone();
        let error = refused(&app, Some(&fake), user, app.v1(&key, "/v1/chat/completions", &body).await).await;
        assert_eq!(error["error"]["type"], "invalid_request_error", "{field}={value}: {error}");
        assert_eq!(error["error"]["param"], field, "{field}={value}: {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(&value.to_string()), "{error}");
    }
    // The Responses API's cap too.
    let body = json!({ "model": "gpt-test", "input": "hi", "max_output_tokens": -1 });
    let error = refused(&app, Some(&fake), user, app.v1(&key, "/v1/responses", &body).await).await;
    assert_eq!(error["error"]["param"], "max_output_tokens");
    // In range, it goes through.
    let mut body = base();
    body["temperature"] = json!(2);
    body["top_p"] = json!(0);
    body["n"] = json!(1);
    body["max_tokens"] = json!(1);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &body).await.status(), 200);
    app.assert_ledger_consistent().await;
}

async fn validate_like_the_api_being_imitated_messages(backend: Backend) {
    let (app, fake, user, key) = openai_app(backend).await;
    let post = |body: Value| {
        app.client
            .post(app.url("/v1/messages"))
            .header("x-api-key", &key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
    };
    // Anthropic requires max_tokens, whatever the channel behind.
    let body = json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "hi" }] });
    let error = refused(&app, Some(&fake), user, post(body).send().await.unwrap()).await;
    assert_eq!(error["type"], "error", "Anthropic's shape: {error}");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["message"], "max_tokens: Field required");
    // Anthropic's temperature range is 0 to 1.
    let body = json!({ "model": "gpt-test", "max_tokens": 10, "temperature": 1.5,
        "messages": [{ "role": "user", "content": "hi" }] });
    let error = refused(&app, Some(&fake), user, post(body).send().await.unwrap()).await;
    assert!(error["error"]["message"].as_str().unwrap().contains("temperature"), "{error}");
    let body = json!({ "model": "gpt-test", "max_tokens": -3, "messages": [{ "role": "user", "content": "hi" }] });
    refused(&app, Some(&fake), user, post(body).send().await.unwrap()).await;
    let body = json!({ "model": "gpt-test", "max_tokens": 10, "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(post(body).send().await.unwrap().status(), 200);
    app.assert_ledger_consistent().await;
}

async fn gemini_app(backend: Backend, balance: &str) -> (TestApp, FakeGemini, i64, String) {
    let app = spawn_app(backend).await;
    let fake = FakeGemini::start(Reply::Text).await;
    app.add_channel(
        json!({ "name": "gemini", "type": "gemini", "base_url": fake.base_url(), "key": crate::support::fake_gemini::KEY,
        "models": ["gemini-test"], "model_mapping": { "gemini-test": "gemini-2.0-flash" } }),
    )
    .await;
    app.set_price("gemini-test", json!({ "input": "1.00", "output": "2.00" })).await;
    let (user, key) = app.user_with_key(balance).await;
    (app, fake, user, key)
}

async fn validate_like_the_api_being_imitated_gemini(backend: Backend) {
    let (app, fake, user, key) = gemini_app(backend, "10.00").await;
    let url = app.url("/v1beta/models/gemini-test:generateContent");
    for (field, value) in
        [("maxOutputTokens", json!(-1)), ("temperature", json!(3)), ("topP", json!(2)), ("candidateCount", json!(0))]
    {
        let body = json!({ "contents": [{ "role": "user", "parts": [{ "text": "hi" }] }], "generationConfig": { field: value } });
        let response = app.client.post(&url).header("x-goog-api-key", &key).json(&body).send().await.unwrap();
        let error = refused(&app, None, user, response).await;
        assert_eq!(error["error"]["code"], 400, "Google's shape: {error}");
        assert_eq!(error["error"]["status"], "INVALID_ARGUMENT", "{error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(field), "{error}");
    }
    assert!(fake.received().is_empty());
}

async fn server_side_tools_billed_per_call_are_refused(backend: Backend) {
    let (app, fake, user, key) = openai_app(backend).await;
    let chat =
        json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "news?" }], "web_search_options": {} });
    let error = refused(&app, Some(&fake), user, app.v1(&key, "/v1/chat/completions", &chat).await).await;
    assert!(error["error"]["message"].as_str().unwrap().contains("web_search_options"), "{error}");
    for tool in ["web_search_preview", "web_search", "file_search", "code_interpreter", "image_generation"] {
        let body = json!({ "model": "gpt-test", "input": "hi", "tools": [{ "type": tool }] });
        let error = refused(&app, Some(&fake), user, app.v1(&key, "/v1/responses", &body).await).await;
        assert_eq!(error["error"]["param"], "tools", "{tool}: {error}");
    }
    let messages = json!({ "model": "gpt-test", "max_tokens": 10, "messages": [{ "role": "user", "content": "hi" }],
        "tools": [{ "type": "web_search_20250305", "name": "web_search", "max_uses": 5 }] });
    let response =
        app.client.post(app.url("/v1/messages")).header("x-api-key", &key).json(&messages).send().await.unwrap();
    let error = refused(&app, Some(&fake), user, response).await;
    assert_eq!(error["type"], "error");
    // A function tool, and the words in a message, are fine.
    let ok = json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "what is \"web_search_options\"?" }],
        "tools": [{ "type": "function", "function": { "name": "web_search", "parameters": { "type": "object" } } }] });
    assert_eq!(app.v1(&key, "/v1/chat/completions", &ok).await.status(), 200);
    app.assert_ledger_consistent().await;

    let (app, _fake, user, key) = gemini_app(backend, "10.00").await;
    let body =
        json!({ "contents": [{ "role": "user", "parts": [{ "text": "hi" }] }], "tools": [{ "googleSearch": {} }] });
    let response = app
        .client
        .post(app.url("/v1beta/models/gemini-test:generateContent"))
        .header("x-goog-api-key", &key)
        .json(&body)
        .send()
        .await
        .unwrap();
    refused(&app, None, user, response).await;
}

/// A reasoning model that sets no cap is held for 32,768 output tokens, not the default 4,096.
async fn holds_cover_the_worst_case_reasoning(backend: Backend) {
    let (app, fake, _user, _key) = openai_app(backend).await;
    // $0.10: enough for 4,096 output tokens at $10/1M ($0.041), not for 32,768 ($0.33).
    let (_poor, key) = app.user_with_key("0.10").await;
    let ask = |model: &str, extra: Value| {
        let mut body = json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    assert_eq!(app.v1(&key, "/v1/chat/completions", &ask("gpt-test", json!({}))).await.status(), 200);
    let calls = fake.received().len();
    for body in [ask("o3-mini", json!({})), ask("gpt-test", json!({ "reasoning_effort": "high" }))] {
        let response = app.v1(&key, "/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 429, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "insufficient_quota");
    }
    assert_eq!(fake.received().len(), calls, "refused before the upstream");
    // With a cap it fits.
    assert_eq!(
        app.v1(&key, "/v1/chat/completions", &ask("o3-mini", json!({ "max_completion_tokens": 1000 }))).await.status(),
        200
    );
    app.assert_ledger_consistent().await;
}

/// Gemini's own cap field is read for the hold.
async fn holds_cover_the_worst_case_gemini_cap(backend: Backend) {
    let (app, fake, user, key) = gemini_app(backend, "0.01").await;
    let url = app.url("/v1beta/models/gemini-test:generateContent");
    // 1,000,000 output tokens at $2/1M is $2: more than the balance.
    let big = json!({ "contents": [{ "role": "user", "parts": [{ "text": "hi" }] }], "generationConfig": { "maxOutputTokens": 1_000_000 } });
    let response = app.client.post(&url).header("x-goog-api-key", &key).json(&big).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(fake.received().is_empty());
    let small = json!({ "contents": [{ "role": "user", "parts": [{ "text": "hi" }] }], "generationConfig": { "maxOutputTokens": 100 } });
    let response = app.client.post(&url).header("x-goog-api-key", &key).json(&small).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(app.balance(user).await < 10_000_000);
    app.assert_ledger_consistent().await;
}

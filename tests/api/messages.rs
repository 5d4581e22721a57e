//! `POST /v1/messages`: Anthropic's Messages API in front of any channel — converted for
//! OpenAI-protocol channels, passed through to Anthropic channels — with Anthropic's error shapes
//! and exact billing.

use serde_json::{Value, json};

use crate::gateway::{COST_12_5, priced_channel};
use crate::support::fake_anthropic::{FakeAnthropic, KEY, Reply, fixture};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    messages_reach_an_openai_channel,
    streamed_messages_from_an_openai_channel_follow_anthropics_event_sequence,
    messages_pass_through_to_an_anthropic_channel_byte_for_byte,
    errors_on_messages_take_anthropics_shape,
    count_tokens_answers_locally,
    a_stream_cut_short_ends_with_an_anthropic_error_event,
);

pub async fn messages(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn request(model: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": model, "max_tokens": 64, "system": "Be brief.",
        "messages": [{ "role": "user", "content": [{ "type": "text", "text": "Say hello" }] }]
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

/// `(event name, data)` of each SSE event.
fn sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_string();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

async fn messages_reach_an_openai_channel(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "gpt", "gpt-test", json!({})).await;
    let (user, key) = app.user_with_key("1.00").await;

    let response = messages(&app, &key, &request("gpt-test", json!({ "stop_sequences": ["END"] }))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["type"].as_str(), body["role"].as_str()), (Some("message"), Some("assistant")));
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["content"], json!([{ "type": "text", "text": "Hello there!" }]));
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!((body["usage"]["input_tokens"].as_i64(), body["usage"]["output_tokens"].as_i64()), (Some(12), Some(5)));

    let sent = fake.received()[0].json();
    assert_eq!(
        sent["messages"],
        json!([{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "Say hello" }])
    );
    assert_eq!((sent["max_tokens"].as_i64(), sent["stop"].clone()), (Some(64), json!(["END"])));

    // Tools: the OpenAI call comes back as a tool_use block.
    let tools = json!([{ "name": "get_weather", "input_schema": { "type": "object" } }]);
    let response = messages(&app, &key, &request("gpt-test", json!({ "tools": tools }))).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["stop_reason"], "tool_use");
    let block = &body["content"][0];
    assert_eq!((block["type"].as_str(), block["name"].as_str()), (Some("tool_use"), Some("get_weather")));
    assert_eq!(block["input"], json!({ "location": "Paris" }));
    assert_eq!(fake.received()[1].json()["tools"][0]["function"]["name"], "get_weather");

    assert_eq!(app.balance(user).await, 1_000_000_000 - 2 * COST_12_5);
    app.assert_ledger_consistent().await;
}

async fn streamed_messages_from_an_openai_channel_follow_anthropics_event_sequence(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "gpt", "gpt-test", json!({})).await;
    let (user, key) = app.user_with_key("1.00").await;

    let response = messages(&app, &key, &request("gpt-test", json!({ "stream": true }))).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
    let events = sse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"]);
    assert!(names[3..names.len() - 3].iter().all(|n| *n == "content_block_delta"));
    for (name, data) in &events {
        assert_eq!(data["type"], *name, "the data's type names its event");
    }
    let text: String = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "Hello there!");
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 5);
    // The gateway asked the OpenAI upstream for its usage, to bill exactly.
    assert_eq!(fake.received()[0].json()["stream_options"]["include_usage"], true);
    assert_eq!(app.balance(user).await, 1_000_000_000 - COST_12_5);
    app.assert_ledger_consistent().await;
}

async fn anthropic_channel(app: &TestApp, fake: &FakeAnthropic) {
    app.add_channel(json!({
        "name": "claude", "type": "anthropic", "base_url": fake.base_url(), "key": KEY, "models": ["claude-test"]
    }))
    .await;
    app.set_price("claude-test", json!({ "input": "1.00", "output": "2.00" })).await;
}

async fn messages_pass_through_to_an_anthropic_channel_byte_for_byte(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeAnthropic::start(Reply::Text).await;
    anthropic_channel(&app, &fake).await;
    let (user, key) = app.user_with_key("1.00").await;

    let body = request("claude-test", json!({ "metadata": { "user_id": "u-1" } }));
    let response = messages(&app, &key, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), fixture("message.json"), "the answer passes through untouched");
    assert_eq!(fake.received()[0], body, "so does the request");

    let response = messages(&app, &key, &request("claude-test", json!({ "stream": true }))).await;
    assert_eq!(response.text().await.unwrap(), fixture("stream_text.sse"));

    // Billed from the answer's usage (2095 in, 503 out) and the stream's (25 in, 15 out).
    let cost = |input: i64, output: i64| input * 1000 + output * 2000;
    assert_eq!(app.balance(user).await, 1_000_000_000 - cost(2095, 503) - cost(25, 15));
    app.assert_ledger_consistent().await;
}

async fn errors_on_messages_take_anthropics_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeAnthropic::start(Reply::Error(400, "invalid_request_error")).await;
    anthropic_channel(&app, &fake).await;
    let (_, key) = app.user_with_key("1.00").await;

    let expect = |status: u16, kind: &'static str| {
        move |(s, body): (u16, Value)| {
            assert_eq!(s, status, "{body}");
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], kind, "{body}");
            assert!(body["error"]["message"].is_string(), "{body}");
        }
    };
    let call = |key: String, body: Value| {
        let app = &app;
        async move {
            let response = messages(app, &key, &body).await;
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    expect(401, "authentication_error")(call("sk-wrong".into(), request("claude-test", json!({}))).await);
    expect(404, "not_found_error")(call(key.clone(), request("no-such-model", json!({}))).await);
    expect(400, "invalid_request_error")(call(key.clone(), request("claude-test", json!({}))).await);
    let (_, empty) = app.user_with_key("0").await;
    expect(429, "rate_limit_error")(call(empty, request("claude-test", json!({}))).await);

    // The Bearer scheme works too (current Anthropic SDKs may send it).
    let response =
        app.client.post(app.url("/v1/messages")).bearer_auth("sk-wrong").json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 401);
    app.assert_ledger_consistent().await;
}

async fn count_tokens_answers_locally(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.user_with_key("1.00").await;
    let response = app
        .client
        .post(app.url("/v1/messages/count_tokens"))
        .header("x-api-key", &key)
        .json(
            &json!({ "model": "any", "messages": [{ "role": "user", "content": "Hello there, how are you today?" }] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens = response.json::<Value>().await.unwrap()["input_tokens"].as_i64().unwrap();
    assert!((5..=12).contains(&tokens), "{tokens}");
    let response = app
        .client
        .post(app.url("/v1/messages/count_tokens"))
        .header("x-api-key", &key)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
    let response = app.client.post(app.url("/v1/messages/count_tokens")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

async fn a_stream_cut_short_ends_with_an_anthropic_error_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::Truncated).await;
    priced_channel(&app, &fake, "gpt", "gpt-test", json!({})).await;
    let (_, key) = app.user_with_key("1.00").await;
    let response = messages(&app, &key, &request("gpt-test", json!({ "stream": true }))).await;
    assert_eq!(response.status(), 200, "the stream had started");
    let events = sse(&response.text().await.unwrap());
    assert_eq!(events[0].0, "message_start");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!((data["type"].as_str(), data["error"]["type"].as_str()), (Some("error"), Some("api_error")));
    assert!(!events.iter().any(|(n, _)| n == "message_stop"), "a broken stream does not claim to be complete");
    app.settled().await;
    app.assert_ledger_consistent().await;
}

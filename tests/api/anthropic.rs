//! OpenAI chat completions through an `anthropic` channel: converted to the Messages API and
//! back, streamed and not, with tools, usage billed exactly and errors in OpenAI's shape.

use serde_json::{Value, json};
use sqlx::Row;

use crate::support::fake_anthropic::{FakeAnthropic, KEY, Reply};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    a_chat_completion_is_converted_and_billed_from_anthropic_usage,
    tool_calls_and_results_round_trip,
    upstream_errors_take_the_openai_shape,
    the_channel_probe_speaks_anthropic,
    an_overloaded_stream_fails_over_before_anything_is_sent,
);

/// $1 per 1M input tokens, $2 per 1M output: 1,000 and 2,000 nano-units a token.
async fn setup(backend: Backend, reply: Reply) -> (TestApp, FakeAnthropic, i64, String) {
    let app = spawn_app(backend).await;
    let fake = FakeAnthropic::start(reply).await;
    app.add_channel(json!({
        "name": "claude", "type": "anthropic", "base_url": fake.base_url(), "key": KEY,
        "models": ["claude-test"], "model_mapping": { "claude-test": "claude-sonnet-4-20250514" }
    }))
    .await;
    app.set_price("claude-test", json!({ "input": "1.00", "output": "2.00", "cached_input": "0.10" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    (app, fake, user, key)
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "claude-test",
        "messages": [
            { "role": "system", "content": "You are terse." },
            { "role": "user", "content": "Hello" }
        ]
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

async fn a_chat_completion_is_converted_and_billed_from_anthropic_usage(backend: Backend) {
    let (app, fake, user, key) = setup(backend, Reply::Text).await;
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "max_tokens": 300, "stop": ["END"] }))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["choices"][0]["message"]["content"], "Hi! My name is Claude.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 2095);
    assert_eq!(body["usage"]["completion_tokens"], 503);

    let sent = &fake.received()[0];
    assert_eq!(sent["model"], "claude-sonnet-4-20250514", "the channel's model mapping applies");
    assert_eq!(sent["system"], "You are terse.");
    assert_eq!(sent["max_tokens"], 300);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["messages"], json!([{ "role": "user", "content": [{ "type": "text", "text": "Hello" }] }]));

    assert_eq!(app.balance(user).await, 1_000_000_000 - (2095 * 1000 + 503 * 2000));
    app.assert_ledger_consistent().await;
}

async fn tool_calls_and_results_round_trip(backend: Backend) {
    let (app, fake, user, key) = setup(backend, Reply::ToolUse).await;
    let tools = json!([{ "type": "function", "function": {
        "name": "get_weather", "description": "Weather now",
        "parameters": { "type": "object", "properties": { "location": { "type": "string" } } } } }]);
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "tools": tools, "tool_choice": "auto" }))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["content"], "I'll check the weather.");
    let call = &message["tool_calls"][0];
    assert_eq!(
        (call["id"].as_str(), call["function"]["name"].as_str()),
        (Some("toolu_01A09q90qw90lq917835lq9"), Some("get_weather"))
    );
    let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({ "location": "San Francisco, CA", "unit": "celsius" }));
    let sent = &fake.received()[0];
    assert_eq!(sent["tools"][0]["input_schema"]["properties"]["location"]["type"], "string");
    assert_eq!(sent["tool_choice"], json!({ "type": "auto" }));

    // The client answers the call; the fake checks the result pairs with the tool use.
    let follow_up = chat(json!({ "tools": tools, "messages": [
        { "role": "user", "content": "Weather in SF?" },
        { "role": "assistant", "content": null, "tool_calls": [call] },
        { "role": "tool", "tool_call_id": call["id"], "content": "15 degrees" }
    ] }));
    let response = app.v1(&key, "/v1/chat/completions", &follow_up).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = &fake.received()[1];
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");

    // Cache reads and writes count in the prompt and are logged as such.
    app.settled().await;
    let row = sqlx::query(
        "SELECT prompt_tokens, cached_tokens, cache_write_tokens, completion_tokens FROM request_logs ORDER BY id LIMIT 1",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    let logged: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(logged, (1500, 1000, 100, 90));
    assert!(app.balance(user).await < 1_000_000_000);
    app.assert_ledger_consistent().await;
}

async fn upstream_errors_take_the_openai_shape(backend: Backend) {
    let (app, fake, user, key) = setup(backend, Reply::Error(400, "invalid_request_error")).await;
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({}))).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["message"], "The upstream refused this.");

    // A request the Messages API cannot express is refused before any upstream call.
    let calls = fake.received().len();
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "n": 2 }))).await;
    assert_eq!(response.status(), 400);
    assert!(response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("`n`"));
    assert_eq!(fake.received().len(), calls);

    // Overloaded (529) is retryable: with no other channel, a 5xx in OpenAI's shape.
    fake.set(Reply::Error(529, "overloaded_error"));
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({}))).await;
    assert!(response.status().is_server_error());
    assert!(response.json::<Value>().await.unwrap()["error"]["message"].is_string());
    assert_eq!(app.balance(user).await, 1_000_000_000, "failures are not charged");
    app.assert_ledger_consistent().await;
}

async fn the_channel_probe_speaks_anthropic(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeAnthropic::start(Reply::Text).await;
    let id = app
        .add_channel(json!({ "name": "c", "type": "anthropic", "base_url": fake.base_url(), "key": KEY, "models": ["claude-x"] }))
        .await;
    let (status, result) = app.admin("POST", &format!("/api/admin/channels/{id}/test"), None).await;
    assert_eq!((status, result["ok"].as_bool()), (200, Some(true)), "{result}");
    assert_eq!(fake.received()[0]["model"], "claude-x");
}

async fn an_overloaded_stream_fails_over_before_anything_is_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let overloaded = FakeAnthropic::start(Reply::StreamError).await;
    let healthy = FakeAnthropic::start(Reply::Text).await;
    for (name, fake, priority) in [("first", &overloaded, 10), ("second", &healthy, 0)] {
        let channel = json!({ "name": name, "type": "anthropic", "base_url": fake.base_url(), "key": KEY,
                              "models": ["claude-test"], "priority": priority });
        app.add_channel(channel).await;
    }
    app.set_price("claude-test", json!({ "input": "1.00", "output": "2.00" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "stream": true }))).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("Hello") && !text.contains("Overloaded"), "{text}");
    assert_eq!((overloaded.received().len(), healthy.received().len()), (1, 1));
    assert_eq!(app.balance(user).await, 1_000_000_000 - (25 * 1000 + 15 * 2000));
    app.assert_ledger_consistent().await;
}

//! OpenAI chat completions and Anthropic messages through a `bedrock` channel: Converse and
//! ConverseStream (event-stream frames), signed with SigV4, usage billed exactly.

use serde_json::{Value, json};

use crate::support::fake_bedrock::{ACCESS_KEY_ID, FakeBedrock, REGION, Reply, SECRET_ACCESS_KEY};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    a_signed_converse_call_is_converted_and_billed,
    tool_use_round_trips_streamed_and_not,
    anthropic_clients_reach_bedrock_models,
);

/// $1 per 1M input tokens, $2 per 1M output: 1,000 and 2,000 nano-units a token.
async fn setup(backend: Backend, reply: Reply, secret: &str) -> (TestApp, FakeBedrock, i64, i64, String) {
    let app = spawn_app(backend).await;
    let fake = FakeBedrock::start(reply).await;
    let channel = app
        .add_channel(json!({
            "name": "bedrock", "type": "bedrock", "base_url": fake.base_url(),
            "key": format!("{ACCESS_KEY_ID}:{secret}"),
            "models": ["claude-bedrock"],
            "model_mapping": { "claude-bedrock": "anthropic.claude-3-5-sonnet-20240620-v1:0" },
            "config": { "region": REGION }
        }))
        .await;
    app.set_price("claude-bedrock", json!({ "input": "1.00", "output": "2.00" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    (app, fake, channel, user, key)
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "claude-bedrock",
        "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "Hello" }]
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

fn chunks(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

async fn a_signed_converse_call_is_converted_and_billed(backend: Backend) {
    let (app, fake, _, user, key) = setup(backend, Reply::Text, SECRET_ACCESS_KEY).await;
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "max_tokens": 50, "stop": ["END"] }))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello! How can I help you today?");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let (path, sent) = &fake.received()[0];
    assert_eq!(path, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    assert_eq!(sent["system"], json!([{ "text": "Be brief." }]));
    assert_eq!(sent["inferenceConfig"], json!({ "maxTokens": 50, "stopSequences": ["END"] }));
    assert_eq!(app.balance(user).await, 1_000_000_000 - (12 * 1000 + 9 * 2000));
    app.assert_ledger_consistent().await;
}

async fn tool_use_round_trips_streamed_and_not(backend: Backend) {
    let (app, fake, _, user, key) = setup(backend, Reply::ToolUse, SECRET_ACCESS_KEY).await;
    let tools =
        json!([{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object" } } }]);
    let body: Value =
        app.v1(&key, "/v1/chat/completions", &chat(json!({ "tools": tools }))).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let call = body["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(
        (call["id"].as_str(), call["function"]["name"].as_str()),
        (Some("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"), Some("get_weather"))
    );
    // Cache reads and writes are part of the prompt.
    assert_eq!(body["usage"]["prompt_tokens"], 416 + 100 + 50);
    assert_eq!(fake.received()[0].1["toolConfig"]["tools"][0]["toolSpec"]["name"], "get_weather");

    let follow_up = chat(json!({ "tools": tools, "messages": [
        { "role": "user", "content": "Weather?" },
        { "role": "assistant", "content": null, "tool_calls": [call] },
        { "role": "tool", "tool_call_id": call["id"], "content": "{\"celsius\": 15}" }
    ] }));
    let response = app.v1(&key, "/v1/chat/completions", &follow_up).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(fake.received()[1].1["messages"][2]["content"][0]["toolResult"]["content"][0]["json"]["celsius"], 15);

    let text = app
        .v1(&key, "/v1/chat/completions", &chat(json!({ "tools": tools, "stream": true })))
        .await
        .text()
        .await
        .unwrap();
    let chunks = chunks(&text);
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    assert_eq!(calls[0]["id"], "tooluse_abc123");
    let arguments: String = calls.iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({ "location": "Paris" }));
    assert!(text.contains("\"finish_reason\":\"tool_calls\""));
    assert!(app.balance(user).await < 1_000_000_000);
    app.assert_ledger_consistent().await;
}

async fn anthropic_clients_reach_bedrock_models(backend: Backend) {
    let (app, _fake, _, user, key) = setup(backend, Reply::Text, SECRET_ACCESS_KEY).await;
    let request =
        json!({ "model": "claude-bedrock", "max_tokens": 64, "messages": [{ "role": "user", "content": "Hello" }] });
    let send = |body: Value| app.client.post(app.url("/v1/messages")).header("x-api-key", &key).json(&body).send();
    let body: Value = send(request.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(body["content"][0]["text"], "Hello! How can I help you today?");
    let mut streamed = request;
    streamed["stream"] = json!(true);
    let text = send(streamed).await.unwrap().text().await.unwrap();
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    assert_eq!(app.balance(user).await, 1_000_000_000 - (12 * 1000 + 9 * 2000) - (12 * 1000 + 7 * 2000));
    app.assert_ledger_consistent().await;
}

//! One conformance suite applied to every protocol-converting channel type: the same OpenAI chat
//! cases — plain, streamed, tools, streamed tools, images, stop reasons, usage billed exactly and
//! error mapping — against each provider's fake (which checks requests like the real service and
//! answers from the documented fixtures). `conformance!` generates every case × provider ×
//! database.

use serde_json::{Value, json};

use crate::support::helpers::{Backend, TestApp, spawn_app};
use crate::support::{fake_anthropic, fake_azure, fake_bedrock, fake_gemini};

#[derive(Clone, Copy, Debug)]
enum Provider {
    Anthropic,
    Gemini,
    Azure,
    Bedrock,
}

/// What a provider's fixtures answer: text, usage `(prompt, completion)`, and tool arguments.
struct Expected {
    text: &'static str,
    usage: (i64, i64),
    stream_text: &'static str,
    stream_usage: (i64, i64),
    tool_args: Value,
    stream_tool_args: Value,
}

impl Provider {
    fn expected(self) -> Expected {
        match self {
            Provider::Anthropic => Expected {
                text: "Hi! My name is Claude.",
                usage: (2095, 503),
                stream_text: "Hello!",
                stream_usage: (25, 15),
                tool_args: json!({ "location": "San Francisco, CA", "unit": "celsius" }),
                stream_tool_args: json!({ "location": "San Francisco, CA" }),
            },
            Provider::Gemini => Expected {
                text: "AI learns patterns from data to make predictions.",
                usage: (8, 10),
                stream_text: "The sky is blue.",
                stream_usage: (9, 5),
                tool_args: json!({ "location": "Paris" }),
                stream_tool_args: json!({ "location": "Paris" }),
            },
            Provider::Azure => Expected {
                text: "Hello there!",
                usage: (12, 5),
                stream_text: "Hello there!",
                stream_usage: (12, 5),
                tool_args: json!({ "location": "Paris" }),
                stream_tool_args: json!({ "location": "Paris" }),
            },
            Provider::Bedrock => Expected {
                text: "Hello! How can I help you today?",
                usage: (12, 9),
                stream_text: "Hello! How can I help?",
                stream_usage: (12, 7),
                tool_args: json!({ "location": "Paris" }),
                stream_tool_args: json!({ "location": "Paris" }),
            },
        }
    }
}

/// A running fake of the provider; kept alive for the test.
enum Fake {
    Anthropic(fake_anthropic::FakeAnthropic),
    Gemini(fake_gemini::FakeGemini),
    Azure(fake_azure::FakeAzure),
    Bedrock(fake_bedrock::FakeBedrock),
}

impl Fake {
    /// How many requests the upstream accepted.
    fn accepted(&self) -> usize {
        match self {
            Fake::Anthropic(f) => f.received().len(),
            Fake::Gemini(f) => f.received().len(),
            Fake::Azure(f) => f.seen().len(),
            Fake::Bedrock(f) => f.received().len(),
        }
    }

    /// The last request body as the upstream received it.
    fn last_body(&self) -> Value {
        match self {
            Fake::Anthropic(f) => f.received().last().cloned().unwrap(),
            Fake::Gemini(f) => f.received().last().map(|r| r.1.clone()).unwrap(),
            Fake::Azure(f) => f.openai.received().last().map(|r| r.json()).unwrap(),
            Fake::Bedrock(f) => f.received().last().map(|r| r.1.clone()).unwrap(),
        }
    }
}

/// An app with one channel of the provider serving `model-x` at $1 / $2 per 1M tokens, and a user
/// with $1. `tools`: the fake answers with a tool call. `good_key`: false gives the channel a key
/// the upstream refuses.
async fn setup(backend: Backend, provider: Provider, tools: bool, good_key: bool) -> (TestApp, Fake, i64, i64, String) {
    let app = spawn_app(backend).await;
    let (fake, channel) = match provider {
        Provider::Anthropic => {
            let fake = fake_anthropic::FakeAnthropic::start(if tools {
                fake_anthropic::Reply::ToolUse
            } else {
                fake_anthropic::Reply::Text
            })
            .await;
            let key = if good_key { fake_anthropic::KEY } else { "sk-ant-wrong" };
            let channel = json!({ "type": "anthropic", "base_url": fake.base_url(), "key": key });
            (Fake::Anthropic(fake), channel)
        }
        Provider::Gemini => {
            let reply = if tools { fake_gemini::Reply::FunctionCall } else { fake_gemini::Reply::Text };
            let fake = fake_gemini::FakeGemini::start(reply).await;
            let key = if good_key { fake_gemini::KEY } else { "AIza-wrong" };
            let channel = json!({ "type": "gemini", "base_url": fake.base_url(), "key": key });
            (Fake::Gemini(fake), channel)
        }
        Provider::Azure => {
            let fake = fake_azure::FakeAzure::start(&["deploy-x"]).await;
            let key = if good_key { fake_azure::KEY } else { "azure-wrong" };
            let channel = json!({ "type": "azure", "base_url": fake.base_url(), "key": key,
                                  "model_mapping": { "model-x": "deploy-x" } });
            (Fake::Azure(fake), channel)
        }
        Provider::Bedrock => {
            let reply = if tools { fake_bedrock::Reply::ToolUse } else { fake_bedrock::Reply::Text };
            let fake = fake_bedrock::FakeBedrock::start(reply).await;
            let secret = if good_key { fake_bedrock::SECRET_ACCESS_KEY } else { "wrong-secret" };
            let channel = json!({ "type": "bedrock", "base_url": fake.base_url(),
                                  "key": format!("{}:{secret}", fake_bedrock::ACCESS_KEY_ID),
                                  "config": { "region": fake_bedrock::REGION } });
            (Fake::Bedrock(fake), channel)
        }
    };
    let mut channel = channel;
    channel["name"] = json!("conformance");
    channel["models"] = json!(["model-x"]);
    let id = app.add_channel(channel).await;
    app.set_price("model-x", json!({ "input": "1.00", "output": "2.00" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    (app, fake, id, user, key)
}

fn cost((prompt, completion): (i64, i64)) -> i64 {
    prompt * 1000 + completion * 2000
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "model-x", "max_tokens": 64,
        "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "Hello" }]
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

fn tools() -> Value {
    json!([{ "type": "function", "function": { "name": "get_weather", "description": "Weather now",
        "parameters": { "type": "object", "properties": { "location": { "type": "string" } } } } }])
}

/// The chunks of an OpenAI SSE body (without `[DONE]`), checking it ends with `[DONE]`.
fn chunks(text: &str) -> Vec<Value> {
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn finish_reasons(chunks: &[Value]) -> Vec<String> {
    chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_string)).collect()
}

async fn plain(backend: Backend, provider: Provider) {
    let (app, _fake, _, user, key) = setup(backend, provider, false, true).await;
    let expected = provider.expected();
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({}))).await;
    assert_eq!(response.status(), 200, "{provider:?}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], expected.text, "{provider:?}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{provider:?}");
    let usage =
        (body["usage"]["prompt_tokens"].as_i64().unwrap(), body["usage"]["completion_tokens"].as_i64().unwrap());
    assert_eq!(usage, expected.usage, "{provider:?}");
    assert_eq!(app.balance(user).await, 1_000_000_000 - cost(expected.usage), "{provider:?}: billed from usage");
    app.assert_ledger_consistent().await;
}

async fn streamed(backend: Backend, provider: Provider) {
    let (app, _fake, _, user, key) = setup(backend, provider, false, true).await;
    let expected = provider.expected();
    let body = chat(json!({ "stream": true, "stream_options": { "include_usage": true } }));
    let response = app.v1(&key, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200, "{provider:?}");
    let chunks = chunks(&response.text().await.unwrap());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant", "{provider:?}");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, expected.stream_text, "{provider:?}");
    assert_eq!(finish_reasons(&chunks), ["stop"], "{provider:?}");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        (usage["prompt_tokens"].as_i64().unwrap(), usage["completion_tokens"].as_i64().unwrap()),
        expected.stream_usage,
        "{provider:?}"
    );
    // Without include_usage there is no usage chunk; the charge is the same.
    let text = app.v1(&key, "/v1/chat/completions", &chat(json!({ "stream": true }))).await.text().await.unwrap();
    assert!(!text.contains("\"usage\":{"), "{provider:?}: {text}");
    assert_eq!(app.balance(user).await, 1_000_000_000 - 2 * cost(expected.stream_usage), "{provider:?}");
    app.assert_ledger_consistent().await;
}

async fn tool_calls(backend: Backend, provider: Provider) {
    let (app, fake, _, _, key) = setup(backend, provider, true, true).await;
    let expected = provider.expected();
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "tools": tools() }))).await;
    assert_eq!(response.status(), 200, "{provider:?}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls", "{provider:?}");
    let call = body["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather", "{provider:?}");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, expected.tool_args, "{provider:?}");

    // The client answers the call; each fake checks that the result pairs with the call.
    let follow_up = chat(json!({ "tools": tools(), "messages": [
        { "role": "user", "content": "Weather in Paris?" },
        { "role": "assistant", "content": null, "tool_calls": [call] },
        { "role": "tool", "tool_call_id": call["id"], "content": "{\"celsius\": 15}" }
    ] }));
    let response = app.v1(&key, "/v1/chat/completions", &follow_up).await;
    assert_eq!(response.status(), 200, "{provider:?}: {}", response.text().await.unwrap());
    assert_eq!(fake.accepted(), 2);
    app.assert_ledger_consistent().await;
}

async fn streamed_tool_calls(backend: Backend, provider: Provider) {
    let (app, _fake, _, _, key) = setup(backend, provider, true, true).await;
    let expected = provider.expected();
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "tools": tools(), "stream": true }))).await;
    assert_eq!(response.status(), 200, "{provider:?}");
    let chunks = chunks(&response.text().await.unwrap());
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    assert!(calls[0]["id"].as_str().is_some_and(|id| !id.is_empty()), "{provider:?}: the first delta carries the id");
    assert_eq!(calls[0]["function"]["name"], "get_weather", "{provider:?}");
    assert!(calls.iter().all(|c| c["index"] == 0), "{provider:?}");
    let arguments: String = calls.iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), expected.stream_tool_args, "{provider:?}");
    assert_eq!(finish_reasons(&chunks), ["tool_calls"], "{provider:?}");
    app.assert_ledger_consistent().await;
}

async fn images(backend: Backend, provider: Provider) {
    let (app, fake, _, _, key) = setup(backend, provider, false, true).await;
    let image = "data:image/png;base64,iVBORw0KGgo=";
    let body = chat(json!({ "messages": [{ "role": "user", "content": [
        { "type": "text", "text": "What is this?" },
        { "type": "image_url", "image_url": { "url": image } }] }] }));
    let response = app.v1(&key, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200, "{provider:?}: {}", response.text().await.unwrap());
    let sent = fake.last_body();
    let (media, data) = match provider {
        Provider::Anthropic => {
            let source = &sent["messages"][0]["content"][1]["source"];
            (source["media_type"].clone(), source["data"].clone())
        }
        Provider::Gemini => {
            let inline = &sent["contents"][0]["parts"][1]["inlineData"];
            (inline["mimeType"].clone(), inline["data"].clone())
        }
        Provider::Azure => (
            json!("image/png"),
            json!(
                sent["messages"][0]["content"][1]["image_url"]["url"]
                    .as_str()
                    .and_then(|u| u.strip_prefix("data:image/png;base64,"))
            ),
        ),
        Provider::Bedrock => {
            let image = &sent["messages"][0]["content"][1]["image"];
            (json!(format!("image/{}", image["format"].as_str().unwrap())), image["source"]["bytes"].clone())
        }
    };
    assert_eq!((media, data), (json!("image/png"), json!("iVBORw0KGgo=")), "{provider:?}: {sent}");
}

async fn refused_keys(backend: Backend, provider: Provider) {
    let (app, fake, channel, user, key) = setup(backend, provider, false, false).await;
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({}))).await;
    assert_eq!(response.status(), 502, "{provider:?}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_error", "{provider:?}: OpenAI's error shape");
    assert_eq!(fake.accepted(), 0);
    if let Provider::Gemini = provider {
        // Gemini refuses a key with a 400, which never disables a channel (see docs/gateway.md).
        app.settled().await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, channel) = app.admin("GET", &format!("/api/admin/channels/{channel}"), None).await;
        assert_eq!(channel["status"], "enabled", "{channel}");
        assert_eq!(app.balance(user).await, 1_000_000_000, "failures are free");
        app.assert_ledger_consistent().await;
        return;
    }
    for _ in 0..100 {
        let (_, channel) = app.admin("GET", &format!("/api/admin/channels/{channel}"), None).await;
        if channel["status"] == "auto_disabled" {
            assert_eq!(app.balance(user).await, 1_000_000_000, "{provider:?}: failures are free");
            app.assert_ledger_consistent().await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{provider:?}: a refused key did not disable the channel");
}

macro_rules! conformance {
    ($($provider:ident),*) => {$(
        #[allow(non_snake_case)]
        mod $provider {
            use super::Provider;
            use crate::support::helpers::Backend;
            async fn plain(b: Backend) { super::plain(b, Provider::$provider).await }
            async fn streamed(b: Backend) { super::streamed(b, Provider::$provider).await }
            async fn tool_calls(b: Backend) { super::tool_calls(b, Provider::$provider).await }
            async fn streamed_tool_calls(b: Backend) { super::streamed_tool_calls(b, Provider::$provider).await }
            async fn images(b: Backend) { super::images(b, Provider::$provider).await }
            async fn refused_keys(b: Backend) { super::refused_keys(b, Provider::$provider).await }
            db_tests!(plain, streamed, tool_calls, streamed_tool_calls, images, refused_keys);
        }
    )*};
}

conformance!(Anthropic, Gemini, Azure, Bedrock);

//! `azure` channels: OpenAI's wire format at Azure's deployment URLs, with `api-key` and
//! `api-version`; the deployment comes from the channel's model mapping.

use serde_json::{Value, json};

use crate::gateway::COST_12_5;
use crate::support::fake_azure::{FakeAzure, KEY};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(chat_streams_and_embeddings_reach_the_deployment, anthropic_clients_reach_azure_deployments,);

/// A channel serving `gpt-4o` (deployment `prod-gpt4o`) and `embed` (deployment `prod-embed`).
async fn setup(backend: Backend, key: &str) -> (TestApp, FakeAzure, i64, i64, String) {
    let app = spawn_app(backend).await;
    let fake = FakeAzure::start(&["prod-gpt4o", "prod-embed"]).await;
    let channel = app
        .add_channel(json!({
            "name": "azure", "type": "azure", "base_url": fake.base_url(), "key": key,
            "models": ["gpt-4o", "embed"],
            "model_mapping": { "gpt-4o": "prod-gpt4o", "embed": "prod-embed" },
            "config": { "api_version": "2024-10-21" }
        }))
        .await;
    for model in ["gpt-4o", "embed"] {
        app.set_price(model, json!({ "input": "2.50", "output": "10.00" })).await;
    }
    let (user, api_key) = app.user_with_key("1.00").await;
    (app, fake, channel, user, api_key)
}

fn chat(extra: Value) -> Value {
    let mut body = json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": "Say hello" }] });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

async fn chat_streams_and_embeddings_reach_the_deployment(backend: Backend) {
    let (app, fake, _, user, key) = setup(backend, KEY).await;
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({}))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["choices"][0]["message"]["content"], "Hello there!");

    // A stream: the gateway asks for usage (to bill) and drops the chunk the client did not ask for.
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "stream": true }))).await;
    let text = response.text().await.unwrap();
    assert!(text.contains("Hello") && text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(!text.contains("\"usage\":{"), "{text}");

    let response = app.v1(&key, "/v1/embeddings", &json!({ "model": "embed", "input": "hello" })).await;
    assert_eq!(response.status(), 200);

    let seen = fake.seen();
    let expected =
        [("prod-gpt4o", "/chat/completions"), ("prod-gpt4o", "/chat/completions"), ("prod-embed", "/embeddings")];
    for ((deployment, path, version), (want_deployment, want_path)) in seen.iter().zip(expected) {
        assert_eq!((deployment.as_str(), path.as_str(), version.as_str()), (want_deployment, want_path, "2024-10-21"));
    }
    let received = fake.openai.received();
    assert_eq!(received[1].json()["stream_options"]["include_usage"], true);
    // Chat twice (12 + 5 tokens each), embeddings once (12 tokens).
    assert_eq!(app.balance(user).await, 1_000_000_000 - 2 * COST_12_5 - 12 * 2_500);
    app.assert_ledger_consistent().await;
}

async fn anthropic_clients_reach_azure_deployments(backend: Backend) {
    let (app, fake, _, user, key) = setup(backend, KEY).await;
    let request =
        json!({ "model": "gpt-4o", "max_tokens": 32, "messages": [{ "role": "user", "content": "Say hello" }] });
    let response =
        app.client.post(app.url("/v1/messages")).header("x-api-key", &key).json(&request).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], "Hello there!");
    assert_eq!(fake.seen()[0].0, "prod-gpt4o");
    assert_eq!(app.balance(user).await, 1_000_000_000 - COST_12_5);
    app.assert_ledger_consistent().await;
}

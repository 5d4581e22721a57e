//! Embeddings through channels with their own embedding APIs: Gemini (`batchEmbedContents`) and
//! Bedrock (Titan, one call per text; Cohere, one call), returned in OpenAI's shape, as floats or
//! base64, and billed from the provider's token count or the local estimate.

use base64::Engine;
use serde_json::{Value, json};

use crate::support::helpers::{Backend, TestApp, spawn_app};
use crate::support::{fake_bedrock, fake_gemini};

db_tests!(gemini_embeds_in_one_batch, bedrock_embeds_with_titan_and_cohere);

fn floats(embedding: &Value) -> Vec<f32> {
    match embedding.as_str() {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        None => embedding.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect(),
    }
}

async fn embed(app: &TestApp, key: &str, body: Value) -> Value {
    let response = app.v1(key, "/v1/embeddings", &body).await;
    assert_eq!(response.status(), 200, "{body}");
    response.json().await.unwrap()
}

async fn gemini_embeds_in_one_batch(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = fake_gemini::FakeGemini::start(fake_gemini::Reply::Text).await;
    let channel = json!({ "name": "g", "type": "gemini", "base_url": fake.base_url(), "key": fake_gemini::KEY,
                          "models": ["embed-g"], "model_mapping": { "embed-g": "text-embedding-004" } });
    app.add_channel(channel).await;
    app.set_price("embed-g", json!({ "input": "1.00" })).await;
    let (user, key) = app.user_with_key("1.00").await;

    let body =
        embed(&app, &key, json!({ "model": "embed-g", "input": ["hello", "hi"], "encoding_format": "float" })).await;
    assert_eq!(body["object"], "list");
    assert_eq!(floats(&body["data"][0]["embedding"]), [5.0, 0.5, -0.25]);
    assert_eq!(
        (body["data"][1]["index"].as_i64(), floats(&body["data"][1]["embedding"])),
        (Some(1), vec![2.0, 0.5, -0.25])
    );
    let (method, sent) = &fake.received()[0];
    assert_eq!(method, "text-embedding-004:batchEmbedContents");
    assert_eq!(sent["requests"].as_array().unwrap().len(), 2);

    // The openai SDKs ask for base64 by default.
    let body = embed(&app, &key, json!({ "model": "embed-g", "input": "hello", "encoding_format": "base64" })).await;
    assert_eq!(floats(&body["data"][0]["embedding"]), [5.0, 0.5, -0.25]);
    // Gemini reports no tokens: counted locally with o200k_base, "hello" + "hi" → 2, then "hello" → 1.
    assert_eq!(app.balance(user).await, 1_000_000_000 - 2 * 1000 - 1000);
    let response = app.v1(&key, "/v1/embeddings", &json!({ "model": "embed-g", "input": [1, 2, 3] })).await;
    assert_eq!(response.status(), 400, "token arrays cannot be embedded by Gemini");
    app.assert_ledger_consistent().await;
}

async fn bedrock_embeds_with_titan_and_cohere(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = fake_bedrock::FakeBedrock::start(fake_bedrock::Reply::Text).await;
    let channel = json!({ "name": "b", "type": "bedrock", "base_url": fake.base_url(),
        "key": format!("{}:{}", fake_bedrock::ACCESS_KEY_ID, fake_bedrock::SECRET_ACCESS_KEY),
        "models": ["titan", "cohere"], "config": { "region": fake_bedrock::REGION },
        "model_mapping": { "titan": "amazon.titan-embed-text-v2:0", "cohere": "cohere.embed-english-v3" } });
    app.add_channel(channel).await;
    for model in ["titan", "cohere"] {
        app.set_price(model, json!({ "input": "1.00" })).await;
    }
    let (user, key) = app.user_with_key("1.00").await;

    let body = embed(&app, &key, json!({ "model": "titan", "input": ["one two three", "four"] })).await;
    assert_eq!(floats(&body["data"][1]["embedding"]), [4.0, 0.5, -0.25]);
    assert_eq!(body["usage"]["prompt_tokens"], 4, "Titan's own counts: 3 + 1");
    let received = fake.received();
    assert_eq!(received.len(), 2, "Titan embeds one text per call");
    assert_eq!(received[0].0, "/model/amazon.titan-embed-text-v2%3A0/invoke");

    let body =
        embed(&app, &key, json!({ "model": "cohere", "input": ["alpha", "beta"], "encoding_format": "base64" })).await;
    assert_eq!(floats(&body["data"][0]["embedding"]), [5.0, 0.5, -0.25]);
    assert_eq!(fake.received()[2].1["texts"], json!(["alpha", "beta"]));
    // Titan: 4 tokens; Cohere reports none: counted locally, "alpha" + "beta" → 2 tokens.
    assert_eq!(app.balance(user).await, 1_000_000_000 - 4 * 1000 - 2 * 1000);
    app.assert_ledger_consistent().await;
}

//! The live provider suite, opt in: a few conformance cases against the real services, with the
//! credentials of `.env.example`. `scripts/test.sh` runs these (ignored by default) only when a
//! credential is set and prints which providers ran; a provider without credentials prints that it
//! did not run. CI has no credentials and no internet.

use serde_json::{Value, json};

use crate::support::helpers::{Backend, TestApp, spawn_app};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Plain and streamed chat through one real channel; usage billed, ledger consistent.
async fn conformance(provider: &str, channel: Value, model: &str) {
    let app: TestApp = spawn_app(Backend::Sqlite).await;
    app.add_channel(channel).await;
    app.set_price(model, json!({ "input": "1.00", "output": "1.00" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    let chat = json!({ "model": model, "max_tokens": 16, "messages": [{ "role": "user", "content": "Say hello." }] });
    let response = app.v1(&key, "/v1/chat/completions", &chat).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{provider}: {body}");
    assert!(body["choices"][0]["message"]["content"].as_str().is_some_and(|t| !t.is_empty()), "{provider}: {body}");
    assert!(body["usage"]["completion_tokens"].as_i64().unwrap_or(0) > 0, "{provider}: {body}");

    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({ "include_usage": true });
    let text = app.v1(&key, "/v1/chat/completions", &streamed).await.text().await.unwrap();
    assert!(text.contains("\"usage\":{") && text.trim_end().ends_with("data: [DONE]"), "{provider}: {text}");
    assert!(app.balance(user).await < 1_000_000_000, "{provider}: usage was billed");
    app.assert_ledger_consistent().await;
    println!("live {provider}: passed");
}

macro_rules! live {
    ($name:ident, $provider:literal, $needs:literal, $channel:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "live: needs provider credentials (see .env.example); scripts/test.sh runs it when set"]
        async fn $name() {
            if env($needs).is_none() {
                println!("live {}: not run ({} is not set)", $provider, $needs);
                return;
            }
            let (channel, model): (Value, String) = $channel;
            conformance($provider, channel, &model).await;
        }
    };
}

live!(openai, "openai", "BURNCLOUD_LIVE_OPENAI_KEY", {
    let model = env("BURNCLOUD_LIVE_OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into());
    let key = env("BURNCLOUD_LIVE_OPENAI_KEY").unwrap_or_default();
    (json!({ "name": "live", "type": "openai", "key": key, "models": [model] }), model)
});

live!(anthropic, "anthropic", "BURNCLOUD_LIVE_ANTHROPIC_KEY", {
    let model = env("BURNCLOUD_LIVE_ANTHROPIC_MODEL").unwrap_or_else(|| "claude-3-5-haiku-latest".into());
    let key = env("BURNCLOUD_LIVE_ANTHROPIC_KEY").unwrap_or_default();
    (json!({ "name": "live", "type": "anthropic", "key": key, "models": [model] }), model)
});

live!(gemini, "gemini", "BURNCLOUD_LIVE_GEMINI_KEY", {
    let model = env("BURNCLOUD_LIVE_GEMINI_MODEL").unwrap_or_else(|| "gemini-2.0-flash".into());
    let key = env("BURNCLOUD_LIVE_GEMINI_KEY").unwrap_or_default();
    (json!({ "name": "live", "type": "gemini", "key": key, "models": [model] }), model)
});

live!(bedrock, "bedrock", "AWS_ACCESS_KEY_ID", {
    let model = env("BURNCLOUD_LIVE_BEDROCK_MODEL").unwrap_or_else(|| "anthropic.claude-3-haiku-20240307-v1:0".into());
    let mut key = format!(
        "{}:{}",
        env("AWS_ACCESS_KEY_ID").unwrap_or_default(),
        env("AWS_SECRET_ACCESS_KEY").unwrap_or_default()
    );
    if let Some(token) = env("AWS_SESSION_TOKEN") {
        key = format!("{key}:{token}");
    }
    let region = env("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
    (json!({ "name": "live", "type": "bedrock", "key": key, "models": [model], "config": { "region": region } }), model)
});

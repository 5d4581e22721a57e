//! Requests fitted to the model that serves them (issue 14): the alias a client asked for in
//! every answer, mapped bodies changed in the model field only, output caps clamped to the
//! model's limit, over-long end-user ids hashed, mid-conversation system turns kept in place,
//! reasoning hints mapped only for reasoning models, Gemini given tool schemas it accepts, and
//! what a model cannot do refused clearly before any upstream is called.

use serde_json::{Value, json};

use crate::gateway::{events, priced_channel};
use crate::messages::messages;
use crate::support::fake_anthropic::{FakeAnthropic, KEY, Reply};
use crate::support::fake_gemini::{self, FakeGemini};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, spawn_app};

db_tests!(
    a_mapped_model_answers_with_the_name_asked_for,
    a_mapped_request_changes_only_its_model,
    output_caps_are_clamped_to_the_models_limit,
    long_end_user_ids_are_hashed_for_openai_upstreams,
    a_system_turn_mid_conversation_stays_in_place,
    converted_message_streams_start_with_the_prompt_estimate,
    reasoning_hints_reach_only_reasoning_models,
    what_a_model_cannot_take_is_refused_before_the_upstream,
    gemini_gets_tool_schemas_whole,
);

/// The `data:` payloads of an SSE body that are JSON.
fn payloads(text: &str) -> Vec<Value> {
    events(text)
        .iter()
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

async fn a_mapped_model_answers_with_the_name_asked_for(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(
        &app,
        &fake,
        "deep",
        "claude-sonnet-4-5",
        json!({ "model_mapping": { "claude-sonnet-4-5": "deepseek-chat" } }),
    )
    .await;
    let (user, key) = app.user_with_key("1.00").await;
    let chat =
        json!({ "model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{ "role": "user", "content": "hi" }] });

    let plain: Value = app.v1(&key, "/v1/chat/completions", &chat).await.json().await.unwrap();
    assert_eq!(plain["model"], "claude-sonnet-4-5");
    assert_eq!(fake.received()[0].json()["model"], "deepseek-chat", "the upstream gets its own name");

    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let text = app.v1(&key, "/v1/chat/completions", &streamed).await.text().await.unwrap();
    let chunks = payloads(&text);
    assert!(chunks.len() > 2, "{text}");
    assert!(chunks.iter().all(|c| c["model"] == "claude-sonnet-4-5"), "{text}");
    assert!(!text.contains("deepseek-chat"), "{text}");

    // An Anthropic channel mapping an alias: plain and streamed Messages answers, too.
    let anthropic = FakeAnthropic::start(Reply::Text).await;
    app.add_channel(json!({ "name": "claude", "type": "anthropic", "base_url": anthropic.base_url(), "key": KEY,
                            "models": ["sonnet"], "model_mapping": { "sonnet": "claude-sonnet-4-20250514" } }))
        .await;
    app.set_price("sonnet", json!({ "input": "1.00", "output": "2.00" })).await;
    let body = json!({ "model": "sonnet", "max_tokens": 64, "messages": [{ "role": "user", "content": "hi" }] });
    let plain: Value = messages(&app, &key, &body).await.json().await.unwrap();
    assert_eq!(plain["model"], "sonnet");
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let text = messages(&app, &key, &streamed).await.text().await.unwrap();
    let start = payloads(&text).into_iter().find(|e| e["type"] == "message_start").unwrap();
    assert_eq!(start["message"]["model"], "sonnet", "{text}");
    assert!(!text.contains("claude-sonnet-4-20250514"), "{text}");

    app.settled().await;
    assert!(app.balance(user).await < 1_000_000_000, "the answers were charged");
    app.assert_ledger_consistent().await;
    // The request log keeps the upstream's name.
    let (status, logs) = app.admin("GET", "/api/admin/logs", None).await;
    assert_eq!(status, 200, "{logs}");
    let rows = logs["data"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["model"] == "claude-sonnet-4-5" && r["upstream_model"] == "deepseek-chat"), "{logs}");
}

async fn a_mapped_request_changes_only_its_model(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "m", "alias", json!({ "model_mapping": { "alias": "real-model" } })).await;
    let (_, key) = app.user_with_key("1.00").await;
    let raw = r#"{"zeta":{"b":1,"a":2},"model":"alias","messages":[{"role":"user","content":"caf\u00e9 \"q\""}],"temperature":0.50,"max_tokens":20}"#;
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sent = String::from_utf8(fake.received()[0].body.to_vec()).unwrap();
    assert_eq!(
        sent,
        raw.replace(r#""model":"alias""#, r#""model":"real-model""#),
        "keys in order, values byte for byte"
    );
    app.settled().await;
    app.assert_ledger_consistent().await;
}

async fn output_caps_are_clamped_to_the_models_limit(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    // gpt-4o-mini answers at most 16,384 tokens (the shipped capabilities); gpt-test is unknown.
    priced_channel(&app, &fake, "mini", "gpt-4o-mini", json!({})).await;
    priced_channel(&app, &fake, "test", "gpt-test", json!({})).await;
    let (_, key) = app.user_with_key("5.00").await;
    let ask = |model: &str, field: &str| {
        let mut body = json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] });
        body[field] = json!(32000);
        body
    };
    for field in ["max_tokens", "max_completion_tokens"] {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &ask("gpt-4o-mini", field)).await.status(), 200);
        assert_eq!(fake.received().last().unwrap().json()[field], 16384, "{field}");
    }
    assert_eq!(app.v1(&key, "/v1/chat/completions", &ask("gpt-test", "max_tokens")).await.status(), 200);
    assert_eq!(fake.received().last().unwrap().json()["max_tokens"], 32000, "unknown models are not clamped");
    // Claude Code's max_tokens 32000 through /v1/messages.
    let body =
        json!({ "model": "gpt-4o-mini", "max_tokens": 32000, "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(messages(&app, &key, &body).await.status(), 200);
    assert_eq!(fake.received().last().unwrap().json()["max_tokens"], 16384);
    // The hold covers what the model can answer: $0.20 pays 16,384 output tokens at $10 / 1M,
    // not the 32,000 asked for (which an unknown model's hold still takes).
    let (_, small) = app.user_with_key("0.20").await;
    assert_eq!(app.v1(&small, "/v1/chat/completions", &ask("gpt-4o-mini", "max_tokens")).await.status(), 200);
    assert_eq!(app.v1(&small, "/v1/chat/completions", &ask("gpt-test", "max_tokens")).await.status(), 429);
    // An operator's own limit wins over the shipped one.
    let (status, answer) =
        app.admin("PUT", "/api/admin/capabilities/gpt-test", Some(json!({ "max_output_tokens": 1000 }))).await;
    if status == 200 {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &ask("gpt-test", "max_tokens")).await.status(), 200);
        assert_eq!(fake.received().last().unwrap().json()["max_tokens"], 1000, "{answer}");
    }
    app.settled().await;
    app.assert_ledger_consistent().await;
}

async fn long_end_user_ids_are_hashed_for_openai_upstreams(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "m", "gpt-test", json!({})).await;
    let (_, key) = app.user_with_key("1.00").await;
    let long =
        format!("user_{}_account__session_{}", "0123456789abcdef".repeat(4), "c0ffee00-1234-4321-8888-000000000000");
    assert!(long.len() > 64);
    let chat = |user: &str| json!({ "model": "gpt-test", "max_tokens": 5, "user": user, "messages": [{ "role": "user", "content": "hi" }] });

    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat(&long)).await.status(), 200);
    let hashed = fake.received()[0].json()["user"].as_str().unwrap().to_string();
    assert_eq!(hashed.len(), 64);
    assert!(hashed.bytes().all(|b| b.is_ascii_hexdigit()) && !long.contains(&hashed));
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("alice")).await.status(), 200);
    assert_eq!(fake.received()[1].json()["user"], "alice", "short ids pass as they are");
    // Claude Code's metadata.user_id through /v1/messages: the same id, the same hash.
    let body = json!({ "model": "gpt-test", "max_tokens": 5, "metadata": { "user_id": long },
                       "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(messages(&app, &key, &body).await.status(), 200);
    assert_eq!(fake.received()[2].json()["user"], hashed.as_str());
    app.settled().await;
    app.assert_ledger_consistent().await;
}

async fn a_system_turn_mid_conversation_stays_in_place(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "m", "deepseek-chat", json!({})).await;
    let anthropic = FakeAnthropic::start(Reply::Text).await;
    app.add_channel(json!({ "name": "claude", "type": "anthropic", "base_url": anthropic.base_url(), "key": KEY,
                            "models": ["claude-sonnet-4-5"] }))
        .await;
    app.set_price("claude-sonnet-4-5", json!({ "input": "1.00", "output": "2.00" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    let conversation = |model: &str| {
        json!({ "model": model, "max_tokens": 100, "system": "You are Claude Code.",
                "messages": [
                    { "role": "user", "content": "list the files" },
                    { "role": "system", "content": [{ "type": "text", "text": "Tools are available." }] },
                    { "role": "assistant", "content": "Sure." },
                    { "role": "user", "content": "go on" },
                ] })
    };

    let response = messages(&app, &key, &conversation("deepseek-chat")).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = fake.received()[0].json();
    let turns: Vec<(&str, &str)> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        turns,
        [
            ("system", "You are Claude Code."),
            ("user", "list the files"),
            ("system", "Tools are available."),
            ("assistant", "Sure."),
            ("user", "go on"),
        ]
    );
    // An Anthropic channel gets it as sent (with the client's beta header).
    let response = app
        .client
        .post(app.url("/v1/messages"))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "mid-conversation-system-2026-04-07")
        .json(&conversation("claude-sonnet-4-5"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(anthropic.received()[0]["messages"][1]["role"], "system");
    app.settled().await;
    assert!(app.balance(user).await < 1_000_000_000);
    app.assert_ledger_consistent().await;
}

async fn converted_message_streams_start_with_the_prompt_estimate(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "m", "gpt-test", json!({})).await;
    let (_, key) = app.user_with_key("1.00").await;
    let prompt = "Tell me about the history of the printing press in some detail, please.";
    let body = json!({ "model": "gpt-test", "max_tokens": 64, "stream": true,
                       "messages": [{ "role": "user", "content": prompt }] });
    let text = messages(&app, &key, &body).await.text().await.unwrap();
    let start = payloads(&text).into_iter().find(|e| e["type"] == "message_start").unwrap();
    let input = start["message"]["usage"]["input_tokens"].as_i64().unwrap();
    assert!((10..40).contains(&input), "an estimate of the prompt, not 0: {input}");
    app.settled().await;
    app.assert_ledger_consistent().await;
}

async fn reasoning_hints_reach_only_reasoning_models(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "five", "gpt-5", json!({})).await;
    priced_channel(&app, &fake, "four", "gpt-4o", json!({})).await;
    let (_, key) = app.user_with_key("5.00").await;
    let ask = |model: &str| {
        json!({ "model": model, "max_tokens": 20000, "thinking": { "type": "enabled", "budget_tokens": 16000 },
                "messages": [{ "role": "user", "content": "think" }] })
    };
    assert_eq!(messages(&app, &key, &ask("gpt-5")).await.status(), 200);
    assert_eq!(fake.received()[0].json()["reasoning_effort"], "high");
    assert_eq!(messages(&app, &key, &ask("gpt-4o")).await.status(), 200);
    let sent = fake.received()[1].json();
    assert_eq!((sent.get("reasoning_effort"), sent["max_tokens"].as_i64()), (None, Some(16384)));
    app.settled().await;
    app.assert_ledger_consistent().await;
}

async fn what_a_model_cannot_take_is_refused_before_the_upstream(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    // deepseek-chat takes no images (the shipped capabilities).
    priced_channel(&app, &fake, "deep", "deepseek-chat", json!({})).await;
    let (user, key) = app.user_with_key("1.00").await;
    let before = app.balance(user).await;
    let image = json!([{ "type": "text", "text": "what is this?" },
                       { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw0KGgo=" } }]);
    let chat = json!({ "model": "deepseek-chat", "max_tokens": 5, "messages": [{ "role": "user", "content": image }] });
    let response = app.v1(&key, "/v1/chat/completions", &chat).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["error"]["message"].as_str().unwrap().contains("does not support image input"), "{error}");

    let image =
        json!([{ "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo=" } }]);
    let body = json!({ "model": "deepseek-chat", "max_tokens": 5, "messages": [{ "role": "user", "content": image }] });
    let response = messages(&app, &key, &body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        (error["type"].as_str(), error["error"]["type"].as_str()),
        (Some("error"), Some("invalid_request_error"))
    );
    assert!(error["error"]["message"].as_str().unwrap().contains("image"), "{error}");

    // gpt-4o takes no audio input (gpt-4o-audio-preview does).
    priced_channel(&app, &fake, "four", "gpt-4o", json!({})).await;
    let audio = json!([{ "type": "input_audio", "input_audio": { "data": "UklGRg==", "format": "wav" } }]);
    let chat = json!({ "model": "gpt-4o", "max_tokens": 5, "messages": [{ "role": "user", "content": audio }] });
    let response = app.v1(&key, "/v1/chat/completions", &chat).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("does not support audio input"));
    // Text that only talks about those part types is not refused.
    let text = r#"what do "image_url" and "input_audio" mean?"#;
    let chat = json!({ "model": "gpt-4o", "max_tokens": 5, "messages": [{ "role": "user", "content": text }] });
    let (_, other_key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&other_key, "/v1/chat/completions", &chat).await.status(), 200);
    // A model the operator marks as taking no tools.
    let (status, _) = app.admin("PUT", "/api/admin/capabilities/deepseek-chat", Some(json!({ "tools": false }))).await;
    if status == 200 {
        let tools = json!([{ "type": "function", "function": { "name": "f", "parameters": { "type": "object" } } }]);
        let chat = json!({ "model": "deepseek-chat", "max_tokens": 5, "tools": tools,
                           "messages": [{ "role": "user", "content": "hi" }] });
        let response = app.v1(&key, "/v1/chat/completions", &chat).await;
        assert_eq!(response.status(), 400);
        assert!(response.text().await.unwrap().contains("does not support tools"));
    }
    assert_eq!(fake.received().len(), 1, "only the text-only request reached an upstream");
    app.settled().await;
    assert_eq!(app.balance(user).await, before, "refusals cost nothing");
    app.assert_ledger_consistent().await;
}

async fn gemini_gets_tool_schemas_whole(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeGemini::start(fake_gemini::Reply::Text).await;
    app.add_channel(json!({ "name": "gemini", "type": "gemini", "base_url": fake.base_url(), "key": fake_gemini::KEY,
                            "models": ["gemini-2.5-flash"] }))
        .await;
    app.set_price("gemini-2.5-flash", json!({ "input": "1.00", "output": "2.00" })).await;
    let (_, key) = app.user_with_key("1.00").await;
    // A zod / strict-mode schema, as Claude Code and the SDKs' strict tools write them.
    let schema = json!({ "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                         "properties": { "path": { "type": "string" }, "limit": { "type": "integer", "exclusiveMinimum": 0 } },
                         "required": ["path"], "additionalProperties": false });
    let chat = json!({ "model": "gemini-2.5-flash", "max_tokens": 50,
                       "messages": [{ "role": "user", "content": "read it" }],
                       "tools": [{ "type": "function", "function": { "name": "Read", "parameters": schema } }] });
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat).await.status(), 200);
    let body = json!({ "model": "gemini-2.5-flash", "max_tokens": 50, "messages": [{ "role": "user", "content": "read it" }],
                       "tools": [{ "name": "Read", "input_schema": schema }] });
    assert_eq!(messages(&app, &key, &body).await.status(), 200);
    for (_, sent) in fake.received() {
        let declared = &sent["tools"][0]["functionDeclarations"][0];
        assert_eq!(declared.get("parameters"), None, "{sent}");
        let params = &declared["parametersJsonSchema"];
        assert_eq!(
            (params["additionalProperties"].clone(), params["properties"]["limit"]["exclusiveMinimum"].clone()),
            (json!(false), json!(0))
        );
        assert_eq!(params.get("$schema"), None);
    }
    app.settled().await;
    app.assert_ledger_consistent().await;
}

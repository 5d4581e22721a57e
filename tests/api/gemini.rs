//! OpenAI chat completions and Anthropic messages through a `gemini` channel: converted to
//! `generateContent` and back, streamed and not, with function calls, usage billed exactly and
//! errors in the client's shape.

use serde_json::{Value, json};

use crate::support::fake_gemini::{FakeGemini, KEY, Reply, fixture};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    a_chat_completion_is_converted_and_billed_from_usage_metadata,
    function_calls_and_responses_round_trip,
    a_refused_key_fails_over_without_disabling_and_bad_requests_are_refused_early,
    anthropic_clients_reach_gemini_models,
    the_channel_probe_speaks_gemini,
    gemini_native_clients_pass_through,
);

/// $1 per 1M input tokens, $2 per 1M output: 1,000 and 2,000 nano-units a token.
async fn setup(backend: Backend, reply: Reply, key: &str) -> (TestApp, FakeGemini, i64, i64, String) {
    let app = spawn_app(backend).await;
    let fake = FakeGemini::start(reply).await;
    let channel = app
        .add_channel(json!({
            "name": "gemini", "type": "gemini", "base_url": fake.base_url(), "key": key,
            "models": ["gemini-test"], "model_mapping": { "gemini-test": "gemini-2.0-flash" }
        }))
        .await;
    app.set_price("gemini-test", json!({ "input": "1.00", "output": "2.00" })).await;
    let (user, api_key) = app.user_with_key("1.00").await;
    (app, fake, channel, user, api_key)
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "gemini-test",
        "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "What is AI?" }]
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

async fn a_chat_completion_is_converted_and_billed_from_usage_metadata(backend: Backend) {
    let (app, fake, _, user, key) = setup(backend, Reply::Text, KEY).await;
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "max_tokens": 40, "temperature": 0.5 }))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model"], "gemini-test");
    assert_eq!(body["choices"][0]["message"]["content"], "AI learns patterns from data to make predictions.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        (body["usage"]["prompt_tokens"].as_i64(), body["usage"]["completion_tokens"].as_i64()),
        (Some(8), Some(10))
    );

    let (method, sent) = &fake.received()[0];
    assert_eq!(method, "gemini-2.0-flash:generateContent", "the channel's model mapping names the model");
    assert_eq!(sent["systemInstruction"], json!({ "parts": [{ "text": "Be brief." }] }));
    assert_eq!(sent["contents"], json!([{ "role": "user", "parts": [{ "text": "What is AI?" }] }]));
    assert_eq!(sent["generationConfig"], json!({ "maxOutputTokens": 40, "temperature": 0.5 }));
    assert_eq!(app.balance(user).await, 1_000_000_000 - (8 * 1000 + 10 * 2000));
    app.assert_ledger_consistent().await;
}

async fn function_calls_and_responses_round_trip(backend: Backend) {
    let (app, fake, _, _, key) = setup(backend, Reply::FunctionCall, KEY).await;
    let tools =
        json!([{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object" } } }]);
    let response =
        app.v1(&key, "/v1/chat/completions", &chat(json!({ "tools": tools, "tool_choice": "required" }))).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let call = body["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({ "location": "Paris" })
    );
    let sent = &fake.received()[0].1;
    assert_eq!(sent["tools"][0]["functionDeclarations"][0]["name"], "get_weather");
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "ANY");

    // The result goes back as a functionResponse named after the call (the fake checks the pair).
    let follow_up = chat(json!({ "tools": tools, "messages": [
        { "role": "user", "content": "Weather in Paris?" },
        { "role": "assistant", "content": null, "tool_calls": [call] },
        { "role": "tool", "tool_call_id": call["id"], "content": "{\"temperature\": 15}" }
    ] }));
    let response = app.v1(&key, "/v1/chat/completions", &follow_up).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = &fake.received()[1].1;
    assert_eq!(sent["contents"][2]["parts"][0]["functionResponse"]["response"], json!({ "temperature": 15 }));

    // Streamed, the call arrives whole, as one tool-call delta.
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "tools": tools, "stream": true }))).await;
    let text = response.text().await.unwrap();
    assert!(text.contains("\"tool_calls\":[{"), "{text}");
    assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");
    app.assert_ledger_consistent().await;
}

async fn a_refused_key_fails_over_without_disabling_and_bad_requests_are_refused_early(backend: Backend) {
    let (app, fake, channel, user, key) = setup(backend, Reply::Text, "AIza-wrong").await;
    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({ "n": 2 }))).await;
    assert_eq!(response.status(), 400, "n > 1 is refused before any upstream call");
    let audio = json!({ "messages": [{ "role": "user", "content": [
        { "type": "input_audio", "input_audio": { "data": "AAAA", "format": "wav" } }] }] });
    let response = app.v1(&key, "/v1/chat/completions", &chat(audio)).await;
    assert_eq!(response.status(), 400);
    assert!(response.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("text and image"));

    let response = app.v1(&key, "/v1/chat/completions", &chat(json!({}))).await;
    assert_eq!(response.status(), 502);
    let body = response.text().await.unwrap();
    assert!(!body.contains("AIza-wrong"), "{body}");
    // Google answers a bad key with a 400 (`API_KEY_INVALID`), and a 400 never disables a
    // channel (a client provokes 400s at will): the request failed over, the channel stays.
    app.settled().await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (_, channel) = app.admin("GET", &format!("/api/admin/channels/{channel}"), None).await;
    assert_eq!(channel["status"], "enabled", "{channel}");
    assert!(fake.received().is_empty());
    assert_eq!(app.balance(user).await, 1_000_000_000);
}

async fn anthropic_clients_reach_gemini_models(backend: Backend) {
    let (app, _fake, _, user, key) = setup(backend, Reply::Text, KEY).await;
    let request =
        json!({ "model": "gemini-test", "max_tokens": 64, "messages": [{ "role": "user", "content": "What is AI?" }] });
    let send = |body: Value| app.client.post(app.url("/v1/messages")).header("x-api-key", &key).json(&body).send();
    let body: Value = send(request.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "AI learns patterns from data to make predictions.");
    assert_eq!((body["usage"]["input_tokens"].as_i64(), body["usage"]["output_tokens"].as_i64()), (Some(8), Some(10)));

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let text = send(streamed).await.unwrap().text().await.unwrap();
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    assert!(text.contains("\"output_tokens\":5"), "{text}");
    assert_eq!(app.balance(user).await, 1_000_000_000 - (8 * 1000 + 10 * 2000) - (9 * 1000 + 5 * 2000));
    app.assert_ledger_consistent().await;
}

async fn the_channel_probe_speaks_gemini(backend: Backend) {
    let (app, fake, channel, _, _) = setup(backend, Reply::Text, KEY).await;
    let (status, result) = app.admin("POST", &format!("/api/admin/channels/{channel}/test"), None).await;
    assert_eq!((status, result["ok"].as_bool()), (200, Some(true)), "{result}");
    assert_eq!(fake.received()[0].0, "gemini-2.0-flash:generateContent");
}

async fn gemini_native_clients_pass_through(backend: Backend) {
    let (app, fake, _, user, key) = setup(backend, Reply::Text, KEY).await;
    let body = json!({ "contents": [{ "role": "user", "parts": [{ "text": "What is AI?" }] }],
                       "generationConfig": { "maxOutputTokens": 20 } });
    let url = app.url("/v1beta/models/gemini-test:generateContent");
    let response = app.client.post(&url).header("x-goog-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), fixture("generate_text.json"), "the answer passes through");
    assert_eq!(fake.received()[0], ("gemini-2.0-flash:generateContent".to_string(), body.clone()));

    // Streamed, with the key in the query string as Google's clients may send it.
    let url = app.url(&format!("/v1beta/models/gemini-test:streamGenerateContent?alt=sse&key={key}"));
    let response = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), fixture("stream_text.sse"));
    assert_eq!(app.balance(user).await, 1_000_000_000 - (8 * 1000 + 10 * 2000) - (9 * 1000 + 5 * 2000));

    // Errors in Google's shape.
    let response =
        app.client.post(app.url("/v1beta/models/gemini-test:generateContent")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        (error["error"]["code"].as_i64(), error["error"]["status"].as_str()),
        (Some(401), Some("UNAUTHENTICATED"))
    );
    let url = app.url("/v1beta/models/gemini-test:streamGenerateContent");
    let response = app.client.post(&url).header("x-goog-api-key", &key).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 400, "only the SSE form of streaming");
    // The key in the query string is for Gemini's routes only.
    let response =
        app.client.post(app.url(&format!("/v1/chat/completions?key={key}"))).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 401);
    app.assert_ledger_consistent().await;
}

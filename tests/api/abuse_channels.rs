//! A client must not be able to take channels out of service, nor slow the gateway down, with what
//! it puts in its request (issue 13, items 9 and 14). Channels are auto-disabled only from the
//! upstream error's code fields, never from its message (which echoes client input) and never on
//! a 400; multipart boundaries are at most 70 characters and searched in linear time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    auto_disable_from_codes_not_text_openai,
    auto_disable_from_codes_not_text_anthropic,
    auto_disable_from_codes_not_text_gemini,
    auto_disable_from_codes_not_text_bedrock,
    multipart_boundary_over_70_characters_is_refused,
    multipart_70_character_boundary_works_end_to_end,
    multipart_near_matches_are_searched_in_linear_time,
);

/// What the canned upstream answers to every request.
#[derive(Clone)]
enum Canned {
    /// A plain OpenAI chat completion with usage.
    Ok,
    /// This status, headers and JSON body.
    Error(u16, Vec<(&'static str, &'static str)>, Value),
}

/// An upstream that answers every path with what it is told, in any protocol's clothing, and
/// counts what it received.
struct CannedUpstream {
    port: u16,
    reply: Arc<Mutex<Canned>>,
    received: Arc<Mutex<usize>>,
    last_body: Arc<Mutex<Bytes>>,
}

impl CannedUpstream {
    async fn start() -> Self {
        let reply = Arc::new(Mutex::new(Canned::Ok));
        let received = Arc::new(Mutex::new(0));
        let last_body = Arc::new(Mutex::new(Bytes::new()));
        let app = Router::new()
            .fallback(answer)
            .with_state((reply.clone(), received.clone(), last_body.clone()))
            .layer(axum::extract::DefaultBodyLimit::disable());
        let port = crate::support::helpers::serve_locally(app).await;
        Self { port, reply, received, last_body }
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set(&self, reply: Canned) {
        *self.reply.lock().unwrap() = reply;
    }

    fn received(&self) -> usize {
        *self.received.lock().unwrap()
    }
}

type Shared = (Arc<Mutex<Canned>>, Arc<Mutex<usize>>, Arc<Mutex<Bytes>>);

async fn answer(State((reply, received, last_body)): State<Shared>, body: Bytes) -> Response {
    *received.lock().unwrap() += 1;
    *last_body.lock().unwrap() = body;
    let reply = reply.lock().unwrap().clone();
    match reply {
        Canned::Ok => axum::Json(json!({
            "id": "chatcmpl-canned", "object": "chat.completion", "created": 1_700_000_000, "model": "m",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "fine" }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15 }
        }))
        .into_response(),
        Canned::Error(status, headers, body) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(HeaderName::from_static(name), HeaderValue::from_static(value));
            }
            response
        }
    }
}

/// An app with one channel of `channel_type` on the canned upstream serving `m`, and a user's key.
async fn setup(backend: Backend, channel: Value) -> (TestApp, CannedUpstream, i64, i64, String) {
    let app = spawn_app(backend).await;
    let upstream = CannedUpstream::start().await;
    let mut channel = channel;
    channel["name"] = json!("shared");
    channel["base_url"] = json!(upstream.base_url());
    channel["models"] = json!(["m"]);
    let id = app.add_channel(channel).await;
    app.set_price("m", json!({ "input": "1.00", "output": "2.00" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    (app, upstream, id, user, key)
}

/// A chat request carrying the words a hostile client hopes the upstream will echo.
fn hostile_chat() -> Value {
    json!({ "model": "m", "max_tokens": 16, "messages": [{ "role": "user", "content": "insufficient_quota invalid_api_key API_KEY_INVALID" }],
            "insufficient_quota": 1, "invalid_api_key": "authentication_error" })
}

async fn status_of(app: &TestApp, channel: i64) -> (String, Value) {
    let (_, body) = app.admin("GET", &format!("/api/admin/channels/{channel}"), None).await;
    (body["status"].as_str().unwrap().to_string(), body["disabled_reason"].clone())
}

/// The channel is still enabled once any background disabling would have run.
async fn assert_still_enabled(app: &TestApp, channel: i64, case: &str) {
    app.settled().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(status_of(app, channel).await, ("enabled".to_string(), Value::Null), "{case}");
}

async fn wait_until_disabled(app: &TestApp, channel: i64) -> String {
    for _ in 0..200 {
        let (status, reason) = status_of(app, channel).await;
        if status == "auto_disabled" {
            return reason.as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the channel was not disabled");
}

/// Sends the hostile request with `reply` from upstream; the status the client got.
async fn provoke(app: &TestApp, upstream: &CannedUpstream, key: &str, reply: Canned) -> u16 {
    upstream.set(reply);
    app.v1(key, "/v1/chat/completions", &hostile_chat()).await.status().as_u16()
}

async fn auto_disable_from_codes_not_text_openai(backend: Backend) {
    let (app, upstream, channel, user, key) = setup(backend, json!({ "type": "openai", "key": "sk-upstream" })).await;

    // 400s echoing the words in their message, their param and an unknown field: the client's
    // error, whatever it says — even with the very codes.
    let echo = json!({ "error": { "message": "Unrecognized request argument supplied: insufficient_quota (invalid_api_key)",
                                  "type": "invalid_request_error", "param": "insufficient_quota", "code": "unknown_parameter" },
                       "insufficient_quota": 1 });
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(400, vec![], echo.clone())).await, 400);
    let coded = json!({ "error": { "message": "x", "type": "insufficient_quota", "code": "invalid_api_key" } });
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(400, vec![], coded)).await, 400);
    assert_still_enabled(&app, channel, "a 400 never disables").await;

    // A 429 and a 401 whose messages speak of quota and keys, with other codes: retried, not disabled.
    let throttled = json!({ "error": { "message": "insufficient_quota: you exceeded your current quota",
                                       "type": "requests", "code": "rate_limit_exceeded" }, "insufficient_quota": 1 });
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(429, vec![], throttled)).await, 429);
    let odd = json!({ "error": { "message": "invalid_api_key: quota exceeded", "type": "server_error", "code": "quota_note" } });
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(401, vec![], odd)).await, 502);
    assert_still_enabled(&app, channel, "messages count for nothing").await;

    // Still serving everyone.
    upstream.set(Canned::Ok);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &hostile_chat()).await.status(), 200);

    // A real refused key, by its code: disabled.
    let refused = json!({ "error": { "message": "Incorrect API key provided", "type": "invalid_request_error",
                                     "param": null, "code": "invalid_api_key" } });
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(401, vec![], refused)).await, 502);
    let reason = wait_until_disabled(&app, channel).await;
    assert_eq!(reason, "upstream rejected the key (HTTP 401): invalid_api_key");
    let before = upstream.received();
    assert_eq!(app.v1(&key, "/v1/chat/completions", &hostile_chat()).await.status(), 503);
    assert_eq!(upstream.received(), before, "a disabled channel gets no traffic");

    // Only the one served request was charged: 10 in at $1 + 5 out at $2 per 1M.
    assert_eq!(app.balance(user).await, 1_000_000_000 - 10 * 1000 - 5 * 2000);
    app.assert_ledger_consistent().await;
}

async fn auto_disable_from_codes_not_text_anthropic(backend: Backend) {
    let (app, upstream, channel, user, key) =
        setup(backend, json!({ "type": "anthropic", "key": "sk-ant-upstream" })).await;
    let error = |kind: &str, message: &str| json!({ "type": "error", "error": { "type": kind, "message": message } });

    // Anthropic's low-credit answer is a 400 invalid_request_error: the client's error, no more.
    let low = error(
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. authentication_error",
    );
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(400, vec![], low)).await, 400);
    // A permission refusal may follow from the client's own beta header: retried, not disabled.
    let permission = error("permission_error", "Your API key does not have permission (invalid_api_key)");
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(403, vec![], permission)).await, 502);
    assert_still_enabled(&app, channel, "anthropic 400 / 403 permission_error").await;

    let refused = error("authentication_error", "invalid x-api-key");
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(401, vec![], refused)).await, 502);
    assert_eq!(wait_until_disabled(&app, channel).await, "upstream rejected the key (HTTP 401): authentication_error");
    assert_eq!(app.balance(user).await, 1_000_000_000, "failures are free");
    app.assert_ledger_consistent().await;
}

async fn auto_disable_from_codes_not_text_gemini(backend: Backend) {
    let (app, upstream, channel, user, key) = setup(backend, json!({ "type": "gemini", "key": "AIza-upstream" })).await;
    let error = |code: u16, status: &str, reason: Option<&str>| {
        let details = reason.map_or(json!([]), |r| {
            json!([{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": r, "domain": "googleapis.com" }])
        });
        json!({ "error": { "code": code, "message": "API key not valid. API_KEY_INVALID insufficient_quota",
                           "status": status, "details": details } })
    };

    // Google's answer to a bad key is a 400 with reason API_KEY_INVALID: failed over (502 with
    // no other channel), but a 400 never disables a channel.
    let bad_key = error(400, "INVALID_ARGUMENT", Some("API_KEY_INVALID"));
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(400, vec![], bad_key)).await, 502);
    // The words only in the message of a 400: the client's error.
    let echo = error(400, "INVALID_ARGUMENT", None);
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(400, vec![], echo)).await, 400);
    // A bare PERMISSION_DENIED (a file the client named): retried, not disabled.
    let denied = error(403, "PERMISSION_DENIED", None);
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(403, vec![], denied)).await, 502);
    assert_still_enabled(&app, channel, "gemini 400 API_KEY_INVALID / bare 403").await;

    let blocked = error(403, "PERMISSION_DENIED", Some("API_KEY_SERVICE_BLOCKED"));
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(403, vec![], blocked)).await, 502);
    assert_eq!(
        wait_until_disabled(&app, channel).await,
        "upstream rejected the key (HTTP 403): API_KEY_SERVICE_BLOCKED"
    );
    assert_eq!(app.balance(user).await, 1_000_000_000);
    app.assert_ledger_consistent().await;
}

async fn auto_disable_from_codes_not_text_bedrock(backend: Backend) {
    let channel = json!({ "type": "bedrock", "key": "AKIDEXAMPLE:secret", "config": { "region": "us-east-1" } });
    let (app, upstream, channel, user, key) = setup(backend, channel).await;
    let message = json!({ "message": "UnrecognizedClientException AccessDeniedException insufficient_quota" });

    let invalid = Canned::Error(
        400,
        vec![("x-amzn-errortype", "ValidationException:http://internal.amazon.com/")],
        message.clone(),
    );
    assert_eq!(provoke(&app, &upstream, &key, invalid).await, 400);
    // A 403 with the words but no error type: retried, not disabled.
    assert_eq!(provoke(&app, &upstream, &key, Canned::Error(403, vec![], message.clone())).await, 502);
    assert_still_enabled(&app, channel, "bedrock 400 / 403 without a type").await;

    let refused = Canned::Error(
        403,
        vec![(
            "x-amzn-errortype",
            "UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/",
        )],
        json!({ "message": "The security token included in the request is invalid." }),
    );
    assert_eq!(provoke(&app, &upstream, &key, refused).await, 502);
    assert_eq!(
        wait_until_disabled(&app, channel).await,
        "upstream rejected the key (HTTP 403): UnrecognizedClientException"
    );
    assert_eq!(app.balance(user).await, 1_000_000_000);
    app.assert_ledger_consistent().await;
}

// ---- item 14: multipart ------------------------------------------------------------------------

/// A form with text fields and one file part.
fn form(boundary: &str, fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

async fn media_app(backend: Backend) -> (TestApp, FakeOpenAi, i64, String) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "media", "type": "openai", "base_url": fake.base_url("media"), "key": "k",
                            "models": ["whisper"], "model_mapping": { "whisper": "whisper-1" } }))
        .await;
    app.set_price("whisper", json!({ "per_request": "0.006" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    (app, fake, user, key)
}

async fn transcribe(app: &TestApp, key: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/v1/audio/transcriptions"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn multipart_boundary_over_70_characters_is_refused(backend: Backend) {
    let (app, fake, user, key) = media_app(backend).await;
    let long = "b".repeat(71);
    let body = form(&long, &[("model", "whisper")], b"RIFF....WAVE");
    let response = transcribe(&app, &key, &format!("multipart/form-data; boundary={long}"), body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error", "OpenAI's error shape: {error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("longer than 70 characters"), "{error}");

    // Characters RFC 2046 does not allow.
    let odd = "angle<brackets>";
    let body = form(odd, &[("model", "whisper")], b"RIFF....WAVE");
    let response = transcribe(&app, &key, &format!("multipart/form-data; boundary=\"{odd}\""), body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");

    assert!(fake.received().is_empty(), "nothing reached the upstream");
    assert_eq!(app.balance(user).await, 1_000_000_000, "and nothing was charged");
    app.assert_ledger_consistent().await;
}

async fn multipart_70_character_boundary_works_end_to_end(backend: Backend) {
    let (app, fake, user, key) = media_app(backend).await;
    // 70 characters, the RFC's specials included (quoted, since some are not token characters).
    let boundary = format!("{}'()+_,-./:=? end", "x".repeat(54));
    assert_eq!(boundary.len(), 70);
    let sent = form(&boundary, &[("model", "whisper"), ("language", "en")], &[0, 1, 2, 255, b'\r', b'\n', b'-', b'-']);
    let response = transcribe(&app, &key, &format!("multipart/form-data; boundary=\"{boundary}\""), sent.clone()).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let received = fake.received().pop().unwrap();
    let expected = String::from_utf8_lossy(&sent).replacen("\r\n\r\nwhisper\r\n", "\r\n\r\nwhisper-1\r\n", 1);
    assert_eq!(String::from_utf8_lossy(&received.body), expected, "only the model was mapped");
    assert_eq!(app.balance(user).await, 1_000_000_000 - 6_000_000);
    app.assert_ledger_consistent().await;
}

async fn multipart_near_matches_are_searched_in_linear_time(backend: Backend) {
    // An upstream that takes a 10 MB body (the OpenAI fake stops at axum's 2 MB default).
    let channel = json!({ "type": "openai", "key": "k", "model_mapping": { "m": "whisper-1" } });
    let (app, upstream, _, user, key) = setup(backend, channel).await;
    app.set_price("m", json!({ "per_request": "0.006" })).await;
    // A 70-character boundary and a 10 MB file made of near-matches of the delimiter: every
    // position starts 71 matching bytes of "\r\n--bbbb…". The gateway searches the body several
    // times (peek, model mapping); a quadratic search would take minutes.
    let boundary = "b".repeat(70);
    let near = format!("\r\n--{}", "b".repeat(69));
    let mut file = Vec::with_capacity(10 * 1024 * 1024 + near.len());
    while file.len() < 10 * 1024 * 1024 {
        file.extend_from_slice(near.as_bytes());
    }
    let sent = form(&boundary, &[("model", "m")], &file);
    let started = Instant::now();
    let response = transcribe(&app, &key, &format!("multipart/form-data; boundary={boundary}"), sent.clone()).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    let received = upstream.last_body.lock().unwrap().clone();
    assert_eq!(received.len(), sent.len() + 8, "\"m\" became \"whisper-1\", nothing else changed");
    assert_eq!(&received[received.len() - 1000..], &sent[sent.len() - 1000..]);
    assert_eq!(app.balance(user).await, 1_000_000_000 - 6_000_000);
    app.assert_ledger_consistent().await;
}

//! A fake OpenAI-compatible upstream: a real HTTP server on 127.0.0.1:0 that answers in OpenAI's
//! exact wire format (bodies, SSE chunks, `include_usage` semantics, error objects), and can be
//! told to misbehave: fail with a status, hang, send garbage, cut a stream short, stream slowly.
//! It records every request it receives (path, headers, raw body) for assertions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// How the fake answers.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// Answer normally, with usage (prompt, completion tokens).
    Ok { prompt_tokens: i64, completion_tokens: i64 },
    /// Answer normally but never report usage (streams ignore `include_usage`).
    NoUsage,
    /// Like a vendor that always reports usage in streams, asked or not.
    AlwaysUsage,
    /// An error status with OpenAI's error body (the message mentions the key it was given).
    Status(u16),
    /// 429 `insufficient_quota`: the upstream account has no credit left.
    NoCredit,
    /// Accept the connection and never answer.
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Start a stream, send two content chunks, then drop the connection.
    Truncated,
    /// Stream `chunks` content chunks, `interval` apart.
    Slow { chunks: usize, interval: Duration },
}

pub const DEFAULT_PROMPT: i64 = 12;
pub const DEFAULT_COMPLETION: i64 = 5;

impl Default for Behavior {
    fn default() -> Self {
        Behavior::Ok { prompt_tokens: DEFAULT_PROMPT, completion_tokens: DEFAULT_COMPLETION }
    }
}

/// A request the fake received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Shared {
    behavior: Arc<Mutex<Behavior>>,
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct FakeOpenAi {
    pub port: u16,
    shared: Shared,
}

impl FakeOpenAi {
    pub async fn start(behavior: Behavior) -> Self {
        let shared = Shared::default();
        *shared.behavior.lock().unwrap() = behavior;
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let port = crate::support::helpers::serve_locally(app).await;
        Self { port, shared }
    }

    /// A base URL as a channel takes it; `prefix` tells channels on the same fake apart.
    pub fn base_url(&self, prefix: &str) -> String {
        format!("http://127.0.0.1:{}/{prefix}/v1", self.port)
    }

    pub fn set(&self, behavior: Behavior) {
        *self.shared.behavior.lock().unwrap() = behavior;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// How many requests arrived under `/<prefix>/`.
    pub fn count(&self, prefix: &str) -> usize {
        self.received().iter().filter(|r| r.path.starts_with(&format!("/{prefix}/"))).count()
    }
}

async fn handle(State(shared): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let behavior = shared.behavior.lock().unwrap().clone();
    shared.received.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if let Some(boundary) = burncloud::providers::multipart::boundary(&content_type) {
        return upload(uri.path(), &body, boundary);
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or("unknown").to_string();
    let stream = request["stream"].as_bool().unwrap_or(false);
    let include_usage = request["stream_options"]["include_usage"].as_bool().unwrap_or(false);
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_start_matches("Bearer ")
        .to_string();

    match behavior {
        Behavior::Status(code) => {
            let (kind, code_str) = match code {
                401 => ("invalid_request_error", "invalid_api_key"),
                429 => ("requests", "rate_limit_exceeded"),
                400 => ("invalid_request_error", "context_length_exceeded"),
                _ => ("server_error", "server_error"),
            };
            let body = json!({ "error": {
                "message": format!("Incorrect API key provided: {key}. Request to 127.0.0.1 failed with code {code_str}."),
                "type": kind, "param": null, "code": code_str } });
            (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
        }
        Behavior::NoCredit => {
            let body = json!({ "error": { "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota", "param": null, "code": "insufficient_quota" } });
            (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
        }
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Behavior::Garbage => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "<html>not json").into_response(),
        // The model list (`GET /models`), for the console's "fetch models".
        _ if uri.path().ends_with("/models") => axum::Json(json!({ "object": "list", "data": [
            { "id": "gpt-4o-mini", "object": "model", "owned_by": "fake" },
            { "id": "gpt-4o", "object": "model", "owned_by": "fake" },
            { "id": "text-embedding-3-small", "object": "model", "owned_by": "fake" } ] }))
        .into_response(),
        _ if uri.path().ends_with("/embeddings") => embeddings(&model, &behavior, &request),
        _ if uri.path().ends_with("/moderations") => axum::Json(json!({
            "id": "modr-fake", "model": model,
            "results": [{ "flagged": false, "categories": { "violence": false }, "category_scores": { "violence": 0.0001 } }]
        }))
        .into_response(),
        _ if uri.path().ends_with("/images/generations") => axum::Json(json!({
            "created": 1_700_000_000,
            "data": (0..request["n"].as_i64().unwrap_or(1)).map(|_| json!({ "url": "https://images.example/fake.png", "revised_prompt": "a cat" })).collect::<Vec<_>>()
        }))
        .into_response(),
        _ if uri.path().ends_with("/audio/speech") => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "audio/mpeg")], Bytes::from_static(b"ID3\x04\x00fake-mp3-bytes")).into_response()
        }
        _ if uri.path().ends_with("/responses") => {
            let (prompt, completion) = tokens(&behavior);
            axum::Json(json!({
                "id": "resp_fake", "object": "response", "created_at": 1_700_000_000, "status": "completed", "model": model,
                "output": [{ "type": "message", "id": "msg_fake", "status": "completed", "role": "assistant",
                             "content": [{ "type": "output_text", "text": "Hello there!", "annotations": [] }] }],
                "usage": { "input_tokens": prompt, "input_tokens_details": { "cached_tokens": 0 },
                           "output_tokens": completion, "output_tokens_details": { "reasoning_tokens": 0 }, "total_tokens": prompt + completion }
            }))
            .into_response()
        }
        _ if uri.path().ends_with("/completions") && !uri.path().ends_with("/chat/completions") && !stream => {
            let (prompt, completion) = tokens(&behavior);
            axum::Json(json!({
                "id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000, "model": model,
                "choices": [{ "text": "Hello there!", "index": 0, "logprobs": null, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion }
            }))
            .into_response()
        }
        _ if stream => stream_response(&model, &behavior, include_usage, request["tools"][0]["function"]["name"].as_str()),
        _ => completion(&model, &behavior, &request),
    }
}

/// Image edits and audio transcriptions/translations, as OpenAI answers them.
fn upload(path: &str, body: &[u8], boundary: &str) -> Response {
    use burncloud::providers::multipart::field;
    let has_part = |name: &str| {
        let needle = format!("name=\"{name}\"");
        body.windows(needle.len()).any(|w| w == needle.as_bytes())
    };
    if !has_part("file") && !has_part("image") {
        let error = json!({ "error": { "message": "No file was uploaded.", "type": "invalid_request_error", "param": "file", "code": null } });
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    if path.ends_with("/images/edits") {
        let n: usize = field(body, boundary, "n").and_then(|n| n.parse().ok()).unwrap_or(1);
        return axum::Json(
            json!({ "created": 1_700_000_000, "data": vec![json!({ "url": "https://images.example/edit.png" }); n] }),
        )
        .into_response();
    }
    let text = "The quick brown fox jumped over the lazy dog.";
    match field(body, boundary, "response_format") {
        Some("text") => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        _ => axum::Json(json!({ "text": text })).into_response(),
    }
}

fn usage_json(prompt: i64, completion: i64) -> Value {
    json!({
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
        "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0 }
    })
}

fn tokens(behavior: &Behavior) -> (i64, i64) {
    match behavior {
        Behavior::Ok { prompt_tokens, completion_tokens } => (*prompt_tokens, *completion_tokens),
        _ => (DEFAULT_PROMPT, DEFAULT_COMPLETION),
    }
}

fn completion(model: &str, behavior: &Behavior, request: &Value) -> Response {
    let (prompt, completion) = tokens(behavior);
    let message = if request["tools"].is_array() {
        json!({ "role": "assistant", "content": null, "refusal": null, "tool_calls": [{
            "id": "call_abc123", "type": "function",
            "function": { "name": request["tools"][0]["function"]["name"], "arguments": "{\"location\":\"Paris\"}" } }] })
    } else {
        json!({ "role": "assistant", "content": "Hello there!", "refusal": null })
    };
    let finish = if request["tools"].is_array() { "tool_calls" } else { "stop" };
    let mut body = json!({
        "id": "chatcmpl-fake123", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish }],
        "usage": usage_json(prompt, completion), "system_fingerprint": "fp_fake"
    });
    if matches!(behavior, Behavior::NoUsage) {
        body.as_object_mut().unwrap().remove("usage");
    }
    axum::Json(body).into_response()
}

fn embeddings(model: &str, behavior: &Behavior, request: &Value) -> Response {
    use base64::Engine as _;
    let (prompt, _) = tokens(behavior);
    let vector = [0.0023064255_f32, -0.009327292, 0.015797347];
    // As OpenAI does: `encoding_format: "base64"` answers little-endian float32 bytes in base64.
    let embedding = if request["encoding_format"] == "base64" {
        let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        json!(vector)
    };
    axum::Json(json!({
        "object": "list",
        "data": [{ "object": "embedding", "index": 0, "embedding": embedding }],
        "model": model,
        "usage": { "prompt_tokens": prompt, "total_tokens": prompt }
    }))
    .into_response()
}

fn chunk(model: &str, delta: Value, finish: Value, usage_field: bool) -> String {
    let mut c = json!({
        "id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }]
    });
    if usage_field {
        c["usage"] = Value::Null;
    }
    format!("data: {c}\n\n")
}

fn stream_response(model: &str, behavior: &Behavior, include_usage: bool, tool: Option<&str>) -> Response {
    let (prompt, completion) = tokens(behavior);
    let report_usage = match behavior {
        Behavior::NoUsage => false,
        Behavior::AlwaysUsage => true,
        _ => include_usage,
    };
    let words = ["Hello", " there", "!", " How", " are", " you", "?"];
    let (count, interval) = match behavior {
        Behavior::Slow { chunks, interval } => (*chunks, *interval),
        Behavior::Truncated => (2, Duration::ZERO),
        _ => (3, Duration::ZERO),
    };
    let mut events =
        vec![chunk(model, json!({ "role": "assistant", "content": "", "refusal": null }), Value::Null, include_usage)];
    if let Some(tool) = tool {
        // OpenAI streams a tool call as its id and name first, then the arguments in pieces.
        let start = json!({ "tool_calls": [{ "index": 0, "id": "call_fake1", "type": "function",
                                             "function": { "name": tool, "arguments": "" } }] });
        events.push(chunk(model, start, Value::Null, include_usage));
        for piece in ["{\"location\"", ":\"Paris\"}"] {
            let delta = json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] });
            events.push(chunk(model, delta, Value::Null, include_usage));
        }
    } else {
        for i in 0..count {
            events.push(chunk(model, json!({ "content": words[i % words.len()] }), Value::Null, include_usage));
        }
    }
    let truncated = matches!(behavior, Behavior::Truncated);
    if !truncated {
        events.push(chunk(model, json!({}), json!(if tool.is_some() { "tool_calls" } else { "stop" }), include_usage));
        if report_usage {
            let usage = json!({
                "id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                "system_fingerprint": "fp_fake", "choices": [], "usage": usage_json(prompt, completion)
            });
            events.push(format!("data: {usage}\n\n"));
        }
        events.push("data: [DONE]\n\n".to_string());
    }
    let stream = futures_util::stream::iter(events.into_iter().enumerate()).then(move |(i, event)| async move {
        if i > 0 && !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        Ok::<_, std::io::Error>(Bytes::from(event))
    });
    let stream = stream.chain(futures_util::stream::once(async move {
        if truncated {
            // Let what was sent reach the client, then break the connection mid-stream.
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err(std::io::Error::other("connection reset"))
        } else {
            Ok(Bytes::new())
        }
    }));
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .body(Body::from_stream(stream))
        .unwrap()
}

//! A fake Gemini API (AI Studio): a real HTTP server on 127.0.0.1:0 serving
//! `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`. It checks
//! requests like the real service (the `x-goog-api-key` header — a wrong key gets Google's
//! `API_KEY_INVALID` error —, `contents` with `user`/`model` roles, one kind of data per part,
//! object `functionResponse.response`s that answer a call of the turn before) and answers with
//! wire-exact bodies and streams from `tests/fixtures/gemini/` (from Google's API documentation).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const KEY: &str = "AIza-test-key";

#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// `generate_text.json` / `stream_text.sse`.
    Text,
    /// `function_call.json` / `stream_function_call.sse`.
    FunctionCall,
}

#[derive(Clone)]
struct Shared {
    reply: Arc<Mutex<Reply>>,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

pub struct FakeGemini {
    pub port: u16,
    shared: Shared,
}

impl FakeGemini {
    pub async fn start(reply: Reply) -> Self {
        let shared = Shared { reply: Arc::new(Mutex::new(reply)), received: Arc::default() };
        let app =
            Router::new().route("/v1beta/models/{method}", axum::routing::post(generate)).with_state(shared.clone());
        let port = crate::support::helpers::serve_locally(app).await;
        Self { port, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `(model:method, body)` of each accepted request.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.shared.received.lock().unwrap().clone()
    }
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/gemini/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap();
    let body = json!({ "error": { "code": status, "message": message, "status": "INVALID_ARGUMENT" } });
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn generate(
    State(shared): State<Shared>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        let body = fixture("error_api_key_invalid.json");
        return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    if let Some((model, "batchEmbedContents")) = method.rsplit_once(':') {
        return batch_embed(&shared, model, &method, &body);
    }
    let stream = match method.rsplit_once(':').map(|(_, m)| m) {
        Some("generateContent") => false,
        Some("streamGenerateContent") if query.as_deref() == Some("alt=sse") => true,
        _ => return error(404, &format!("Method not found: {method}")),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "Invalid JSON payload received.");
    };
    if let Err(message) = validate(&request) {
        return error(400, &message);
    }
    shared.received.lock().unwrap().push((method, request));
    let reply = *shared.reply.lock().unwrap();
    let (file, content_type) = match (reply, stream) {
        (Reply::Text, false) => ("generate_text.json", "application/json"),
        (Reply::FunctionCall, false) => ("function_call.json", "application/json"),
        (Reply::Text, true) => ("stream_text.sse", "text/event-stream"),
        (Reply::FunctionCall, true) => ("stream_function_call.sse", "text/event-stream"),
    };
    ([(header::CONTENT_TYPE, content_type)], fixture(file)).into_response()
}

fn validate(request: &Value) -> Result<(), String> {
    let contents =
        request["contents"].as_array().ok_or("* GenerateContentRequest.contents: contents is not specified")?;
    if contents.is_empty() {
        return Err("* GenerateContentRequest.contents: contents is not specified".into());
    }
    let mut previous_calls: Vec<String> = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        let role = content["role"].as_str().unwrap_or("user");
        if role != "user" && role != "model" {
            return Err(format!("Please use a valid role: user, model. (contents[{i}])"));
        }
        let parts = content["parts"]
            .as_array()
            .filter(|p| !p.is_empty())
            .ok_or(format!("contents[{i}].parts must not be empty"))?;
        let mut calls = Vec::new();
        for part in parts {
            let kinds = ["text", "inlineData", "functionCall", "functionResponse"];
            let present: Vec<&str> = kinds.into_iter().filter(|k| part.get(k).is_some()).collect();
            if present.len() != 1 {
                return Err(format!("contents[{i}]: a part must hold exactly one kind of data, got {present:?}"));
            }
            match present[0] {
                "functionCall" => calls.push(part["functionCall"]["name"].as_str().unwrap_or_default().to_string()),
                "functionResponse" => {
                    let name = part["functionResponse"]["name"].as_str().unwrap_or_default();
                    if !part["functionResponse"]["response"].is_object() || !previous_calls.iter().any(|c| c == name) {
                        return Err(format!("contents[{i}]: functionResponse {name:?} answers no function call"));
                    }
                }
                "inlineData" if !part["inlineData"]["data"].is_string() => {
                    return Err(format!("contents[{i}]: inlineData.data is required"));
                }
                _ => {}
            }
        }
        previous_calls = calls;
    }
    Ok(())
}

/// `batchEmbedContents`: every request names this model and one text; each vector is
/// `[text length, 0.5, -0.25]`.
fn batch_embed(shared: &Shared, model: &str, method: &str, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(400, "Invalid JSON payload received.");
    };
    let Some(requests) = request["requests"].as_array().filter(|r| !r.is_empty()) else {
        return error(400, "* BatchEmbedContentsRequest.requests: requests is required");
    };
    let mut embeddings = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        if r["model"] != format!("models/{model}") {
            return error(400, &format!("requests[{i}].model must be models/{model}"));
        }
        let Some(text) = r["content"]["parts"][0]["text"].as_str() else {
            return error(400, &format!("requests[{i}].content.parts[0].text is required"));
        };
        embeddings.push(json!({ "values": [text.len() as f64, 0.5, -0.25] }));
    }
    shared.received.lock().unwrap().push((method.to_string(), request));
    axum::Json(json!({ "embeddings": embeddings })).into_response()
}

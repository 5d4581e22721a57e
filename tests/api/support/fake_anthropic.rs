//! A fake Anthropic Messages API: a real HTTP server on 127.0.0.1:0 that checks requests as
//! strictly as the real service does (key and version headers, required fields, user/assistant
//! alternation starting with a user turn, known block types, every tool result answering a
//! tool use of the turn before) and answers with wire-exact bodies and streams from
//! `tests/fixtures/anthropic/` (taken from Anthropic's API documentation).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const KEY: &str = "sk-ant-test-key";

/// What the fake answers with.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// `message.json` / `stream_text.sse`.
    Text,
    /// `tool_use.json` / `stream_tool_use.sse`.
    ToolUse,
    /// An error status with Anthropic's error body and that error type.
    Error(u16, &'static str),
    /// HTTP 200, then an `overloaded_error` as the stream's first event (as Anthropic does).
    StreamError,
}

#[derive(Clone)]
struct Shared {
    reply: Arc<Mutex<Reply>>,
    received: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

pub struct FakeAnthropic {
    pub port: u16,
    shared: Shared,
}

impl FakeAnthropic {
    pub async fn start(reply: Reply) -> Self {
        let shared = Shared { reply: Arc::new(Mutex::new(reply)), received: Arc::default() };
        let app = Router::new().route("/v1/messages", axum::routing::post(messages)).with_state(shared.clone());
        let port = crate::support::helpers::serve_locally(app).await;
        Self { port, shared }
    }

    /// The base URL as an `anthropic` channel takes it (no version segment).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, reply: Reply) {
        *self.shared.reply.lock().unwrap() = reply;
    }

    /// The bodies received, in order.
    pub fn received(&self) -> Vec<Value> {
        self.shared.received.lock().unwrap().iter().map(|(_, body)| body.clone()).collect()
    }
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/anthropic/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    let body = json!({ "type": "error", "error": { "type": kind, "message": message } });
    (StatusCode::from_u16(status).unwrap(), [(header::CONTENT_TYPE, "application/json")], body.to_string())
        .into_response()
}

async fn messages(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return error(401, "authentication_error", "invalid x-api-key");
    }
    if headers.get("anthropic-version").is_none() {
        return error(400, "invalid_request_error", "anthropic-version: header is required");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid_request_error", "The request body is not valid JSON.");
    };
    // A `system` turn inside `messages` is Claude Code's beta `mid-conversation-system-2026-04-07`:
    // accepted only with that beta header, and then left out of the alternation.
    let system_turns = headers
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|b| b.split(',').any(|b| b.trim() == "mid-conversation-system-2026-04-07"));
    if let Err(message) = validate(&request, system_turns) {
        return error(400, "invalid_request_error", &message);
    }
    shared.received.lock().unwrap().push((headers, request.clone()));
    let reply = *shared.reply.lock().unwrap();
    let stream = request["stream"] == json!(true);
    let (file, content_type) = match (reply, stream) {
        (Reply::Error(status, kind), _) => return error(status, kind, "The upstream refused this."),
        (Reply::StreamError, _) => {
            let event = "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n";
            return ([(header::CONTENT_TYPE, "text/event-stream")], event).into_response();
        }
        (Reply::Text, false) => ("message.json", "application/json"),
        (Reply::ToolUse, false) => ("tool_use.json", "application/json"),
        (Reply::Text, true) => ("stream_text.sse", "text/event-stream"),
        (Reply::ToolUse, true) => ("stream_tool_use.sse", "text/event-stream"),
    };
    ([(header::CONTENT_TYPE, content_type)], fixture(file)).into_response()
}

/// The checks the real API makes that a converter could get wrong.
fn validate(request: &Value, system_turns: bool) -> Result<(), String> {
    if !request["model"].is_string() {
        return Err("model: Field required".into());
    }
    if request["max_tokens"].as_i64().is_none_or(|n| n < 1) {
        return Err("max_tokens: Field required".into());
    }
    let messages = request["messages"].as_array().ok_or("messages: Field required")?;
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let mut previous_tool_uses: Vec<String> = Vec::new();
    let mut turn = 0;
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().ok_or(format!("messages.{i}.role: Field required"))?;
        if role == "system" && system_turns {
            continue;
        }
        let expected = if turn % 2 == 0 { "user" } else { "assistant" };
        turn += 1;
        if role != expected {
            return Err(format!("messages: roles must alternate between \"user\" and \"assistant\" (messages.{i})"));
        }
        // A string is shorthand for one text block.
        let shorthand = message["content"].as_str().map(|text| vec![json!({ "type": "text", "text": text })]);
        let blocks = match &shorthand {
            Some(blocks) => blocks,
            None => {
                message["content"].as_array().ok_or(format!("messages.{i}.content: expected a string or a list"))?
            }
        };
        let mut tool_uses = Vec::new();
        for block in blocks {
            match block["type"].as_str() {
                Some("text") if block["text"].as_str().is_some_and(|t| !t.is_empty()) => {}
                Some("text") => return Err(format!("messages.{i}: text content blocks must be non-empty")),
                Some("image") => {
                    let source = &block["source"];
                    let ok = match source["type"].as_str() {
                        Some("base64") => source["media_type"].is_string() && source["data"].is_string(),
                        Some("url") => source["url"].is_string(),
                        _ => false,
                    };
                    if !ok {
                        return Err(format!("messages.{i}: invalid image source"));
                    }
                }
                Some("tool_use") if role == "assistant" => {
                    if !block["input"].is_object() {
                        return Err(format!("messages.{i}: tool_use.input must be an object"));
                    }
                    tool_uses.push(block["id"].as_str().unwrap_or_default().to_string());
                }
                Some("tool_result") if role == "user" => {
                    let id = block["tool_use_id"].as_str().unwrap_or_default();
                    if !previous_tool_uses.iter().any(|u| u == id) {
                        return Err(format!(
                            "messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each \
                             `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        ));
                    }
                }
                other => return Err(format!("messages.{i}: unexpected content block type {other:?}")),
            }
        }
        previous_tool_uses = tool_uses;
    }
    if messages.last().is_some_and(|m| m["role"] == "assistant") && request.get("thinking").is_some() {
        return Err("thinking: the final message must be a user turn".into());
    }
    Ok(())
}

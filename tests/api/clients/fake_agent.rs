//! A scripted conversational upstream for the real-client suite: one server on 127.0.0.1:0 that
//! speaks OpenAI chat completions (`/<prefix>/v1/chat/completions`, plain and SSE), OpenAI
//! Responses (`/<prefix>/v1/responses`, SSE), Anthropic Messages (`/v1/messages`, plain and SSE)
//! and Gemini (`/v1beta/models/{model}:generateContent` / `:streamGenerateContent?alt=sse`).
//!
//! The script: a prompt that contains `[[call NAME {json args}]]`, in a request that offers the
//! tool NAME and holds no tool result yet, gets a call of NAME; a conversation that ends with a
//! tool result gets a final text quoting that result; anything else gets `FAKE-ANSWER …`.
//! It refuses what the real providers refuse (output caps above the model's limit, an over-long
//! `user`, Gemini tool schemas outside its OpenAPI subset, a `system` turn inside Anthropic
//! `messages` without the beta that allows it), with each provider's error JSON, so that the
//! suite fails where real clients fail against real providers. Every request is recorded.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The beta that lets Anthropic's API take `system` turns inside `messages`.
pub const MID_CONVERSATION_SYSTEM_BETA: &str = "mid-conversation-system-2026-04-07";

/// The text every plain answer starts with.
pub const ANSWER: &str = "FAKE-ANSWER";

/// A request the fake received, and what it did with it.
#[derive(Clone, Debug)]
pub struct Received {
    /// `openai`, `responses`, `anthropic` or `gemini`.
    pub protocol: &'static str,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// The HTTP status the fake answered with.
    pub status: u16,
    /// `text`, `tool_call` or `final` for answered requests; the error message otherwise.
    pub outcome: String,
    /// Usage reported in the answer (input, output tokens); zero for refusals.
    pub usage: (i64, i64),
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct FakeAgent {
    pub port: u16,
    shared: Shared,
}

impl FakeAgent {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let port = crate::support::helpers::serve_locally(app).await;
        Self { port, shared }
    }

    /// The base URL a channel of `kind` takes: OpenAI-protocol channels get a prefix and `/v1`.
    pub fn base_url(&self, kind: &str) -> String {
        match kind {
            "anthropic" | "gemini" => format!("http://127.0.0.1:{}", self.port),
            prefix => format!("http://127.0.0.1:{}/{prefix}/v1", self.port),
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The summed usage the fake reported in successful answers.
    pub fn usage(&self) -> (i64, i64) {
        self.received().iter().fold((0, 0), |(i, o), r| (i + r.usage.0, o + r.usage.1))
    }

    /// A one-line-per-request summary for assertion messages.
    pub fn summary(&self) -> String {
        self.received()
            .iter()
            .map(|r| format!("{} {} {} -> {} {}", r.protocol, r.path, r.body["model"], r.status, r.outcome))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The output limit a real provider enforces for a model (tokens).
fn output_limit(model: &str) -> Option<i64> {
    match model {
        "gpt-4o-mini" => Some(16_384),
        "deepseek-chat" => Some(8_192),
        "claude-sonnet-4-5" => Some(64_000),
        "gemini-2.5-flash" => Some(65_536),
        _ => None,
    }
}

/// Whether a model takes reasoning parameters (OpenAI refuses `reasoning_effort` on the others).
fn reasons(model: &str) -> bool {
    !matches!(model, "gpt-4o-mini" | "gpt-4o")
}

/// The conversation as the script sees it, whatever the protocol.
struct Conversation {
    /// Names of the tools the request offers.
    tools: Vec<String>,
    /// The user's text, every user turn concatenated.
    user_text: String,
    /// Whether any tool result is in the conversation.
    has_tool_result: bool,
    /// The last turn's tool result, when the conversation ends with one.
    last_tool_result: Option<String>,
}

enum Answer {
    Text(String),
    ToolCall { name: String, arguments: Value },
}

fn decide(conversation: &Conversation, protocol: &str) -> (Answer, &'static str) {
    if let Some(result) = &conversation.last_tool_result {
        let quoted: String = result.chars().take(400).collect();
        return (Answer::Text(format!("{ANSWER} (final) the tool returned: {quoted}")), "final");
    }
    if !conversation.has_tool_result
        && let Some((name, arguments)) = requested_call(&conversation.user_text)
        && conversation.tools.contains(&name)
    {
        return (Answer::ToolCall { name, arguments }, "tool_call");
    }
    (Answer::Text(format!("{ANSWER} from the {protocol} upstream.")), "text")
}

/// `[[call NAME {json}]]` in the user's text.
fn requested_call(text: &str) -> Option<(String, Value)> {
    let start = text.find("[[call ")? + "[[call ".len();
    let rest = &text[start..];
    let end = rest.find("]]")?;
    let (name, args) = rest[..end].split_once(' ')?;
    Some((name.to_string(), serde_json::from_str(args.trim()).ok()?))
}

/// A deterministic, realistic token count: about four characters a token.
fn tokens(chars: usize) -> i64 {
    (chars as i64 / 4).max(1)
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().map(str::to_string).or_else(|| p.as_str().map(str::to_string)))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

async fn handle(
    State(shared): State<Shared>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let size = body.len();
    let (protocol, result) = if path.ends_with("/chat/completions") {
        ("openai", chat_completions(&path, &headers, &request, size))
    } else if path.ends_with("/responses") {
        ("responses", responses(&path, &headers, &request, size))
    } else if path == "/v1/messages" {
        ("anthropic", messages(&headers, &request, size))
    } else if path.starts_with("/v1beta/models/") {
        ("gemini", gemini(&path, query.as_deref(), &headers, &request, size))
    } else {
        ("unknown", Err((404, openai_error(404, "invalid_request_error", &format!("Invalid URL (POST {path})"), None))))
    };
    let (status, outcome, usage, response) = match result {
        Ok(answered) => (200, answered.outcome.to_string(), answered.usage, answered.response),
        Err((status, response)) => {
            let message = response.1.clone();
            (status, message, (0, 0), response.into_response())
        }
    };
    shared.received.lock().unwrap().push(Received { protocol, path, headers, body: request, status, outcome, usage });
    response
}

struct Answered {
    outcome: &'static str,
    usage: (i64, i64),
    response: Response,
}

type Refusal = (u16, ErrorResponse);

/// An error answer: status and body (kept as text so it can be recorded).
struct ErrorResponse(StatusCode, String);

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        (self.0, [(header::CONTENT_TYPE, "application/json")], self.1).into_response()
    }
}

fn openai_error(status: u16, kind: &str, message: &str, param: Option<&str>) -> ErrorResponse {
    let code = if status == 400 { json!("invalid_value") } else { Value::Null };
    let body = json!({ "error": { "message": message, "type": kind, "param": param, "code": code } });
    ErrorResponse(StatusCode::from_u16(status).unwrap(), body.to_string())
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> ErrorResponse {
    let body = json!({ "type": "error", "error": { "type": kind, "message": message } });
    ErrorResponse(StatusCode::from_u16(status).unwrap(), body.to_string())
}

fn gemini_error(status: u16, message: &str) -> ErrorResponse {
    let state = if status == 400 { "INVALID_ARGUMENT" } else { "UNAUTHENTICATED" };
    let body = json!({ "error": { "code": status, "message": message, "status": state } });
    ErrorResponse(StatusCode::from_u16(status).unwrap(), body.to_string())
}

fn sse(events: Vec<String>) -> Response {
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], events.concat())
        .into_response()
}

/// A text cut into a few deltas, as a stream delivers it.
fn pieces(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    words.chunks(words.len().div_ceil(3).max(1)).map(|c| c.concat()).collect()
}

// ---- OpenAI chat completions (OpenAI and DeepSeek) ---------------------------------------------

fn chat_completions(path: &str, headers: &HeaderMap, request: &Value, size: usize) -> Result<Answered, Refusal> {
    let deepseek = path.starts_with("/deepseek/");
    if !headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("Bearer ")) {
        return Err((401, openai_error(401, "invalid_request_error", "You didn't provide an API key.", None)));
    }
    let model = request["model"].as_str().unwrap_or_default().to_string();
    for field in ["max_tokens", "max_completion_tokens"] {
        if let (Some(asked), Some(limit)) = (request[field].as_i64(), output_limit(&model))
            && asked > limit
        {
            let message = if deepseek {
                format!("Invalid max_tokens value, the valid range of max_tokens is [1, {limit}]")
            } else {
                format!(
                    "max_tokens is too large: {asked}. This model supports at most {limit} completion tokens, whereas you provided {asked}."
                )
            };
            return Err((400, openai_error(400, "invalid_request_error", &message, Some(field))));
        }
    }
    if !request["reasoning_effort"].is_null() && !reasons(&model) {
        let message = "Unsupported parameter: 'reasoning_effort' is not supported with this model.";
        return Err((400, openai_error(400, "invalid_request_error", message, Some("reasoning_effort"))));
    }
    if let Some(user) = request["user"].as_str()
        && user.chars().count() > 64
    {
        let message = format!(
            "Invalid 'user': string too long. Expected a string with maximum length 64, but got a string with length {} instead.",
            user.chars().count()
        );
        return Err((400, openai_error(400, "invalid_request_error", &message, Some("user"))));
    }
    let Some(messages) = request["messages"].as_array() else {
        return Err((400, openai_error(400, "invalid_request_error", "Missing required parameter: 'messages'.", None)));
    };
    let conversation = Conversation {
        tools: request["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
            .collect(),
        user_text: messages.iter().filter(|m| m["role"] == "user").map(|m| text_of(&m["content"])).collect(),
        has_tool_result: messages.iter().any(|m| m["role"] == "tool"),
        last_tool_result: messages.last().filter(|m| m["role"] == "tool").map(|m| text_of(&m["content"])),
    };
    let (answer, outcome) = decide(&conversation, if deepseek { "deepseek" } else { "openai" });
    let input = tokens(size);
    let id = "chatcmpl-fakeagent";
    let (message, output, finish) = match &answer {
        Answer::Text(text) => {
            (json!({ "role": "assistant", "content": text, "refusal": null }), tokens(text.len()), "stop")
        }
        Answer::ToolCall { name, arguments } => {
            let call = json!({ "id": "call_fake_1", "type": "function",
                               "function": { "name": name, "arguments": arguments.to_string() } });
            (json!({ "role": "assistant", "content": null, "tool_calls": [call] }), 12, "tool_calls")
        }
    };
    let usage = json!({ "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output });
    if request["stream"].as_bool() != Some(true) {
        let body = json!({
            "id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish }],
            "usage": usage, "system_fingerprint": "fp_fake"
        });
        return Ok(Answered { outcome, usage: (input, output), response: axum::Json(body).into_response() });
    }
    let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({ "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                            "system_fingerprint": "fp_fake",
                            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }] });
        if include_usage {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut events = vec![chunk(json!({ "role": "assistant", "content": "", "refusal": null }), Value::Null)];
    match &answer {
        Answer::Text(text) => {
            for piece in pieces(text) {
                events.push(chunk(json!({ "content": piece }), Value::Null));
            }
        }
        Answer::ToolCall { name, arguments } => {
            let start = json!({ "tool_calls": [{ "index": 0, "id": "call_fake_1", "type": "function",
                                                 "function": { "name": name, "arguments": "" } }] });
            events.push(chunk(start, Value::Null));
            let args = arguments.to_string();
            let (a, b) = args.split_at(args.len() / 2);
            for part in [a, b] {
                events.push(chunk(
                    json!({ "tool_calls": [{ "index": 0, "function": { "arguments": part } }] }),
                    Value::Null,
                ));
            }
        }
    }
    events.push(chunk(json!({}), json!(finish)));
    if include_usage {
        let last = json!({ "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                           "system_fingerprint": "fp_fake", "choices": [], "usage": usage });
        events.push(format!("data: {last}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_string());
    Ok(Answered { outcome, usage: (input, output), response: sse(events) })
}

// ---- OpenAI Responses (Codex) ------------------------------------------------------------------

fn responses(path: &str, headers: &HeaderMap, request: &Value, size: usize) -> Result<Answered, Refusal> {
    if path.starts_with("/deepseek/") {
        // DeepSeek has no Responses API.
        return Err((404, openai_error(404, "invalid_request_error", "Not Found", None)));
    }
    if headers.get(header::AUTHORIZATION).is_none() {
        return Err((401, openai_error(401, "invalid_request_error", "You didn't provide an API key.", None)));
    }
    let model = request["model"].as_str().unwrap_or_default().to_string();
    if let (Some(asked), Some(limit)) = (request["max_output_tokens"].as_i64(), output_limit(&model))
        && asked > limit
    {
        let message = format!(
            "max_output_tokens is too large: {asked}. This model supports at most {limit} output tokens, whereas you provided {asked}."
        );
        return Err((400, openai_error(400, "invalid_request_error", &message, Some("max_output_tokens"))));
    }
    if let Some(user) = request["user"].as_str()
        && user.chars().count() > 64
    {
        let message = format!(
            "Invalid 'user': string too long. Expected a string with maximum length 64, but got a string with length {} instead.",
            user.chars().count()
        );
        return Err((400, openai_error(400, "invalid_request_error", &message, Some("user"))));
    }
    let items: Vec<Value> = match &request["input"] {
        Value::String(s) => vec![json!({ "type": "message", "role": "user", "content": s })],
        Value::Array(items) => items.clone(),
        _ => {
            return Err((
                400,
                openai_error(400, "invalid_request_error", "Missing required parameter: 'input'.", Some("input")),
            ));
        }
    };
    let conversation = Conversation {
        tools: request["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect(),
        user_text: items.iter().filter(|i| i["role"] == "user").map(|i| text_of(&i["content"])).collect(),
        has_tool_result: items.iter().any(|i| i["type"] == "function_call_output"),
        last_tool_result: items.last().filter(|i| i["type"] == "function_call_output").map(|i| text_of(&i["output"])),
    };
    let (answer, outcome) = decide(&conversation, "openai");
    let input = tokens(size);
    let (item, output) = match &answer {
        Answer::Text(text) => (
            json!({ "id": "msg_fake_1", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{ "type": "output_text", "text": text, "annotations": [], "logprobs": [] }] }),
            tokens(text.len()),
        ),
        Answer::ToolCall { name, arguments } => (
            json!({ "id": "fc_fake_1", "type": "function_call", "status": "completed", "call_id": "call_fake_1",
                    "name": name, "arguments": arguments.to_string() }),
            12,
        ),
    };
    let usage = json!({ "input_tokens": input, "input_tokens_details": { "cached_tokens": 0 },
                        "output_tokens": output, "output_tokens_details": { "reasoning_tokens": 0 },
                        "total_tokens": input + output });
    let response = |status: &str, output: Value, usage: Value| {
        json!({ "id": "resp_fake_1", "object": "response", "created_at": 1_700_000_000, "status": status,
                "model": model, "output": output, "usage": usage, "error": null, "incomplete_details": null,
                "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "store": false })
    };
    if request["stream"].as_bool() != Some(true) {
        let body = response("completed", json!([item]), usage);
        return Ok(Answered { outcome, usage: (input, output), response: axum::Json(body).into_response() });
    }
    let mut seq = 0;
    let mut events = Vec::new();
    let mut event = |data: Value| {
        let mut data = data;
        data["sequence_number"] = json!(seq);
        seq += 1;
        events.push(format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap_or_default()));
    };
    event(json!({ "type": "response.created", "response": response("in_progress", json!([]), Value::Null) }));
    event(json!({ "type": "response.in_progress", "response": response("in_progress", json!([]), Value::Null) }));
    match &answer {
        Answer::Text(text) => {
            let mut open = item.clone();
            open["status"] = json!("in_progress");
            open["content"] = json!([]);
            event(json!({ "type": "response.output_item.added", "output_index": 0, "item": open }));
            let part = json!({ "type": "output_text", "text": "", "annotations": [], "logprobs": [] });
            event(json!({ "type": "response.content_part.added", "item_id": "msg_fake_1", "output_index": 0,
                          "content_index": 0, "part": part }));
            for piece in pieces(text) {
                event(json!({ "type": "response.output_text.delta", "item_id": "msg_fake_1", "output_index": 0,
                              "content_index": 0, "delta": piece, "logprobs": [] }));
            }
            event(json!({ "type": "response.output_text.done", "item_id": "msg_fake_1", "output_index": 0,
                          "content_index": 0, "text": text, "logprobs": [] }));
            event(json!({ "type": "response.content_part.done", "item_id": "msg_fake_1", "output_index": 0,
                          "content_index": 0, "part": item["content"][0] }));
        }
        Answer::ToolCall { arguments, .. } => {
            let mut open = item.clone();
            open["status"] = json!("in_progress");
            open["arguments"] = json!("");
            event(json!({ "type": "response.output_item.added", "output_index": 0, "item": open }));
            event(json!({ "type": "response.function_call_arguments.delta", "item_id": "fc_fake_1", "output_index": 0,
                          "delta": arguments.to_string() }));
            event(json!({ "type": "response.function_call_arguments.done", "item_id": "fc_fake_1", "output_index": 0,
                          "arguments": arguments.to_string() }));
        }
    }
    event(json!({ "type": "response.output_item.done", "output_index": 0, "item": item }));
    event(json!({ "type": "response.completed", "response": response("completed", json!([item]), usage) }));
    Ok(Answered { outcome, usage: (input, output), response: sse(events) })
}

// ---- Anthropic Messages ------------------------------------------------------------------------

fn messages(headers: &HeaderMap, request: &Value, size: usize) -> Result<Answered, Refusal> {
    if headers.get("x-api-key").is_none() && headers.get(header::AUTHORIZATION).is_none() {
        return Err((401, anthropic_error(401, "authentication_error", "x-api-key header is required")));
    }
    if headers.get("anthropic-version").is_none() {
        return Err((400, anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")));
    }
    let model = request["model"].as_str().unwrap_or_default().to_string();
    let Some(max_tokens) = request["max_tokens"].as_i64() else {
        return Err((400, anthropic_error(400, "invalid_request_error", "max_tokens: Field required")));
    };
    if let Some(limit) = output_limit(&model)
        && max_tokens > limit
    {
        let message = format!(
            "max_tokens: {max_tokens} > {limit}, which is the maximum allowed number of output tokens for {model}"
        );
        return Err((400, anthropic_error(400, "invalid_request_error", &message)));
    }
    let Some(turns) = request["messages"].as_array() else {
        return Err((400, anthropic_error(400, "invalid_request_error", "messages: Field required")));
    };
    let betas = headers.get_all("anthropic-beta").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    let system_allowed = betas.split(',').any(|b| b.trim() == MID_CONVERSATION_SYSTEM_BETA);
    for (i, turn) in turns.iter().enumerate() {
        match turn["role"].as_str() {
            Some("user" | "assistant") => {}
            Some("system") if system_allowed => {}
            role => {
                let message = format!("messages.{i}.role: Input should be 'user' or 'assistant' (got {role:?})");
                return Err((400, anthropic_error(400, "invalid_request_error", &message)));
            }
        }
    }
    let blocks = |turn: &Value| -> Vec<Value> {
        match &turn["content"] {
            Value::String(s) => vec![json!({ "type": "text", "text": s })],
            Value::Array(b) => b.clone(),
            _ => Vec::new(),
        }
    };
    let tool_result_text = |turn: &Value| {
        blocks(turn).iter().filter(|b| b["type"] == "tool_result").map(|b| text_of(&b["content"])).next()
    };
    let conversation = Conversation {
        tools: request["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect(),
        user_text: turns
            .iter()
            .filter(|t| t["role"] == "user")
            .flat_map(blocks)
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str().map(str::to_string))
            .collect(),
        has_tool_result: turns.iter().any(|t| tool_result_text(t).is_some()),
        last_tool_result: turns.last().filter(|t| t["role"] == "user").and_then(tool_result_text),
    };
    let (answer, outcome) = decide(&conversation, "anthropic");
    let input = tokens(size);
    let (content, output, stop) = match &answer {
        Answer::Text(text) => (json!({ "type": "text", "text": text }), tokens(text.len()), "end_turn"),
        Answer::ToolCall { name, arguments } => {
            (json!({ "type": "tool_use", "id": "toolu_fake_1", "name": name, "input": arguments }), 12, "tool_use")
        }
    };
    let usage = json!({ "input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0, "service_tier": "standard" });
    if request["stream"].as_bool() != Some(true) {
        let body = json!({ "id": "msg_fake_1", "type": "message", "role": "assistant", "model": model,
                           "content": [content], "stop_reason": stop, "stop_sequence": null, "usage": usage });
        return Ok(Answered { outcome, usage: (input, output), response: axum::Json(body).into_response() });
    }
    let event = |data: Value| format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap_or_default());
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![event(json!({ "type": "message_start", "message": {
        "id": "msg_fake_1", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null, "usage": start_usage } }))];
    match &answer {
        Answer::Text(text) => {
            events.push(event(
                json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
            ));
            events.push(event(json!({ "type": "ping" })));
            for piece in pieces(text) {
                events.push(event(json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": piece } })));
            }
        }
        Answer::ToolCall { name, arguments } => {
            let block = json!({ "type": "tool_use", "id": "toolu_fake_1", "name": name, "input": {} });
            events.push(event(json!({ "type": "content_block_start", "index": 0, "content_block": block })));
            events.push(event(json!({ "type": "ping" })));
            let args = arguments.to_string();
            let (a, b) = args.split_at(args.len() / 2);
            for part in ["", a, b] {
                events.push(event(json!({ "type": "content_block_delta", "index": 0,
                                          "delta": { "type": "input_json_delta", "partial_json": part } })));
            }
        }
    }
    events.push(event(json!({ "type": "content_block_stop", "index": 0 })));
    // Like Anthropic's API today, the closing usage repeats the input count (clients such as
    // LangChain Python read only this one; LangChain.js reads `message_start`'s).
    let end_usage = json!({ "input_tokens": input, "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0, "output_tokens": output });
    events.push(event(json!({ "type": "message_delta", "delta": { "stop_reason": stop, "stop_sequence": null },
                              "usage": end_usage })));
    events.push(event(json!({ "type": "message_stop" })));
    Ok(Answered { outcome, usage: (input, output), response: sse(events) })
}

// ---- Gemini ------------------------------------------------------------------------------------

/// The keys of Gemini's `Schema` (its OpenAPI subset); anything else in `parameters` is refused.
const GEMINI_SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// The first field of `schema` outside Gemini's subset, with the path Gemini names.
fn unknown_schema_field(schema: &Value, at: &str) -> Option<(String, String)> {
    let object = schema.as_object()?;
    for (key, value) in object {
        if !GEMINI_SCHEMA_KEYS.contains(&key.as_str()) {
            return Some((key.clone(), at.to_string()));
        }
        if key == "type" && !value.is_string() {
            return Some((key.clone(), at.to_string()));
        }
    }
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (i, (_, property)) in properties.iter().enumerate() {
            if let Some(found) = unknown_schema_field(property, &format!("{at}.properties[{i}].value")) {
                return Some(found);
            }
        }
    }
    if let Some(found) = object.get("items").and_then(|items| unknown_schema_field(items, &format!("{at}.items"))) {
        return Some(found);
    }
    for (i, variant) in object.get("anyOf").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if let Some(found) = unknown_schema_field(variant, &format!("{at}.any_of[{i}]")) {
            return Some(found);
        }
    }
    None
}

fn gemini(
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    request: &Value,
    size: usize,
) -> Result<Answered, Refusal> {
    let method = path.trim_start_matches("/v1beta/models/");
    let (model, stream) = match method.rsplit_once(':') {
        Some((model, "generateContent")) => (model.to_string(), false),
        Some((model, "streamGenerateContent")) if query.is_some_and(|q| q.split('&').any(|p| p == "alt=sse")) => {
            (model.to_string(), true)
        }
        _ => return Err((404, gemini_error(404, &format!("Method not found: {method}")))),
    };
    let has_key = headers.get("x-goog-api-key").is_some() || query.is_some_and(|q| q.contains("key="));
    if !has_key {
        return Err((
            401,
            gemini_error(
                401,
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            ),
        ));
    }
    if let (Some(asked), Some(limit)) = (request["generationConfig"]["maxOutputTokens"].as_i64(), output_limit(&model))
        && asked > limit
    {
        let message = format!(
            "Unable to submit request because it has a maxOutputTokens value of {asked} but the supported range is from 1 (inclusive) to {} (exclusive). Update the value and try again.",
            limit + 1
        );
        return Err((400, gemini_error(400, &message)));
    }
    let mut tools = Vec::new();
    for (t, tool) in request["tools"].as_array().into_iter().flatten().enumerate() {
        let declarations = tool.get("functionDeclarations").or_else(|| tool.get("function_declarations"));
        for (d, declaration) in declarations.and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("tools[{t}].function_declarations[{d}]");
            let parameters = declaration.get("parameters");
            let json_schema =
                declaration.get("parametersJsonSchema").or_else(|| declaration.get("parameters_json_schema"));
            if parameters.is_some() && json_schema.is_some() {
                let message = format!(
                    "* GenerateContentRequest.{at}: parameters and parameters_json_schema cannot both be set\n"
                );
                return Err((400, gemini_error(400, &message)));
            }
            if let Some((field, at)) = parameters.and_then(|p| unknown_schema_field(p, &format!("{at}.parameters"))) {
                let message =
                    format!("Invalid JSON payload received. Unknown name \"{field}\" at '{at}': Cannot find field.");
                return Err((400, gemini_error(400, &message)));
            }
            tools.extend(declaration["name"].as_str().map(str::to_string));
        }
    }
    let Some(contents) = request["contents"].as_array().filter(|c| !c.is_empty()) else {
        return Err((400, gemini_error(400, "* GenerateContentRequest.contents: contents is not specified\n")));
    };
    let parts = |content: &Value| content["parts"].as_array().cloned().unwrap_or_default();
    let response_of = |content: &Value| {
        parts(content).iter().find_map(|p| p.get("functionResponse").map(|r| r["response"].to_string()))
    };
    let conversation = Conversation {
        tools,
        user_text: contents
            .iter()
            .filter(|c| c["role"] != "model")
            .flat_map(parts)
            .filter_map(|p| p["text"].as_str().map(str::to_string))
            .collect(),
        has_tool_result: contents.iter().any(|c| response_of(c).is_some()),
        last_tool_result: contents.last().and_then(response_of),
    };
    let (answer, outcome) = decide(&conversation, "gemini");
    let input = tokens(size);
    let (output, finished_parts) = match &answer {
        Answer::Text(text) => (tokens(text.len()), vec![json!({ "text": text })]),
        Answer::ToolCall { name, arguments } => {
            (12, vec![json!({ "functionCall": { "name": name, "args": arguments } })])
        }
    };
    let usage = |output: i64| {
        json!({ "promptTokenCount": input, "candidatesTokenCount": output, "totalTokenCount": input + output,
                "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": input }] })
    };
    let candidate = |parts: Vec<Value>, finish: Option<&str>| {
        let mut c = json!({ "content": { "parts": parts, "role": "model" }, "index": 0 });
        if let Some(finish) = finish {
            c["finishReason"] = json!(finish);
        }
        c
    };
    if !stream {
        let body = json!({ "candidates": [candidate(finished_parts, Some("STOP"))], "usageMetadata": usage(output),
                           "modelVersion": model, "responseId": "fake-gemini-1" });
        return Ok(Answered { outcome, usage: (input, output), response: axum::Json(body).into_response() });
    }
    let mut events = Vec::new();
    let chunk = |parts: Vec<Value>, finish: Option<&str>, out: i64| {
        let body = json!({ "candidates": [candidate(parts, finish)], "usageMetadata": usage(out),
                           "modelVersion": model, "responseId": "fake-gemini-1" });
        format!("data: {body}\r\n\r\n")
    };
    match &answer {
        Answer::Text(text) => {
            let all = pieces(text);
            let last = all.len() - 1;
            for (i, piece) in all.into_iter().enumerate() {
                let finish = (i == last).then_some("STOP");
                events.push(chunk(vec![json!({ "text": piece })], finish, if i == last { output } else { 0 }));
            }
        }
        Answer::ToolCall { .. } => events.push(chunk(finished_parts, Some("STOP"), output)),
    }
    Ok(Answered { outcome, usage: (input, output), response: sse(events) })
}

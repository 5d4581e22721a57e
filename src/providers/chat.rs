//! OpenAI's Chat Completions shapes, typed, for the adapters that convert them to and from other
//! protocols. (Same-protocol requests never go through these: they pass through as bytes.)

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::capabilities::Capabilities;

/// A chat completion request, as much of it as conversions use.
#[derive(Debug, Default, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub n: Option<i64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    #[serde(default)]
    pub response_format: Option<Value>,
}

impl ChatRequest {
    pub fn max_output(&self) -> Option<i64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The request made to fit what the target model can do (`caps`): the output cap lowered to
    /// its limit, a reasoning effort dropped for a model known not to reason, and a clear refusal
    /// for tools or images a model is known not to take. Unknown capabilities change nothing.
    pub fn fit(&mut self, caps: &Capabilities) -> Result<(), String> {
        // Audio parts never get this far: the converting providers refuse them as parts they
        // cannot carry.
        let needs = Needs {
            tools: self.tools.as_ref().is_some_and(|t| !t.is_empty()),
            images: self.has_images(),
            audio: false,
        };
        refuse_unsupported(caps, needs)?;
        self.max_tokens = self.max_tokens.map(|n| caps.clamp_output(n));
        self.max_completion_tokens = self.max_completion_tokens.map(|n| caps.clamp_output(n));
        if caps.reasoning == Some(false) {
            self.reasoning_effort = None;
        }
        Ok(())
    }

    fn has_images(&self) -> bool {
        self.messages.iter().any(|m| {
            matches!(&m.content, Some(Content::Parts(parts)) if parts.iter().any(|p| matches!(p, Part::ImageUrl { .. })))
        })
    }

    /// Parses a chat request for a converting provider, which answers one choice per request.
    pub fn parse_single_choice(body: &[u8]) -> Result<Self, String> {
        let request: Self = serde_json::from_slice(body).map_err(|e| format!("Invalid chat request: {e}"))?;
        if request.n.is_some_and(|n| n > 1) {
            return Err("This model's provider returns one choice per request: `n` must be 1.".into());
        }
        Ok(request)
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl Content {
    /// The text of the content (text parts joined by newlines; other parts left out).
    pub fn into_text(self) -> String {
        match self {
            Content::Text(text) => text,
            Content::Parts(parts) => parts
                .into_iter()
                .filter_map(|p| match p {
                    Part::Text { text } => Some(text),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    /// Audio, files and parts not known here: refused by the adapters that cannot carry them.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

impl ToolCall {
    /// The call's arguments as a JSON value (`{}` when empty); a message for a 400 when they are
    /// not JSON.
    pub fn arguments_json(&self) -> Result<Value, String> {
        if self.function.arguments.trim().is_empty() {
            return Ok(serde_json::json!({}));
        }
        serde_json::from_str(&self.function.arguments)
            .map_err(|_| format!("The arguments of tool call {} are not valid JSON.", self.id))
    }
}

/// Appends a turn of `parts` (under `parts_key`) to JSON `turns`, merged into the previous turn
/// when it has the same role (these upstreams want roles to alternate); empty text parts and
/// turns left empty are dropped.
pub fn push_turn(turns: &mut Vec<Value>, role: &str, parts: Vec<Value>, parts_key: &str) {
    let parts: Vec<Value> = parts.into_iter().filter(|p| p.get("text") != Some(&serde_json::json!(""))).collect();
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last["role"] == role => {
            if let Some(existing) = last[parts_key].as_array_mut() {
                existing.extend(parts);
            }
        }
        _ => turns.push(serde_json::json!({ "role": role, parts_key: parts })),
    }
}

fn function_type() -> String {
    "function".into()
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct FunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Deserialize)]
pub struct Tool {
    pub function: FunctionDef,
}

#[derive(Debug, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// What a request asks of a model beyond text.
#[derive(Clone, Copy, Debug, Default)]
pub struct Needs {
    pub tools: bool,
    pub images: bool,
    pub audio: bool,
}

/// The refusal for a request with tools, images or audio sent to a model known not to take them.
pub fn refuse_unsupported(caps: &Capabilities, needs: Needs) -> Result<(), String> {
    if needs.tools && caps.refuses_tools() {
        return Err("This model does not support tools (function calling).".into());
    }
    if needs.images && caps.refuses_images() {
        return Err("This model does not support image input.".into());
    }
    if needs.audio && caps.refuses_audio() {
        return Err("This model does not support audio input.".into());
    }
    Ok(())
}

/// The longest end-user id OpenAI's `user` field takes.
pub const OPENAI_USER_MAX: usize = 64;
/// The longest `metadata.user_id` Anthropic takes.
pub const ANTHROPIC_USER_MAX: usize = 256;

/// An end-user id that fits in `max` characters: itself when it does, else the hex SHA-256 of it
/// (the same id always becomes the same hash, so the provider's abuse tracking still tells users
/// apart), cut to `max`.
pub fn fitted_user_id(user: &str, max: usize) -> std::borrow::Cow<'_, str> {
    use sha2::Digest;
    if user.chars().count() <= max {
        return std::borrow::Cow::Borrowed(user);
    }
    let mut hashed = hex::encode(sha2::Sha256::digest(user.as_bytes()));
    hashed.truncate(max);
    std::borrow::Cow::Owned(hashed)
}

/// A data URL's media type and base64 payload (`data:image/png;base64,…`).
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// Token usage in OpenAI's response shape, from normalised usage.
pub fn usage_json(usage: &crate::domain::pricing::Usage) -> Value {
    serde_json::json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens.saturating_add(usage.completion_tokens),
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "completion_tokens_details": { "reasoning_tokens": usage.reasoning_tokens },
    })
}

/// Writes the OpenAI chat completion chunks of one converted stream: the same id, model and
/// creation time on every chunk, and the stream's close (the usage chunk when the client asked
/// for it, then `[DONE]`).
pub struct ChunkWriter {
    pub id: String,
    model: String,
    created: i64,
    include_usage: bool,
}

impl ChunkWriter {
    pub fn new(id: &str, model: &str, created: i64, include_usage: bool) -> Self {
        Self { id: id.to_string(), model: model.to_string(), created, include_usage }
    }

    /// One chunk with this delta and finish reason.
    pub fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        let choices =
            serde_json::json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }]);
        self.event(choices, None)
    }

    /// The end of the stream: the usage-only chunk (when asked for) and `[DONE]`.
    pub fn close(&self, usage: &crate::domain::pricing::Usage, out: &mut Vec<Bytes>) {
        if self.include_usage {
            out.push(self.event(serde_json::json!([]), Some(usage_json(usage))));
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }

    fn event(&self, choices: Value, usage: Option<Value>) -> Bytes {
        let mut chunk = serde_json::json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        Bytes::from(format!("data: {chunk}\n\n"))
    }
}

/// A final OpenAI error event for a converted stream that failed upstream.
pub fn error_chunk(message: &str) -> Bytes {
    let body = serde_json::json!({
        "error": { "message": message, "type": "upstream_error", "param": null, "code": "upstream_error" }
    });
    Bytes::from(format!("data: {body}\n\n"))
}

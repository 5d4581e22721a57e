//! Anthropic's Messages API as an upstream for OpenAI chat completions: the request conversion,
//! the response conversion, and the incremental stream conversion (each Anthropic event becomes
//! OpenAI chunks as it arrives). Pure functions over typed shapes; the relay does the I/O.
//!
//! Wire reference: <https://docs.anthropic.com/en/api/messages> and
//! <https://docs.anthropic.com/en/api/messages-streaming>.

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::chat::{self, ChatMessage, ChatRequest, Content, Part};
use super::{ChatAdapter, Convert, StreamConverter, Upstream};
use crate::domain::capabilities::Capabilities;
use crate::domain::pricing::Usage;
use crate::domain::tokenizer::Tally;

/// The API version the adapter speaks.
pub const VERSION: &str = "2023-06-01";
/// The path appended to the channel's base URL (`https://api.anthropic.com`).
pub const MESSAGES_PATH: &str = "/v1/messages";

/// A Messages call carrying `payload`. A passed-through request (`client` holds its headers)
/// keeps the client's `anthropic-version` and `anthropic-beta`; a converted one speaks [`VERSION`].
pub fn post(to: &Upstream<'_>, payload: Bytes, client: Option<&HeaderMap>) -> reqwest::RequestBuilder {
    let version = client.and_then(|h| h.get("anthropic-version")).cloned();
    let mut builder = to
        .http
        .post(format!("{}{MESSAGES_PATH}", to.base_url))
        .header("x-api-key", to.key)
        .header("anthropic-version", version.unwrap_or(HeaderValue::from_static(VERSION)))
        .header(CONTENT_TYPE, "application/json")
        .body(payload);
    if let Some(beta) = client.and_then(|h| h.get("anthropic-beta")) {
        builder = builder.header("anthropic-beta", beta.clone());
    }
    builder
}

/// Anthropic as a converting upstream for OpenAI chat (it fetches image URLs itself).
pub static CHAT: ChatAdapter = ChatAdapter {
    inline_images: false,
    from_chat: chat_payload,
    post: chat_post,
    stream: chat_stream,
    to_chat: chat_answer,
};

fn chat_payload(body: &[u8], convert: &Convert<'_>) -> Result<Bytes, String> {
    let request = from_chat(body, convert.model, convert.default_max_tokens, convert.caps)?;
    serde_json::to_vec(&request).map(Bytes::from).map_err(|e| e.to_string())
}

fn chat_post(
    to: &Upstream<'_>,
    _model: &str,
    _stream: bool,
    payload: Bytes,
) -> Result<reqwest::RequestBuilder, String> {
    Ok(post(to, payload, None))
}

fn chat_stream(model: &str, created: i64, include_usage: bool) -> StreamConverter {
    StreamConverter::AnthropicToChat(ChatStream::new(model, created, include_usage))
}

fn chat_answer(body: &[u8], model: &str, created: i64) -> Result<(Bytes, Option<Usage>), serde_json::Error> {
    to_chat(body, model, created).map(|(chat, usage)| (chat, Some(usage)))
}

#[derive(Debug, Serialize)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: i64,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: Vec<Block>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: ToolResultContent,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    #[serde(other)]
    Other,
}

/// A tool result's content: a string, or blocks (text and images).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<Block>),
}

impl Default for ToolResultContent {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

impl ToolResultContent {
    /// The text of the result (text blocks joined).
    pub fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Blocks(blocks) => blocks
                .iter()
                .filter_map(|b| match b {
                    Block::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Serialize)]
pub struct ToolDef {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
}

/// Token usage as Anthropic reports it: `input_tokens` excludes the cached prompt.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<i64>,
    #[serde(default)]
    pub output_tokens: Option<i64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<i64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<i64>,
}

impl WireUsage {
    /// Later reports (`message_delta`) update only the figures they carry.
    fn merge(&mut self, later: WireUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later.cache_read_input_tokens.or(self.cache_read_input_tokens);
    }

    pub fn normalise(&self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: self.input_tokens.unwrap_or(0).saturating_add(read).saturating_add(write),
            completion_tokens: self.output_tokens.unwrap_or(0),
            cached_tokens: read,
            cache_write_tokens: write,
            ..Usage::default()
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct MessagesResponse {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub content: Vec<Block>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: WireUsage,
}

/// The usage in a (non-stream) Messages response.
pub fn response_usage(body: &[u8]) -> Result<Usage, serde_json::Error> {
    #[derive(Deserialize)]
    struct Holder {
        #[serde(default)]
        usage: WireUsage,
    }
    Ok(serde_json::from_slice::<Holder>(body)?.usage.normalise())
}

/// A Messages request passed through to an Anthropic channel: the model mapped and `max_tokens`
/// lowered to the model's limit, everything else as sent (fields in order, values byte for
/// byte). `None`: nothing to change.
pub fn fit_request(
    body: &[u8],
    peek: &super::openai::RequestPeek<'_>,
    model: Option<&str>,
    caps: &Capabilities,
) -> Result<Option<Bytes>, serde_json::Error> {
    use super::body::Edit;
    let mut edits = Vec::new();
    if let Some(model) = model {
        edits.push(Edit::set("model", model)?);
    }
    if let Some(max_tokens) = peek.max_tokens.filter(|n| caps.clamp_output(*n) != *n) {
        edits.push(Edit::set("max_tokens", caps.clamp_output(max_tokens))?);
    }
    if edits.is_empty() {
        return Ok(None);
    }
    super::body::edit(body, edits).map(Some)
}

/// Converts an OpenAI chat request to a Messages request for `model`. `Err` is a message for a
/// 400 (something the upstream cannot express).
pub fn from_chat(
    body: &[u8],
    model: &str,
    default_max_tokens: i64,
    caps: &Capabilities,
) -> Result<MessagesRequest, String> {
    let mut request = ChatRequest::parse_single_choice(body)?;
    request.fit(caps)?;
    let mut max_tokens = caps.clamp_output(request.max_output().unwrap_or(default_max_tokens).max(1));
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    for message in request.messages {
        let ChatMessage { role, content, tool_calls, tool_call_id } = message;
        let (role, blocks) = match role.as_str() {
            "system" | "developer" => {
                system.push(content.map(Content::into_text).unwrap_or_default());
                continue;
            }
            "user" => ("user", content.map(content_blocks).transpose()?.unwrap_or_default()),
            "assistant" => {
                let mut blocks = content.map(content_blocks).transpose()?.unwrap_or_default();
                for call in tool_calls.unwrap_or_default() {
                    let input = call.arguments_json()?;
                    blocks.push(Block::ToolUse { id: call.id, name: call.function.name, input });
                }
                ("assistant", blocks)
            }
            "tool" => {
                let tool_use_id = tool_call_id.ok_or("A tool message needs a tool_call_id.")?;
                let content = ToolResultContent::Text(content.map(Content::into_text).unwrap_or_default());
                ("user", vec![Block::ToolResult { tool_use_id, content }])
            }
            other => return Err(format!("Unsupported message role {other:?}.")),
        };
        let blocks: Vec<Block> =
            blocks.into_iter().filter(|b| !matches!(b, Block::Text { text } if text.is_empty())).collect();
        if blocks.is_empty() {
            continue;
        }
        // The Messages API wants user and assistant turns to alternate: merge neighbours.
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(Message { role: role.to_string(), content: blocks }),
        }
    }
    if messages.is_empty() {
        return Err("The request has no user or assistant message.".into());
    }
    let tools: Vec<ToolDef> = request
        .tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| ToolDef {
            name: t.function.name,
            description: t.function.description,
            input_schema: t.function.parameters.unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
        })
        .collect();
    let mut tool_choice = match request.tool_choice {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({ "type": "auto" })),
            "none" => Some(json!({ "type": "none" })),
            "required" => Some(json!({ "type": "any" })),
            _ => return Err(format!("Unsupported tool_choice {s:?}.")),
        },
        Some(Value::Object(o)) => {
            let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str);
            Some(json!({ "type": "tool", "name": name.ok_or("tool_choice.function.name is required.")? }))
        }
        Some(_) => return Err("Unsupported tool_choice.".into()),
    };
    if request.parallel_tool_calls == Some(false) && !tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| json!({ "type": "auto" }));
        choice["disable_parallel_tool_use"] = json!(true);
    }

    let thinking = match request.reasoning_effort.as_deref() {
        None | Some("none" | "minimal") => None,
        Some(effort) => {
            let budget = match effort {
                "low" => 1024,
                "medium" => 4096,
                _ => 16384,
            };
            // The budget counts within max_tokens and must leave room for the answer, within
            // the model's output limit; a limit too small for the minimum budget (1024) means
            // no thinking.
            max_tokens = caps.clamp_output(max_tokens.max(budget + 1024));
            let budget = budget.min(max_tokens - 1024);
            (budget >= 1024).then(|| json!({ "type": "enabled", "budget_tokens": budget }))
        }
    };
    Ok(MessagesRequest {
        model: model.to_string(),
        max_tokens,
        messages,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        stop_sequences: request.stop.map(chat::Stop::into_vec).unwrap_or_default(),
        // Anthropic refuses temperature and top_p together with thinking.
        temperature: request.temperature.filter(|_| thinking.is_none()),
        top_p: request.top_p.filter(|_| thinking.is_none()),
        tools,
        tool_choice,
        thinking,
        metadata: request.user.map(|user| json!({ "user_id": chat::fitted_user_id(&user, chat::ANTHROPIC_USER_MAX) })),
        stream: request.stream.unwrap_or(false),
    })
}

fn content_blocks(content: Content) -> Result<Vec<Block>, String> {
    match content {
        Content::Text(text) => Ok(vec![Block::Text { text }]),
        Content::Parts(parts) => parts
            .into_iter()
            .map(|part| match part {
                Part::Text { text } => Ok(Block::Text { text }),
                Part::ImageUrl { image_url } => Ok(Block::Image {
                    source: match chat::parse_data_url(&image_url.url) {
                        Some((media_type, data)) => {
                            ImageSource::Base64 { media_type: media_type.to_string(), data: data.to_string() }
                        }
                        None => ImageSource::Url { url: image_url.url },
                    },
                }),
                Part::Other => Err("This model's provider accepts text and image parts only.".to_string()),
            })
            .collect(),
    }
}

/// OpenAI's finish reason for an Anthropic stop reason.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Converts a Messages response to an OpenAI chat completion for `model` (the name the client
/// asked for), with its usage.
pub fn to_chat(body: &[u8], model: &str, created: i64) -> Result<(Bytes, Usage), serde_json::Error> {
    let response: MessagesResponse = serde_json::from_slice(body)?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::Thinking { thinking, .. } => reasoning.push_str(&thinking),
            Block::ToolUse { id, name, input } => tool_calls.push(json!({
                "id": id, "type": "function", "function": { "name": name, "arguments": input.to_string() }
            })),
            _ => {}
        }
    }
    let usage = response.usage.normalise();
    let mut message =
        json!({ "role": "assistant", "content": (!text.is_empty() || tool_calls.is_empty()).then_some(text) });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = Value::String(reasoning);
    }
    let completion = json!({
        "id": format!("chatcmpl-{}", response.id),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(response.stop_reason.as_deref()),
        }],
        "usage": chat::usage_json(&usage),
    });
    Ok((Bytes::from(completion.to_string()), usage))
}

/// Follows an Anthropic stream for billing: the usage it reports (`message_start`, then
/// `message_delta`) and the bytes of text generated, for an estimate when it reports none.
#[derive(Default)]
pub struct StreamUsage {
    usage: WireUsage,
    reported: bool,
    text: Tally,
}

impl StreamUsage {
    /// Records what one event's `data:` payload says; a passthrough stream needs nothing else.
    pub fn observe(&mut self, data: &[u8]) {
        if let Ok(event) = serde_json::from_slice::<Event>(data) {
            self.observe_event(&event);
        }
    }

    fn observe_event(&mut self, event: &Event) {
        let reported = match event.kind.as_str() {
            "message_start" => event.message.as_ref().and_then(|m| m.usage),
            "message_delta" => event.usage,
            _ => None,
        };
        if let Some(usage) = reported {
            self.usage.merge(usage);
            self.reported = true;
        }
        if let Some(delta) = &event.delta {
            let text = [&delta.text, &delta.partial_json, &delta.thinking];
            for piece in text.iter().filter_map(|t| t.as_ref()) {
                self.text.add(piece);
            }
        }
    }

    /// The usage reported so far, if any.
    pub fn usage(&self) -> Option<Usage> {
        self.reported.then(|| self.usage.normalise())
    }

    /// `o200k_base` tokens of the text generated so far (for an estimate).
    pub fn text_tokens(&self) -> i64 {
        self.text.tokens()
    }
}

/// Turns Anthropic stream events into OpenAI chat completion chunks, one event at a time.
pub struct ChatStream {
    writer: chat::ChunkWriter,
    pub usage: StreamUsage,
    /// For each content block index, its tool call index (tool_use blocks only).
    tool_index: Vec<Option<usize>>,
    tools: usize,
    finish: Option<&'static str>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default)]
    content_block: Option<Block>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

impl ChatStream {
    pub fn new(model: &str, created: i64, include_usage: bool) -> Self {
        Self {
            writer: chat::ChunkWriter::new("chatcmpl-", model, created, include_usage),
            usage: StreamUsage::default(),
            tool_index: Vec::new(),
            tools: 0,
            finish: None,
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        self.writer.chunk(delta, finish_reason)
    }

    /// Converts one upstream event (its `data:` payload) into client events, appended to `out`.
    pub fn convert(&mut self, data: &[u8], out: &mut Vec<Bytes>) {
        let Ok(event) = serde_json::from_slice::<Event>(data) else { return };
        self.usage.observe_event(&event);
        match event.kind.as_str() {
            "message_start" => {
                if let Some(message) = event.message {
                    self.writer.id = format!("chatcmpl-{}", message.id);
                }
                out.push(self.chunk(json!({ "role": "assistant", "content": "" }), None));
            }
            "content_block_start" => {
                let index = event.index.unwrap_or(self.tool_index.len());
                if self.tool_index.len() <= index {
                    self.tool_index.resize(index + 1, None);
                }
                if let Some(Block::ToolUse { id, name, .. }) = event.content_block {
                    let tool = self.tools;
                    self.tools += 1;
                    self.tool_index[index] = Some(tool);
                    let call = json!({ "index": tool, "id": id, "type": "function",
                                       "function": { "name": name, "arguments": "" } });
                    out.push(self.chunk(json!({ "tool_calls": [call] }), None));
                }
            }
            "content_block_delta" => {
                let Some(delta) = event.delta else { return };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        out.push(self.chunk(json!({ "content": delta.text.unwrap_or_default() }), None));
                    }
                    Some("thinking_delta") => {
                        out.push(self.chunk(json!({ "reasoning_content": delta.thinking.unwrap_or_default() }), None));
                    }
                    Some("input_json_delta") => {
                        let tool = event.index.and_then(|i| self.tool_index.get(i).copied().flatten());
                        if let Some(tool) = tool {
                            let call = json!({ "index": tool, "function": { "arguments": delta.partial_json.unwrap_or_default() } });
                            out.push(self.chunk(json!({ "tool_calls": [call] }), None));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = event.delta.and_then(|d| d.stop_reason) {
                    self.finish = Some(finish_reason(Some(&reason)));
                }
            }
            "message_stop" => {
                out.push(self.chunk(json!({}), Some(self.finish.unwrap_or("stop"))));
                self.writer.close(&self.usage.usage.normalise(), out);
            }
            "error" => {
                let error = event.error.unwrap_or(Value::Null);
                let message = error.get("message").and_then(Value::as_str).unwrap_or("The upstream stream failed.");
                out.push(chat::error_chunk(message));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_tools_and_tool_results_convert_and_turns_alternate() {
        let body = json!({
            "model": "claude", "max_tokens": 100, "stop": "END", "parallel_tool_calls": false,
            "messages": [
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": [{ "type": "text", "text": "weather?" },
                    { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } }] },
                { "role": "assistant", "content": null, "tool_calls": [
                    { "id": "t1", "type": "function", "function": { "name": "w", "arguments": "{\"c\":\"Paris\"}" } },
                    { "id": "t2", "type": "function", "function": { "name": "w", "arguments": "{\"c\":\"Rome\"}" } }] },
                { "role": "tool", "tool_call_id": "t1", "content": "sunny" },
                { "role": "tool", "tool_call_id": "t2", "content": "rain" },
            ],
            "tools": [{ "type": "function", "function": { "name": "w", "parameters": { "type": "object" } } }],
            "tool_choice": "required",
        });
        let request = from_chat(body.to_string().as_bytes(), "claude-x", 4096, &Capabilities::default()).unwrap();
        assert_eq!(request.system.as_deref(), Some("Be brief."));
        assert_eq!(request.stop_sequences, ["END"]);
        assert_eq!(request.tool_choice, Some(json!({ "type": "any", "disable_parallel_tool_use": true })));
        let roles: Vec<&str> = request.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(request.messages[2].content.len(), 2, "both tool results in one user turn");
        assert!(matches!(&request.messages[0].content[1], Block::Image { source: ImageSource::Base64 { .. } }));
    }

    #[test]
    fn refusals_are_messages_not_panics() {
        for body in [
            json!({ "model": "m", "messages": [] }),
            json!({ "model": "m", "n": 2, "messages": [{ "role": "user", "content": "x" }] }),
            json!({ "model": "m", "messages": [{ "role": "tool", "content": "x" }] }),
            json!({ "model": "m", "messages": [{ "role": "user", "content": "x" }], "tool_choice": 3 }),
        ] {
            assert!(from_chat(body.to_string().as_bytes(), "m", 10, &Capabilities::default()).is_err(), "{body}");
        }
        assert!(from_chat(b"not json", "m", 10, &Capabilities::default()).is_err());
    }

    #[test]
    fn absurd_usage_from_an_upstream_saturates_instead_of_overflowing() {
        let huge = WireUsage {
            input_tokens: Some(i64::MAX),
            output_tokens: Some(i64::MAX),
            cache_creation_input_tokens: Some(i64::MAX),
            cache_read_input_tokens: Some(1),
        };
        let usage = huge.normalise();
        assert_eq!(usage.prompt_tokens, i64::MAX);
        assert_eq!(chat::usage_json(&usage)["total_tokens"], i64::MAX);
    }

    #[test]
    fn usage_counts_the_cached_prompt_in_the_prompt() {
        let usage = WireUsage {
            input_tokens: Some(10),
            output_tokens: Some(5),
            cache_creation_input_tokens: Some(100),
            cache_read_input_tokens: Some(1000),
        };
        let n = usage.normalise();
        assert_eq!((n.prompt_tokens, n.cached_tokens, n.cache_write_tokens, n.completion_tokens), (1110, 1000, 100, 5));
    }
}

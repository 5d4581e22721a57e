//! Anthropic's Messages API in front of OpenAI-protocol channels: an Anthropic client's request
//! becomes a chat completion request, and the chat completion (or its chunks, one at a time)
//! becomes a Messages answer with Anthropic's exact event sequence.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::anthropic::{Block, ImageSource};
use super::chat;
use super::openai::WireUsage as OpenAiUsage;
use crate::domain::capabilities::Capabilities;
use crate::domain::pricing::Usage;
use crate::domain::tokenizer::Tally;

#[derive(Deserialize)]
struct MessagesIn {
    #[serde(default)]
    max_tokens: Option<i64>,
    messages: Vec<MessageIn>,
    #[serde(default)]
    system: Option<SystemIn>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    tools: Option<Vec<ToolIn>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    metadata: Option<Value>,
    /// Extended thinking (`{"type": "enabled", "budget_tokens": N}`, `adaptive`, `disabled`).
    #[serde(default)]
    thinking: Option<Value>,
    /// `{"effort": "low" | "medium" | "high" | …}`.
    #[serde(default)]
    output_config: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SystemIn {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Deserialize)]
struct MessageIn {
    role: String,
    content: ContentIn,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ContentIn {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Deserialize)]
struct ToolIn {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    input_schema: Option<Value>,
}

fn texts(blocks: &[Block]) -> String {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Converts a Messages request into a chat completion request for `model`, fitted to what the
/// model can do (`caps`: output cap clamped, reasoning hints mapped only for a reasoning model,
/// tools and images refused for a model known not to take them). `include_usage` asks a
/// streaming upstream for its usage (channels whose streams carry it anyway are not asked).
/// `Err` is a message for a 400.
pub fn to_chat(body: &[u8], model: &str, include_usage: bool, caps: &Capabilities) -> Result<Bytes, String> {
    let request: MessagesIn = serde_json::from_slice(body).map_err(|e| format!("Invalid Messages request: {e}"))?;
    let has_tools = request.tools.as_ref().is_some_and(|t| !t.is_empty());
    let has_images = request.messages.iter().any(
        |m| matches!(&m.content, ContentIn::Blocks(blocks) if blocks.iter().any(|b| matches!(b, Block::Image { .. }))),
    );
    chat::refuse_unsupported(caps, chat::Needs { tools: has_tools, images: has_images, audio: false })?;
    let mut messages = Vec::new();
    match request.system {
        Some(SystemIn::Text(text)) if !text.is_empty() => messages.push(json!({ "role": "system", "content": text })),
        Some(SystemIn::Blocks(blocks)) if !blocks.is_empty() => {
            messages.push(json!({ "role": "system", "content": texts(&blocks) }));
        }
        _ => {}
    }
    for message in request.messages {
        let blocks = match message.content {
            ContentIn::Text(text) => vec![Block::Text { text }],
            ContentIn::Blocks(blocks) => blocks,
        };
        match message.role.as_str() {
            "user" => user_messages(blocks, &mut messages),
            "assistant" => messages.push(assistant_message(blocks)),
            // A system turn inside the conversation (Claude Code sends one for models it does not
            // know, beta `mid-conversation-system-2026-04-07`) stays where it was said.
            "system" => messages.push(json!({ "role": "system", "content": texts(&blocks) })),
            other => return Err(format!("messages: unexpected role {other:?}.")),
        }
    }
    let mut chat = json!({ "model": model, "messages": messages });
    if let Some(max_tokens) = request.max_tokens {
        chat["max_tokens"] = json!(caps.clamp_output(max_tokens));
    }
    if caps.takes_reasoning()
        && let Some(effort) = reasoning_effort(request.thinking.as_ref(), request.output_config.as_ref())
    {
        chat["reasoning_effort"] = json!(effort);
    }
    if let Some(stop) = request.stop_sequences.filter(|s| !s.is_empty()) {
        chat["stop"] = json!(stop);
    }
    if let Some(t) = request.temperature {
        chat["temperature"] = json!(t);
    }
    if let Some(p) = request.top_p {
        chat["top_p"] = json!(p);
    }
    let tools: Vec<Value> = request
        .tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let parameters = t.input_schema.unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
            json!({ "type": "function", "function": { "name": t.name, "description": t.description, "parameters": parameters } })
        })
        .collect();
    if !tools.is_empty() {
        chat["tools"] = Value::Array(tools);
    }
    if let Some(choice) = request.tool_choice {
        let choice_type = choice.get("type").and_then(Value::as_str).unwrap_or("auto");
        chat["tool_choice"] = match choice_type {
            "any" => json!("required"),
            "none" => json!("none"),
            "tool" => {
                let name = choice.get("name").and_then(Value::as_str).ok_or("tool_choice.name is required.")?;
                json!({ "type": "function", "function": { "name": name } })
            }
            _ => json!("auto"),
        };
        if choice.get("disable_parallel_tool_use") == Some(&json!(true)) {
            chat["parallel_tool_calls"] = json!(false);
        }
    }
    if request.stream == Some(true) {
        chat["stream"] = json!(true);
        if include_usage {
            chat["stream_options"] = json!({ "include_usage": true });
        }
    }
    if let Some(user) = request.metadata.as_ref().and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        // Claude Code's ids run to ~150 characters; OpenAI-protocol upstreams take 64.
        chat["user"] = json!(chat::fitted_user_id(user, chat::OPENAI_USER_MAX));
    }
    serde_json::to_vec(&chat).map(Bytes::from).map_err(|e| e.to_string())
}

/// The OpenAI reasoning effort for Anthropic's hints: `output_config.effort` when thinking is
/// not switched off, else the thinking budget's size (`adaptive` thinking: medium).
fn reasoning_effort(thinking: Option<&Value>, output_config: Option<&Value>) -> Option<&'static str> {
    let kind = thinking.and_then(|t| t.get("type")).and_then(Value::as_str);
    if kind == Some("disabled") {
        return None;
    }
    if let Some(effort) = output_config.and_then(|c| c.get("effort")).and_then(Value::as_str) {
        return Some(match effort {
            "low" => "low",
            "medium" => "medium",
            _ => "high",
        });
    }
    match kind? {
        "enabled" => {
            let budget = thinking.and_then(|t| t.get("budget_tokens")).and_then(Value::as_i64).unwrap_or(0);
            Some(if budget <= 2048 {
                "low"
            } else if budget <= 8192 {
                "medium"
            } else {
                "high"
            })
        }
        "adaptive" => Some("medium"),
        _ => None,
    }
}

/// A user turn: its tool results become `tool` messages (which must follow the assistant's
/// calls), the rest one user message.
fn user_messages(blocks: Vec<Block>, out: &mut Vec<Value>) {
    let mut parts = Vec::new();
    for block in blocks {
        match block {
            Block::ToolResult { tool_use_id, content } => {
                out.push(json!({ "role": "tool", "tool_call_id": tool_use_id, "content": content.text() }));
            }
            Block::Text { text } => parts.push(json!({ "type": "text", "text": text })),
            Block::Image { source } => {
                let url = match source {
                    ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
                    ImageSource::Url { url } => url,
                };
                parts.push(json!({ "type": "image_url", "image_url": { "url": url } }));
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        return;
    }
    let only_text = parts.iter().all(|p| p["type"] == "text");
    let content = if only_text {
        Value::String(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"))
    } else {
        Value::Array(parts)
    };
    out.push(json!({ "role": "user", "content": content }));
}

fn assistant_message(blocks: Vec<Block>) -> Value {
    let text = texts(&blocks);
    let calls: Vec<Value> = blocks
        .into_iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, name, input } => Some(json!({
                "id": id, "type": "function", "function": { "name": name, "arguments": input.to_string() }
            })),
            _ => None,
        })
        .collect();
    let mut message = json!({ "role": "assistant", "content": (!text.is_empty()).then_some(text) });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}

/// Anthropic's stop reason for an OpenAI finish reason.
fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's `input_tokens`: the prompt without its cached part.
fn uncached_input(usage: &Usage) -> i64 {
    usage.prompt_tokens.saturating_sub(usage.cached_tokens).saturating_sub(usage.cache_write_tokens).max(0)
}

/// Anthropic's usage object for normalised usage (its `input_tokens` exclude the cached prompt).
fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": uncached_input(usage),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    })
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    id: String,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    delta: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<CallDelta>>,
}

#[derive(Deserialize)]
struct CallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Converts a chat completion into a Messages response for `model` (the client's name), with
/// the upstream's usage (`None` when it reported none).
pub fn from_chat(body: &[u8], model: &str) -> Result<(Bytes, Option<Usage>), serde_json::Error> {
    let completion: Completion = serde_json::from_slice(body)?;
    let usage = completion.usage.as_ref().map(OpenAiUsage::normalise);
    let choice = completion.choices.into_iter().next();
    let finish = choice.as_ref().and_then(|c| c.finish_reason.clone());
    let message = choice.and_then(|c| c.message).unwrap_or_default();
    let mut content = Vec::new();
    if let Some(thinking) = message.reasoning_content.filter(|t| !t.is_empty()) {
        content.push(json!({ "type": "thinking", "thinking": thinking, "signature": "" }));
    }
    if let Some(text) = message.content.filter(|t| !t.is_empty()) {
        content.push(json!({ "type": "text", "text": text }));
    }
    for call in message.tool_calls.unwrap_or_default() {
        let function = call.function.unwrap_or(FunctionDelta { name: None, arguments: None });
        let input: Value =
            function.arguments.as_deref().and_then(|a| serde_json::from_str(a).ok()).unwrap_or(json!({}));
        content.push(json!({ "type": "tool_use", "id": call.id.unwrap_or_default(), "name": function.name.unwrap_or_default(), "input": input }));
    }
    let answer = json!({
        "id": format!("msg_{}", completion.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish.as_deref()),
        "stop_sequence": null,
        "usage": usage_json(&usage.unwrap_or_default()),
    });
    Ok((Bytes::from(answer.to_string()), usage))
}

#[derive(Clone, Copy, PartialEq)]
enum Open {
    Text,
    Thinking,
    Tool,
}

/// Turns OpenAI chat completion chunks into Anthropic stream events, one chunk at a time.
pub struct MessagesStream {
    model: String,
    started: bool,
    ended: bool,
    /// The content block being streamed: its index and kind.
    open: Option<(usize, Open)>,
    next_index: usize,
    /// OpenAI tool call index → content block index.
    tools: Vec<(usize, usize)>,
    finish: Option<String>,
    usage: Option<Usage>,
    text: Tally,
    /// The prompt's tokens for `message_start` (which Anthropic fills with the real count, and
    /// clients such as LangChain read): the gateway's estimate, or the upstream's count when its
    /// first chunk carries one.
    input_tokens: i64,
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

impl MessagesStream {
    pub fn new(model: &str, input_tokens: i64) -> Self {
        Self {
            input_tokens,
            model: model.to_string(),
            started: false,
            ended: false,
            open: None,
            next_index: 0,
            tools: Vec::new(),
            finish: None,
            usage: None,
            text: Tally::default(),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// `o200k_base` tokens of the text generated so far (for an estimate).
    pub fn text_tokens(&self) -> i64 {
        self.text.tokens()
    }

    fn start(&mut self, id: &str, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": self.input_tokens, "output_tokens": 0 },
        });
        out.push(event("message_start", &json!({ "type": "message_start", "message": message })));
        out.push(event("ping", &json!({ "type": "ping" })));
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push(event("content_block_stop", &json!({ "type": "content_block_stop", "index": index })));
        }
    }

    /// Opens a block of `kind` unless one is open already; its index.
    fn open_block(&mut self, kind: Open, block: Value, out: &mut Vec<Bytes>) -> usize {
        if let Some((index, open)) = self.open
            && open == kind
            && kind != Open::Tool
        {
            return index;
        }
        self.close_block(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        let start = json!({ "type": "content_block_start", "index": index, "content_block": block });
        out.push(event("content_block_start", &start));
        index
    }

    fn delta(index: usize, delta: Value, out: &mut Vec<Bytes>) {
        out.push(event(
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": index, "delta": delta }),
        ));
    }

    /// Converts one upstream chunk (its `data:` payload) into client events, appended to `out`.
    pub fn convert(&mut self, data: &[u8], out: &mut Vec<Bytes>) {
        if data == b"[DONE]" {
            self.finish_stream(out);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Completion>(data) else { return };
        if let Some(usage) = &chunk.usage {
            let usage = usage.normalise();
            if !self.started && usage.prompt_tokens > 0 {
                self.input_tokens = uncached_input(&usage);
            }
            self.usage = Some(usage);
        }
        self.start(&chunk.id, out);
        let Some(choice) = chunk.choices.into_iter().next() else { return };
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(reason);
        }
        let delta = choice.delta.unwrap_or_default();
        if let Some(thinking) = delta.reasoning_content.filter(|t| !t.is_empty()) {
            self.text.add(&thinking);
            let index = self.open_block(Open::Thinking, json!({ "type": "thinking", "thinking": "" }), out);
            Self::delta(index, json!({ "type": "thinking_delta", "thinking": thinking }), out);
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            self.text.add(&text);
            let index = self.open_block(Open::Text, json!({ "type": "text", "text": "" }), out);
            Self::delta(index, json!({ "type": "text_delta", "text": text }), out);
        }
        for call in delta.tool_calls.unwrap_or_default() {
            let tool = call.index.unwrap_or(0);
            let function = call.function.unwrap_or(FunctionDelta { name: None, arguments: None });
            let known = self.tools.iter().find(|(t, _)| *t == tool).map(|(_, b)| *b);
            let index = match (known, call.id) {
                (Some(index), None) => index,
                (_, id) => {
                    let block = json!({ "type": "tool_use", "id": id.unwrap_or_default(),
                                        "name": function.name.clone().unwrap_or_default(), "input": {} });
                    let index = self.open_block(Open::Tool, block, out);
                    self.tools.push((tool, index));
                    index
                }
            };
            if let Some(arguments) = function.arguments.filter(|a| !a.is_empty()) {
                self.text.add(&arguments);
                Self::delta(index, json!({ "type": "input_json_delta", "partial_json": arguments }), out);
            }
        }
    }

    /// The upstream finished: close the open block and send `message_delta` and `message_stop`.
    pub fn finish_stream(&mut self, out: &mut Vec<Bytes>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.start("", out);
        self.close_block(out);
        let usage = usage_json(&self.usage.unwrap_or_default());
        let delta = json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null },
            "usage": usage,
        });
        out.push(event("message_delta", &delta));
        out.push(event("message_stop", &json!({ "type": "message_stop" })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_become_tool_messages_after_the_calls() {
        let body = json!({
            "model": "m", "max_tokens": 10, "system": [{ "type": "text", "text": "Be brief." }],
            "messages": [
                { "role": "user", "content": "weather?" },
                { "role": "assistant", "content": [{ "type": "tool_use", "id": "t1", "name": "w", "input": { "c": "Paris" } }] },
                { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "t1", "content": [{ "type": "text", "text": "sunny" }] },
                                              { "type": "text", "text": "and tomorrow?" }] },
            ],
            "tool_choice": { "type": "any", "disable_parallel_tool_use": true },
        });
        let chat: Value = serde_json::from_slice(
            &to_chat(body.to_string().as_bytes(), "gpt", true, &Capabilities::default()).unwrap(),
        )
        .unwrap();
        let roles: Vec<&str> =
            chat["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
        assert_eq!(chat["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"c\":\"Paris\"}");
        assert_eq!(chat["messages"][3]["content"], "sunny");
        assert_eq!(
            (chat["tool_choice"].as_str(), chat["parallel_tool_calls"].as_bool()),
            (Some("required"), Some(false))
        );
    }

    #[test]
    fn claude_code_requests_fit_a_non_claude_model() {
        let user_id = format!("user_{}_account__session_{}", "a".repeat(64), "b".repeat(36));
        let body = json!({
            "model": "m", "max_tokens": 32000, "metadata": { "user_id": user_id },
            "thinking": { "type": "enabled", "budget_tokens": 31999 },
            "messages": [
                { "role": "user", "content": "hi" },
                { "role": "system", "content": [{ "type": "text", "text": "Mind the tools." }] },
                { "role": "assistant", "content": "ok" },
            ],
        });
        let fit = |caps: &Capabilities| -> Value {
            serde_json::from_slice(&to_chat(body.to_string().as_bytes(), "up", true, caps).unwrap()).unwrap()
        };
        let reasoning =
            Capabilities { max_output_tokens: Some(8192), reasoning: Some(true), ..Capabilities::default() };
        let chat = fit(&reasoning);
        let roles: Vec<&str> =
            chat["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "system", "assistant"]);
        assert_eq!(chat["messages"][1]["content"], "Mind the tools.");
        assert_eq!((chat["max_tokens"].as_i64(), chat["reasoning_effort"].as_str()), (Some(8192), Some("high")));
        let user = chat["user"].as_str().unwrap();
        assert_eq!(user.len(), 64);
        assert_eq!(user, fit(&reasoning)["user"].as_str().unwrap(), "the same id hashes the same");
        // Unknown or non-reasoning models: no hint, no clamp.
        let plain = fit(&Capabilities::default());
        assert_eq!((plain["max_tokens"].as_i64(), plain.get("reasoning_effort")), (Some(32000), None));
        let effort = json!({ "model": "m", "max_tokens": 5, "output_config": { "effort": "low" },
                             "messages": [{ "role": "user", "content": "x" }] });
        let chat: Value =
            serde_json::from_slice(&to_chat(effort.to_string().as_bytes(), "up", true, &reasoning).unwrap()).unwrap();
        assert_eq!(chat["reasoning_effort"], "low");
        let tools = json!({ "model": "m", "max_tokens": 5, "messages": [{ "role": "user", "content": "x" }],
                            "tools": [{ "name": "t", "input_schema": { "type": "object" } }] });
        let no_tools = Capabilities { tools: Some(false), ..Capabilities::default() };
        assert!(to_chat(tools.to_string().as_bytes(), "up", true, &no_tools).unwrap_err().contains("tools"));
    }

    #[test]
    fn message_start_carries_the_prompt_estimate_or_the_upstream_count() {
        let start = |first_chunk: Value| {
            let mut stream = MessagesStream::new("claude", 42);
            let mut out = Vec::new();
            stream.convert(first_chunk.to_string().as_bytes(), &mut out);
            let data =
                String::from_utf8_lossy(&out[0]).lines().nth(1).unwrap().trim_start_matches("data: ").to_string();
            serde_json::from_str::<Value>(&data).unwrap()["message"]["usage"]["input_tokens"].as_i64()
        };
        assert_eq!(start(json!({ "id": "1", "choices": [{ "delta": { "content": "a" } }] })), Some(42));
        let counted = json!({ "id": "1", "choices": [], "usage": { "prompt_tokens": 7, "completion_tokens": 0 } });
        assert_eq!(start(counted), Some(7));
    }

    #[test]
    fn chunks_become_the_documented_event_sequence() {
        let mut stream = MessagesStream::new("claude", 12);
        let mut out = Vec::new();
        for chunk in [
            json!({ "id": "1", "choices": [{ "index": 0, "delta": { "role": "assistant", "content": "Hel" } }] }),
            json!({ "id": "1", "choices": [{ "index": 0, "delta": { "content": "lo" } }] }),
            json!({ "id": "1", "choices": [{ "index": 0, "delta": { "tool_calls": [{ "index": 0, "id": "c1", "function": { "name": "w", "arguments": "" } }] } }] }),
            json!({ "id": "1", "choices": [{ "index": 0, "delta": { "tool_calls": [{ "index": 0, "function": { "arguments": "{}" } }] } }] }),
            json!({ "id": "1", "choices": [{ "index": 0, "delta": {}, "finish_reason": "tool_calls" }] }),
            json!({ "id": "1", "choices": [], "usage": { "prompt_tokens": 7, "completion_tokens": 3 } }),
        ] {
            stream.convert(chunk.to_string().as_bytes(), &mut out);
        }
        stream.convert(b"[DONE]", &mut out);
        let names: Vec<String> = out
            .iter()
            .map(|e| String::from_utf8_lossy(e).lines().next().unwrap().trim_start_matches("event: ").to_string())
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(String::from_utf8_lossy(&out[9]).contains("\"stop_reason\":\"tool_use\""));
        assert_eq!(stream.usage().map(|u| u.completion_tokens), Some(3));
    }
}

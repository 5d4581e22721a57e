//! Google's Gemini API (AI Studio, `generateContent`) as an upstream for OpenAI chat completions:
//! request and response conversion, and the incremental stream conversion
//! (`streamGenerateContent?alt=sse`, each event a partial response).
//!
//! Wire reference: <https://ai.google.dev/api/generate-content>.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::chat::{self, ChatMessage, ChatRequest, Content, Part};
use super::{ChatAdapter, Convert, StreamConverter, Upstream};
use crate::domain::capabilities::Capabilities;
use crate::domain::pricing::Usage;
use crate::domain::tokenizer::Tally;

/// The path of a model's method under the channel's base URL
/// (`https://generativelanguage.googleapis.com`).
pub fn method_path(model: &str, stream: bool) -> String {
    if stream {
        format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/models/{model}:generateContent")
    }
}

/// A `generateContent` (or, streaming, `streamGenerateContent`) call for `model`.
pub fn post(to: &Upstream<'_>, model: &str, stream: bool, payload: Bytes) -> reqwest::RequestBuilder {
    to.http
        .post(format!("{}{}", to.base_url, method_path(model, stream)))
        .header("x-goog-api-key", to.key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload)
}

/// A `batchEmbedContents` call for the embedding `model`.
pub fn post_embeddings(to: &Upstream<'_>, model: &str, payload: Bytes) -> reqwest::RequestBuilder {
    to.http
        .post(format!("{}/v1beta/models/{model}:batchEmbedContents", to.base_url))
        .header("x-goog-api-key", to.key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload)
}

/// Gemini as a converting upstream for OpenAI chat (images inline only).
pub static CHAT: ChatAdapter =
    ChatAdapter { inline_images: true, from_chat: chat_payload, post: chat_post, stream: chat_stream, to_chat };

fn chat_payload(body: &[u8], convert: &Convert<'_>) -> Result<Bytes, String> {
    from_chat(body, convert.caps)
}

fn chat_post(to: &Upstream<'_>, model: &str, stream: bool, payload: Bytes) -> Result<reqwest::RequestBuilder, String> {
    Ok(post(to, model, stream, payload))
}

fn chat_stream(model: &str, created: i64, include_usage: bool) -> StreamConverter {
    StreamConverter::GeminiToChat(ChatStream::new(model, created, include_usage))
}

/// Converts an OpenAI chat request into a `generateContent` body. `Err` is a message for a 400.
pub fn from_chat(body: &[u8], caps: &Capabilities) -> Result<Bytes, String> {
    let mut request = ChatRequest::parse_single_choice(body)?;
    request.fit(caps)?;
    let max_output = request.max_output();
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Gemini answers a call by the function's name, OpenAI by the call's id: remember the names.
    let mut call_names: Vec<(String, String)> = Vec::new();
    for message in request.messages {
        let ChatMessage { role, content, tool_calls, tool_call_id } = message;
        let (role, parts) = match role.as_str() {
            "system" | "developer" => {
                system.push(json!({ "text": content.map(Content::into_text).unwrap_or_default() }));
                continue;
            }
            "user" => ("user", content.map(parts_of).transpose()?.unwrap_or_default()),
            "assistant" => {
                let mut parts: Vec<Value> = content.map(parts_of).transpose()?.unwrap_or_default();
                for call in tool_calls.unwrap_or_default() {
                    let args = call.arguments_json()?;
                    call_names.push((call.id, call.function.name.clone()));
                    parts.push(json!({ "functionCall": { "name": call.function.name, "args": args } }));
                }
                ("model", parts)
            }
            "tool" => {
                let id = tool_call_id.ok_or("A tool message needs a tool_call_id.")?;
                let name = call_names
                    .iter()
                    .find(|(c, _)| *c == id)
                    .map(|(_, n)| n.clone())
                    .ok_or_else(|| format!("The tool message answers {id}, which no assistant message called."))?;
                let text = content.map(Content::into_text).unwrap_or_default();
                // The response must be an object: JSON results stay structured, others are wrapped.
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(o)) => Value::Object(o),
                    _ => json!({ "result": text }),
                };
                ("user", vec![json!({ "functionResponse": { "name": name, "response": response } })])
            }
            other => return Err(format!("Unsupported message role {other:?}.")),
        };
        chat::push_turn(&mut contents, role, parts, "parts");
    }
    if contents.is_empty() {
        return Err("The request has no user or assistant message.".into());
    }
    let mut generation = serde_json::Map::new();
    if let Some(t) = request.temperature {
        generation.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        generation.insert("topP".into(), json!(p));
    }
    if let Some(max) = max_output {
        generation.insert("maxOutputTokens".into(), json!(max));
    }
    if let Some(stop) = request.stop {
        generation.insert("stopSequences".into(), json!(stop.into_vec()));
    }
    // JSON mode: Gemini constrains the answer to JSON, or to a JSON schema.
    match request.response_format.as_ref().and_then(|f| f.get("type")).and_then(Value::as_str) {
        Some("json_object") => {
            generation.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            generation.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = request.response_format.as_ref().and_then(|f| f["json_schema"].get("schema")) {
                generation.insert("responseJsonSchema".into(), schema.clone());
            }
        }
        _ => {}
    }
    if let Some(effort) = request.reasoning_effort.as_deref() {
        let budget = match effort {
            "none" | "minimal" => 0,
            "low" => 1024,
            "medium" => 8192,
            _ => 24576,
        };
        generation.insert("thinkingConfig".into(), json!({ "thinkingBudget": budget, "includeThoughts": budget > 0 }));
    }
    let mut body = json!({ "contents": contents });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": system });
    }
    if !generation.is_empty() {
        body["generationConfig"] = Value::Object(generation);
    }
    let tools: Vec<Value> = request
        .tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let mut declaration = json!({ "name": t.function.name });
            if let Some(d) = t.function.description {
                declaration["description"] = json!(d);
            }
            // `parametersJsonSchema` takes JSON Schema as clients write it (`additionalProperties`,
            // `exclusiveMinimum`, `$ref`, …), where `parameters` takes only an OpenAPI subset and
            // refuses the rest: every constraint reaches the model, none is dropped.
            if let Some(mut p) = t.function.parameters {
                if let Some(schema) = p.as_object_mut() {
                    // Names the dialect, constrains nothing; Gemini does not know it.
                    schema.remove("$schema");
                }
                declaration["parametersJsonSchema"] = p;
            }
            declaration
        })
        .collect();
    if !tools.is_empty() {
        body["tools"] = json!([{ "functionDeclarations": tools }]);
    }
    if let Some(choice) = request.tool_choice {
        let config = match &choice {
            Value::String(s) if s == "none" => json!({ "mode": "NONE" }),
            Value::String(s) if s == "required" => json!({ "mode": "ANY" }),
            Value::String(_) => json!({ "mode": "AUTO" }),
            Value::Object(o) => {
                let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str);
                json!({ "mode": "ANY", "allowedFunctionNames": [name.ok_or("tool_choice.function.name is required.")?] })
            }
            _ => return Err("Unsupported tool_choice.".into()),
        };
        body["toolConfig"] = json!({ "functionCallingConfig": config });
    }
    serde_json::to_vec(&body).map(Bytes::from).map_err(|e| e.to_string())
}

fn parts_of(content: Content) -> Result<Vec<Value>, String> {
    match content {
        Content::Text(text) => Ok(vec![json!({ "text": text })]),
        Content::Parts(parts) => parts
            .into_iter()
            .map(|part| match part {
                Part::Text { text } => Ok(json!({ "text": text })),
                Part::ImageUrl { image_url } => match chat::parse_data_url(&image_url.url) {
                    Some((mime, data)) => Ok(json!({ "inlineData": { "mimeType": mime, "data": data } })),
                    None => Err("This model's provider takes images inline: send them as data: URLs.".to_string()),
                },
                Part::Other => Err("This model's provider accepts text and image parts only.".to_string()),
            })
            .collect(),
    }
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: i64,
    #[serde(default)]
    candidates_token_count: i64,
    #[serde(default)]
    cached_content_token_count: i64,
    #[serde(default)]
    thoughts_token_count: i64,
}

impl UsageMetadata {
    fn normalise(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_token_count,
            completion_tokens: self.candidates_token_count.saturating_add(self.thoughts_token_count),
            cached_tokens: self.cached_content_token_count,
            reasoning_tokens: self.thoughts_token_count,
            ..Usage::default()
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    response_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<ResponsePart>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ResponsePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    function_call: Option<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    args: Value,
}

/// OpenAI's finish reason for Gemini's (`had_calls`: the answer called functions).
fn finish_reason(reason: Option<&str>, had_calls: bool) -> Option<&'static str> {
    Some(match reason? {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => "content_filter",
        _ if had_calls => "tool_calls",
        _ => "stop",
    })
}

/// What one (partial) response holds, in OpenAI terms.
struct Pieces {
    text: String,
    reasoning: String,
    calls: Vec<(String, Value)>,
    finish: Option<String>,
}

fn pieces(response: Response) -> Pieces {
    let mut out = Pieces { text: String::new(), reasoning: String::new(), calls: Vec::new(), finish: None };
    if let Some(candidate) = response.candidates.into_iter().next() {
        out.finish = candidate.finish_reason;
        for part in candidate.content.unwrap_or_default().parts {
            match (part.text, part.function_call) {
                (Some(text), _) if part.thought == Some(true) => out.reasoning.push_str(&text),
                (Some(text), _) => out.text.push_str(&text),
                (None, Some(call)) => out.calls.push((call.name, call.args)),
                _ => {}
            }
        }
    }
    out
}

fn tool_call(index: usize, name: &str, args: &Value) -> Value {
    json!({ "index": index, "id": format!("call_{index}"), "type": "function",
            "function": { "name": name, "arguments": args.to_string() } })
}

/// The usage in a (non-stream) `generateContent` response; `Ok(None)` when it reports none.
pub fn response_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    let response: Response = serde_json::from_slice(body)?;
    Ok(response.usage_metadata.map(UsageMetadata::normalise))
}

/// Converts a `generateContent` response into an OpenAI chat completion for `model`.
pub fn to_chat(body: &[u8], model: &str, created: i64) -> Result<(Bytes, Option<Usage>), serde_json::Error> {
    let response: Response = serde_json::from_slice(body)?;
    let usage = response.usage_metadata.map(UsageMetadata::normalise);
    let id = response.response_id.clone().unwrap_or_default();
    let p = pieces(response);
    let mut message =
        json!({ "role": "assistant", "content": (!p.text.is_empty() || p.calls.is_empty()).then_some(&p.text) });
    if !p.calls.is_empty() {
        let calls: Vec<Value> = p.calls.iter().enumerate().map(|(i, (name, args))| tool_call(i, name, args)).collect();
        message["tool_calls"] = Value::Array(calls);
    }
    if !p.reasoning.is_empty() {
        message["reasoning_content"] = json!(p.reasoning);
    }
    let finish = finish_reason(p.finish.as_deref(), !p.calls.is_empty()).unwrap_or("stop");
    let completion = json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish }],
        "usage": chat::usage_json(&usage.unwrap_or_default()),
    });
    Ok((Bytes::from(completion.to_string()), usage))
}

/// Turns Gemini stream events (partial responses) into OpenAI chat completion chunks.
pub struct ChatStream {
    writer: chat::ChunkWriter,
    started: bool,
    calls: usize,
    usage: Option<Usage>,
    text: Tally,
    done: bool,
}

impl ChatStream {
    pub fn new(model: &str, created: i64, include_usage: bool) -> Self {
        Self {
            writer: chat::ChunkWriter::new("chatcmpl-gemini", model, created, include_usage),
            started: false,
            calls: 0,
            usage: None,
            text: Tally::default(),
            done: false,
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// `o200k_base` tokens of the text generated so far (for an estimate).
    pub fn text_tokens(&self) -> i64 {
        self.text.tokens()
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        self.writer.chunk(delta, finish)
    }

    /// Reads usage and text length from one event without converting it (passthrough).
    pub fn observe(&mut self, data: &[u8]) {
        let Ok(response) = serde_json::from_slice::<Response>(data) else { return };
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage.normalise());
        }
        let p = pieces(response);
        self.text.add(&p.text);
        self.text.add(&p.reasoning);
    }

    /// Converts one upstream event's `data:` payload; client events are appended to `out`.
    pub fn convert(&mut self, data: &[u8], out: &mut Vec<Bytes>) {
        let Ok(response) = serde_json::from_slice::<Response>(data) else { return };
        if let Some(usage) = response.usage_metadata {
            // Each event reports the totals so far.
            self.usage = Some(usage.normalise());
        }
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({ "role": "assistant", "content": "" }), None));
        }
        let p = pieces(response);
        if !p.reasoning.is_empty() {
            self.text.add(&p.reasoning);
            out.push(self.chunk(json!({ "reasoning_content": p.reasoning }), None));
        }
        if !p.text.is_empty() {
            self.text.add(&p.text);
            out.push(self.chunk(json!({ "content": p.text }), None));
        }
        for (name, args) in &p.calls {
            let call = tool_call(self.calls, name, args);
            self.calls += 1;
            if let Some(arguments) = call["function"]["arguments"].as_str() {
                self.text.add(arguments);
            }
            out.push(self.chunk(json!({ "tool_calls": [call] }), None));
        }
        if let Some(finish) = finish_reason(p.finish.as_deref(), self.calls > 0) {
            out.push(self.chunk(json!({}), Some(finish)));
            self.end(out);
        }
    }

    /// The upstream ended: the usage chunk (when asked for) and `[DONE]`, once.
    pub fn end(&mut self, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.done = true;
        self.writer.close(&self.usage.unwrap_or_default(), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_answer_by_function_name_and_turns_merge() {
        let body = json!({
            "model": "g", "max_tokens": 50, "stop": "END",
            "messages": [
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": "weather?" },
                { "role": "assistant", "content": null, "tool_calls": [
                    { "id": "c1", "type": "function", "function": { "name": "w", "arguments": "{\"c\":\"Paris\"}" } }] },
                { "role": "tool", "tool_call_id": "c1", "content": "sunny" },
            ],
            "tools": [{ "type": "function", "function": { "name": "w", "parameters": { "type": "object" } } }],
            "tool_choice": { "type": "function", "function": { "name": "w" } },
        });
        let out: Value =
            serde_json::from_slice(&from_chat(body.to_string().as_bytes(), &Capabilities::default()).unwrap()).unwrap();
        assert_eq!(out["systemInstruction"]["parts"][0]["text"], "Be brief.");
        assert_eq!(out["contents"][1]["parts"][0]["functionCall"]["args"]["c"], "Paris");
        assert_eq!(
            out["contents"][2]["parts"][0]["functionResponse"],
            json!({ "name": "w", "response": { "result": "sunny" } })
        );
        assert_eq!(out["generationConfig"], json!({ "maxOutputTokens": 50, "stopSequences": ["END"] }));
        assert_eq!(out["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"], json!(["w"]));
    }

    #[test]
    fn json_mode_constrains_the_answer() {
        let schema = json!({ "type": "object", "properties": { "a": { "type": "string" } } });
        let body = json!({ "model": "g", "messages": [{ "role": "user", "content": "x" }],
                           "response_format": { "type": "json_schema", "json_schema": { "name": "s", "schema": schema } } });
        let out: Value =
            serde_json::from_slice(&from_chat(body.to_string().as_bytes(), &Capabilities::default()).unwrap()).unwrap();
        assert_eq!(out["generationConfig"]["responseMimeType"], "application/json");
        assert_eq!(out["generationConfig"]["responseJsonSchema"], schema);
    }

    #[test]
    fn tool_schemas_reach_gemini_whole_and_caps_apply() {
        let schema = json!({ "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                             "properties": { "n": { "type": "integer", "exclusiveMinimum": 0 } },
                             "required": ["n"], "additionalProperties": false });
        let body = json!({ "model": "g", "max_tokens": 32000, "reasoning_effort": "high",
                           "messages": [{ "role": "user", "content": "x" }],
                           "tools": [{ "type": "function", "function": { "name": "f", "parameters": schema } }] });
        let caps = Capabilities { max_output_tokens: Some(8192), reasoning: Some(false), ..Capabilities::default() };
        let out: Value = serde_json::from_slice(&from_chat(body.to_string().as_bytes(), &caps).unwrap()).unwrap();
        let declared = &out["tools"][0]["functionDeclarations"][0];
        assert_eq!(declared.get("parameters"), None);
        assert_eq!(declared["parametersJsonSchema"]["additionalProperties"], false);
        assert_eq!(declared["parametersJsonSchema"]["properties"]["n"]["exclusiveMinimum"], 0);
        assert_eq!(declared["parametersJsonSchema"].get("$schema"), None);
        assert_eq!(out["generationConfig"], json!({ "maxOutputTokens": 8192 }));
        let no_tools = Capabilities { tools: Some(false), ..Capabilities::default() };
        assert!(from_chat(body.to_string().as_bytes(), &no_tools).unwrap_err().contains("does not support tools"));
    }

    #[test]
    fn refusals_are_messages_not_panics() {
        for body in [
            json!({ "model": "m", "messages": [] }),
            json!({ "model": "m", "messages": [{ "role": "tool", "tool_call_id": "x", "content": "r" }] }),
            json!({ "model": "m", "messages": [{ "role": "user", "content": [{ "type": "image_url", "image_url": { "url": "http://x/y.png" } }] }] }),
        ] {
            assert!(from_chat(body.to_string().as_bytes(), &Capabilities::default()).is_err(), "{body}");
        }
    }
}

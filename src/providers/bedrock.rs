//! AWS Bedrock Runtime's Converse API as an upstream for OpenAI chat completions: request and
//! response conversion, the ConverseStream conversion (AWS event-stream frames, decoded as they
//! arrive), and SigV4 signing with the channel's credentials.
//!
//! Wire reference: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>
//! and `API_runtime_ConverseStream.html`.

use std::time::SystemTime;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::chat::{self, ChatMessage, ChatRequest, Content, Part};
use super::eventstream::{Decoder, Message};
use super::{ChatAdapter, Convert, StreamConverter, Upstream};
use crate::domain::capabilities::Capabilities;
use crate::domain::pricing::Usage;
use crate::domain::tokenizer::Tally;

/// How the channel authenticates: SigV4 credentials (`ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]`
/// as the channel key) or a Bedrock API key (a key without `:`, sent as a bearer token).
pub enum Auth<'a> {
    SigV4 { access_key_id: &'a str, secret_access_key: &'a str, session_token: Option<&'a str> },
    ApiKey(&'a str),
}

impl<'a> Auth<'a> {
    pub fn from_key(key: &'a str) -> Self {
        let mut parts = key.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(access_key_id), Some(secret_access_key), session_token) => {
                Auth::SigV4 { access_key_id, secret_access_key, session_token }
            }
            _ => Auth::ApiKey(key),
        }
    }
}

/// The Converse path for a model id (`:` in ids such as `…-v1:0` encoded, as AWS expects).
pub fn path(model: &str, stream: bool) -> String {
    let id: String = model
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    format!("/model/{id}/{}", if stream { "converse-stream" } else { "converse" })
}

/// The InvokeModel path for a model id (embedding models).
pub fn invoke_path(model: &str) -> String {
    path(model, false).replace("/converse", "/invoke")
}

/// A signed POST of `payload` to `path` (see [`path`], [`invoke_path`]) on the channel's
/// endpoint (its base URL, else its region's, us-east-1 when none is set).
pub fn post(to: &Upstream<'_>, path: &str, payload: Bytes) -> Result<reqwest::RequestBuilder, String> {
    let region = to.region.unwrap_or("us-east-1");
    let url =
        if to.base_url.is_empty() { format!("{}{path}", endpoint(region)) } else { format!("{}{path}", to.base_url) };
    let auth = Auth::from_key(to.key);
    let headers = auth_headers(&auth, region, &url, &payload, SystemTime::now())?;
    let mut builder = to.http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    Ok(builder.body(payload))
}

/// Bedrock as a converting upstream for OpenAI chat: Converse / ConverseStream (images inline only).
pub static CHAT: ChatAdapter =
    ChatAdapter { inline_images: true, from_chat: chat_payload, post: chat_post, stream: chat_stream, to_chat };

fn chat_payload(body: &[u8], convert: &Convert<'_>) -> Result<Bytes, String> {
    from_chat(body, convert.caps)
}

fn chat_post(to: &Upstream<'_>, model: &str, stream: bool, payload: Bytes) -> Result<reqwest::RequestBuilder, String> {
    post(to, &path(model, stream), payload)
}

fn chat_stream(model: &str, created: i64, include_usage: bool) -> StreamConverter {
    StreamConverter::BedrockToChat(ChatStream::new(model, created, include_usage))
}

/// The default endpoint of a region.
pub fn endpoint(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// The headers that authenticate a POST of `body` to `url`: SigV4's (`authorization`,
/// `x-amz-date`, `x-amz-security-token`) or a bearer token.
pub fn auth_headers(
    auth: &Auth<'_>,
    region: &str,
    url: &str,
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let (access_key_id, secret_access_key, session_token) = match auth {
        Auth::ApiKey(key) => return Ok(vec![("authorization".into(), format!("Bearer {key}"))]),
        Auth::SigV4 { access_key_id, secret_access_key, session_token } => {
            (*access_key_id, *secret_access_key, *session_token)
        }
    };
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = aws_credential_types::Credentials::new(
        access_key_id,
        secret_access_key,
        session_token.map(str::to_string),
        None,
        "burncloud-channel",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let headers = [("content-type", "application/json")];
    let request =
        SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body)).map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params).map_err(|e| e.to_string())?.into_parts();
    Ok(instructions.headers().map(|(name, value)| (name.to_string(), value.to_string())).collect())
}

/// Converts an OpenAI chat request into a Converse body. `Err` is a message for a 400.
pub fn from_chat(body: &[u8], caps: &Capabilities) -> Result<Bytes, String> {
    let mut request = ChatRequest::parse_single_choice(body)?;
    request.fit(caps)?;
    let max_output = request.max_output();
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for message in request.messages {
        let ChatMessage { role, content, tool_calls, tool_call_id } = message;
        let (role, blocks) = match role.as_str() {
            "system" | "developer" => {
                system.push(json!({ "text": content.map(Content::into_text).unwrap_or_default() }));
                continue;
            }
            "user" => ("user", content.map(blocks_of).transpose()?.unwrap_or_default()),
            "assistant" => {
                let mut blocks = content.map(blocks_of).transpose()?.unwrap_or_default();
                for call in tool_calls.unwrap_or_default() {
                    let input = call.arguments_json()?;
                    blocks.push(
                        json!({ "toolUse": { "toolUseId": call.id, "name": call.function.name, "input": input } }),
                    );
                }
                ("assistant", blocks)
            }
            "tool" => {
                let id = tool_call_id.ok_or("A tool message needs a tool_call_id.")?;
                let text = content.map(Content::into_text).unwrap_or_default();
                let result = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(o)) => json!({ "json": o }),
                    _ => json!({ "text": text }),
                };
                ("user", vec![json!({ "toolResult": { "toolUseId": id, "content": [result], "status": "success" } })])
            }
            other => return Err(format!("Unsupported message role {other:?}.")),
        };
        chat::push_turn(&mut messages, role, blocks, "content");
    }
    if messages.is_empty() {
        return Err("The request has no user or assistant message.".into());
    }
    let mut body = json!({ "messages": messages });
    if !system.is_empty() {
        body["system"] = Value::Array(system);
    }
    let mut inference = serde_json::Map::new();
    if let Some(max) = max_output {
        inference.insert("maxTokens".into(), json!(max));
    }
    if let Some(t) = request.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        inference.insert("topP".into(), json!(p));
    }
    if let Some(stop) = request.stop {
        inference.insert("stopSequences".into(), json!(stop.into_vec()));
    }
    if !inference.is_empty() {
        body["inferenceConfig"] = Value::Object(inference);
    }
    let tools: Vec<Value> = request
        .tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let schema = t.function.parameters.unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
            let mut spec = json!({ "name": t.function.name, "inputSchema": { "json": schema } });
            if let Some(d) = t.function.description {
                spec["description"] = json!(d);
            }
            json!({ "toolSpec": spec })
        })
        .collect();
    if !tools.is_empty() {
        let mut config = json!({ "tools": tools });
        match &request.tool_choice {
            Some(Value::String(s)) if s == "required" => config["toolChoice"] = json!({ "any": {} }),
            Some(Value::String(s)) if s == "auto" => config["toolChoice"] = json!({ "auto": {} }),
            Some(Value::Object(o)) => {
                let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str);
                config["toolChoice"] =
                    json!({ "tool": { "name": name.ok_or("tool_choice.function.name is required.")? } });
            }
            // "none" has no Converse equivalent: the model may still call; leave the choice unset.
            _ => {}
        }
        body["toolConfig"] = config;
    }
    serde_json::to_vec(&body).map(Bytes::from).map_err(|e| e.to_string())
}

fn blocks_of(content: Content) -> Result<Vec<Value>, String> {
    match content {
        Content::Text(text) => Ok(vec![json!({ "text": text })]),
        Content::Parts(parts) => parts
            .into_iter()
            .map(|part| match part {
                Part::Text { text } => Ok(json!({ "text": text })),
                Part::ImageUrl { image_url } => {
                    let (mime, data) = chat::parse_data_url(&image_url.url)
                        .ok_or("This model's provider takes images inline: send them as data: URLs.")?;
                    let format = mime.strip_prefix("image/").filter(|f| ["png", "jpeg", "gif", "webp"].contains(f));
                    let format = format.ok_or("Images must be PNG, JPEG, GIF or WebP.")?;
                    Ok(json!({ "image": { "format": format, "source": { "bytes": data } } }))
                }
                Part::Other => Err("This model's provider accepts text and image parts only.".to_string()),
            })
            .collect(),
    }
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    input_tokens: i64,
    #[serde(default)]
    output_tokens: i64,
    #[serde(default)]
    cache_read_input_tokens: i64,
    #[serde(default)]
    cache_write_input_tokens: i64,
}

impl WireUsage {
    fn normalise(self) -> Usage {
        Usage {
            prompt_tokens: self
                .input_tokens
                .saturating_add(self.cache_read_input_tokens)
                .saturating_add(self.cache_write_input_tokens),
            completion_tokens: self.output_tokens,
            cached_tokens: self.cache_read_input_tokens,
            cache_write_tokens: self.cache_write_input_tokens,
            ..Usage::default()
        }
    }
}

/// OpenAI's finish reason for a Converse stop reason.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        _ => "stop",
    }
}

/// Converts a Converse response into an OpenAI chat completion for `model`.
pub fn to_chat(body: &[u8], model: &str, created: i64) -> Result<(Bytes, Option<Usage>), serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Response {
        #[serde(default)]
        output: Value,
        #[serde(default)]
        stop_reason: Option<String>,
        #[serde(default)]
        usage: Option<WireUsage>,
    }
    let response: Response = serde_json::from_slice(body)?;
    let usage = response.usage.map(WireUsage::normalise);
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    for block in response.output["message"]["content"].as_array().into_iter().flatten() {
        if let Some(t) = block["text"].as_str() {
            text.push_str(t);
        } else if let Some(t) = block["reasoningContent"]["reasoningText"]["text"].as_str() {
            reasoning.push_str(t);
        } else if let Some(call) = block.get("toolUse") {
            calls.push(json!({ "id": call["toolUseId"], "type": "function",
                               "function": { "name": call["name"], "arguments": call["input"].to_string() } }));
        }
    }
    let mut message = json!({ "role": "assistant", "content": (!text.is_empty() || calls.is_empty()).then_some(text) });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    let completion = json!({
        "id": "chatcmpl-bedrock", "object": "chat.completion", "created": created, "model": model,
        "choices": [{ "index": 0, "message": message, "logprobs": null,
                      "finish_reason": finish_reason(response.stop_reason.as_deref()) }],
        "usage": chat::usage_json(&usage.unwrap_or_default()),
    });
    Ok((Bytes::from(completion.to_string()), usage))
}

/// Turns ConverseStream's event-stream messages into OpenAI chat completion chunks.
pub struct ChatStream {
    writer: chat::ChunkWriter,
    decoder: Decoder,
    /// Content block index → tool call index.
    tools: Vec<(u64, usize)>,
    usage: Option<Usage>,
    text: Tally,
    done: bool,
}

impl ChatStream {
    pub fn new(model: &str, created: i64, include_usage: bool) -> Self {
        Self {
            writer: chat::ChunkWriter::new("chatcmpl-bedrock", model, created, include_usage),
            decoder: Decoder::default(),
            tools: Vec::new(),
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

    /// Feeds raw upstream bytes; client events are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Bytes>) {
        let mut messages = Vec::new();
        if let Err(e) = self.decoder.push(bytes, &mut messages) {
            tracing::warn!(error = %e, "Bedrock stream is corrupt");
            out.push(chat::error_chunk("The upstream stream was corrupt."));
            self.done = true;
        }
        for message in messages {
            self.convert(message, out);
        }
    }

    fn convert(&mut self, message: Message, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(&message.payload) else { return };
        if message.message_type != "event" {
            let text = event["message"].as_str().unwrap_or("The upstream stream failed.");
            out.push(chat::error_chunk(text));
            self.done = true;
            return;
        }
        let index = event["contentBlockIndex"].as_u64().unwrap_or(0);
        match message.event_type.as_str() {
            "messageStart" => out.push(self.chunk(json!({ "role": "assistant", "content": "" }), None)),
            "contentBlockStart" => {
                if let Some(tool) = event["start"].get("toolUse") {
                    let call_index = self.tools.len();
                    self.tools.push((index, call_index));
                    let call = json!({ "index": call_index, "id": tool["toolUseId"], "type": "function",
                                       "function": { "name": tool["name"], "arguments": "" } });
                    out.push(self.chunk(json!({ "tool_calls": [call] }), None));
                }
            }
            "contentBlockDelta" => {
                let delta = &event["delta"];
                if let Some(text) = delta["text"].as_str() {
                    self.text.add(text);
                    out.push(self.chunk(json!({ "content": text }), None));
                } else if let Some(text) = delta["reasoningContent"]["text"].as_str() {
                    self.text.add(text);
                    out.push(self.chunk(json!({ "reasoning_content": text }), None));
                } else if let Some(input) = delta["toolUse"]["input"].as_str() {
                    self.text.add(input);
                    let call_index = self.tools.iter().find(|(b, _)| *b == index).map_or(0, |(_, c)| *c);
                    let call = json!({ "index": call_index, "function": { "arguments": input } });
                    out.push(self.chunk(json!({ "tool_calls": [call] }), None));
                }
            }
            "messageStop" => {
                let finish = finish_reason(event["stopReason"].as_str());
                out.push(self.chunk(json!({}), Some(finish)));
            }
            "metadata" => {
                if let Ok(usage) = serde_json::from_value::<WireUsage>(event["usage"].clone()) {
                    self.usage = Some(usage.normalise());
                }
                self.end(out);
            }
            _ => {}
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
    fn model_ids_are_encoded_in_the_path() {
        assert_eq!(
            path("anthropic.claude-3-5-sonnet-20240620-v1:0", true),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
        );
    }

    #[test]
    fn keys_with_colons_are_credentials_others_api_keys() {
        assert!(matches!(Auth::from_key("AKID:SECRET"), Auth::SigV4 { session_token: None, .. }));
        assert!(matches!(Auth::from_key("AKID:SECRET:TOKEN"), Auth::SigV4 { session_token: Some("TOKEN"), .. }));
        assert!(matches!(Auth::from_key("bedrock-api-key"), Auth::ApiKey(_)));
    }

    #[test]
    fn tools_and_results_convert() {
        let body = json!({
            "model": "m", "max_tokens": 20,
            "messages": [
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": "weather?" },
                { "role": "assistant", "content": null, "tool_calls": [
                    { "id": "t1", "type": "function", "function": { "name": "w", "arguments": "{}" } }] },
                { "role": "tool", "tool_call_id": "t1", "content": "{\"temp\": 15}" },
            ],
            "tools": [{ "type": "function", "function": { "name": "w" } }],
            "tool_choice": "required",
        });
        let out: Value =
            serde_json::from_slice(&from_chat(body.to_string().as_bytes(), &Capabilities::default()).unwrap()).unwrap();
        assert_eq!(out["system"], json!([{ "text": "Be brief." }]));
        assert_eq!(out["messages"][2]["content"][0]["toolResult"]["content"][0]["json"]["temp"], 15);
        assert_eq!(out["toolConfig"]["toolChoice"], json!({ "any": {} }));
        assert_eq!(out["inferenceConfig"]["maxTokens"], 20);
    }
}

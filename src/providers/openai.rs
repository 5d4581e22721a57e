//! OpenAI's wire format, the parts the gateway reads or changes: a borrowed peek at the request
//! (model, stream, limits), the minimal rewrite for model mapping and stream usage, and usage
//! from responses and stream events. Pure functions over bytes; no I/O.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Protocol, Upstream};
use crate::domain::pricing::Usage;
use crate::domain::tokenizer::Tally;

/// The upstream request for an OpenAI endpoint (`path` after `/v1`) carrying `payload` of
/// `content_type`: `{base}{path}` with a bearer key, or on Azure its deployment URL for `model`.
pub fn post(
    to: &Upstream<'_>,
    protocol: Protocol,
    path: &str,
    model: &str,
    content_type: reqwest::header::HeaderValue,
    payload: Bytes,
) -> reqwest::RequestBuilder {
    let builder = match protocol {
        Protocol::Azure => super::azure::post(to, path, model),
        _ => to.http.post(format!("{}{path}", to.base_url)).bearer_auth(to.key),
    };
    builder.header(reqwest::header::CONTENT_TYPE, content_type).body(payload)
}

/// What the gateway needs from a request body; every other field is skipped, not copied.
#[derive(Debug, Default, Deserialize)]
pub struct RequestPeek<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub max_completion_tokens: Option<i64>,
    /// Responses API.
    #[serde(default)]
    pub max_output_tokens: Option<i64>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub n: Option<i64>,
    /// Text input of speech, embeddings and moderation requests.
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Gemini's request options (its own API).
    #[serde(default, rename = "generationConfig")]
    pub generation_config: Option<GenerationConfig>,
    /// Bedrock Converse's request options.
    #[serde(default, rename = "inferenceConfig")]
    pub inference_config: Option<InferenceConfig>,
    /// OpenAI's reasoning models (`reasoning_effort`, the Responses API's `reasoning`) and
    /// Anthropic's extended thinking ask for hidden output the hold must cover.
    #[serde(default)]
    pub reasoning_effort: Option<&'a RawValue>,
    #[serde(default)]
    pub reasoning: Option<&'a RawValue>,
    #[serde(default)]
    pub thinking: Option<&'a RawValue>,
    /// Tools, read only for the server-side ones the upstream bills per call.
    #[serde(borrow, default)]
    pub tools: Option<Vec<ToolPeek<'a>>>,
    /// Chat completions' built-in web search.
    #[serde(default)]
    pub web_search_options: Option<&'a RawValue>,
    /// The end user's id (cut to what the upstream takes).
    #[serde(borrow, default)]
    pub user: Option<Cow<'a, str>>,
    /// OpenAI's prompt-cache routing key (a conversation marker for affinity).
    #[serde(default)]
    pub prompt_cache_key: Option<&'a RawValue>,
    /// Anthropic's `metadata` (its `user_id` names a Claude Code session).
    #[serde(default)]
    pub metadata: Option<&'a RawValue>,
}

impl RequestPeek<'_> {
    /// What names the request's conversation, for session affinity: `prompt_cache_key`, else
    /// Anthropic's `metadata.user_id`, else `user` (strings only; anything else names none).
    pub fn conversation_marker(&self) -> Option<Cow<'_, str>> {
        let text = |raw: &RawValue| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok().filter(|s| !s.is_empty());
        if let Some(key) = self.prompt_cache_key.and_then(text) {
            return Some(key);
        }
        let user_id = self.metadata.and_then(|m| {
            #[derive(Deserialize)]
            struct Metadata<'b> {
                #[serde(borrow, default)]
                user_id: Option<&'b RawValue>,
            }
            serde_json::from_str::<Metadata<'_>>(m.get()).ok()?.user_id.and_then(text)
        });
        user_id.or_else(|| self.user.as_ref().filter(|u| !u.is_empty()).map(|u| Cow::Borrowed(u.as_ref())))
    }
}

/// What the gateway reads of a tool: its type (OpenAI, Anthropic) or Gemini's built-in members.
#[derive(Debug, Default, Deserialize)]
pub struct ToolPeek<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, rename = "googleSearch", alias = "google_search")]
    pub google_search: Option<&'a RawValue>,
    #[serde(default, rename = "googleSearchRetrieval", alias = "google_search_retrieval")]
    pub google_search_retrieval: Option<&'a RawValue>,
    #[serde(default, rename = "codeExecution", alias = "code_execution")]
    pub code_execution: Option<&'a RawValue>,
    #[serde(default, rename = "urlContext", alias = "url_context")]
    pub url_context: Option<&'a RawValue>,
}

/// Tool types the provider runs itself and bills per call (search, fetch, code execution, file
/// search, image generation), beside the tokens: the gateway cannot price those calls.
const SERVER_TOOL_PREFIXES: [&str; 6] =
    ["web_search", "web_fetch", "code_execution", "code_interpreter", "file_search", "image_generation"];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(default)]
    pub max_output_tokens: Option<i64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub candidate_count: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    #[serde(default)]
    pub max_tokens: Option<i64>,
}

/// The largest output cap the gateway passes on: no model writes more; a larger one is a mistake
/// or an attack on the hold.
pub const MAX_OUTPUT_TOKENS: i64 = 1 << 21;

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

impl RequestPeek<'_> {
    pub fn parse(body: &[u8]) -> Result<RequestPeek<'_>, String> {
        serde_json::from_slice(body).map_err(|e| format!("We could not parse the JSON body of your request ({e})."))
    }

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false)
    }

    /// The output-token ceiling the client set, if any, in any protocol's field.
    pub fn max_output(&self) -> Option<i64> {
        self.max_completion_tokens
            .or(self.max_tokens)
            .or(self.max_output_tokens)
            .or(self.generation_config.as_ref().and_then(|g| g.max_output_tokens))
            .or(self.inference_config.as_ref().and_then(|c| c.max_tokens))
            .filter(|n| *n > 0)
    }

    /// How many answers the request asks for (`n`, Gemini's `candidateCount`).
    pub fn choices(&self) -> Option<i64> {
        self.n.or(self.generation_config.as_ref().and_then(|g| g.candidate_count))
    }

    /// The first server-side tool the request asks for, which the upstream would bill per call.
    pub fn server_tool(&self) -> Option<String> {
        if self.web_search_options.is_some_and(|v| v.get() != "null") {
            return Some("web_search_options".into());
        }
        self.tools.iter().flatten().find_map(|tool| {
            let gemini = [
                ("googleSearch", tool.google_search),
                ("googleSearchRetrieval", tool.google_search_retrieval),
                ("codeExecution", tool.code_execution),
                ("urlContext", tool.url_context),
            ];
            if let Some((name, _)) = gemini.iter().find(|(_, v)| v.is_some()) {
                return Some((*name).to_string());
            }
            let kind = tool.kind.as_deref()?;
            SERVER_TOOL_PREFIXES.iter().any(|p| kind.starts_with(p)).then(|| kind.to_string())
        })
    }

    /// The request asks for reasoning (hidden output tokens).
    pub fn wants_reasoning(&self) -> bool {
        let set = |v: Option<&RawValue>| v.is_some_and(|v| v.get() != "null");
        set(self.reasoning_effort) || set(self.reasoning) || self.thinking.is_some_and(|t| t.get().contains("enabled"))
    }

    /// Checks the sampling and size fields as OpenAI's API does: `(message, param)` of the first
    /// one out of range. `temperature_max` is 2 for OpenAI and Gemini, 1 for Anthropic.
    pub fn check_ranges(&self, temperature_max: f64) -> Result<(), (String, &'static str)> {
        let generation = self.generation_config.as_ref();
        let caps = [
            ("max_tokens", self.max_tokens),
            ("max_completion_tokens", self.max_completion_tokens),
            ("max_output_tokens", self.max_output_tokens),
            ("generationConfig.maxOutputTokens", generation.and_then(|g| g.max_output_tokens)),
            ("inferenceConfig.maxTokens", self.inference_config.as_ref().and_then(|c| c.max_tokens)),
        ];
        for (param, value) in caps {
            if let Some(value) = value.filter(|v| !(1..=MAX_OUTPUT_TOKENS).contains(v)) {
                return Err((
                    format!(
                        "Invalid '{param}': expected a value from 1 to {MAX_OUTPUT_TOKENS}, but got {value} instead."
                    ),
                    param,
                ));
            }
        }
        for (param, value) in
            [("n", self.n), ("generationConfig.candidateCount", generation.and_then(|g| g.candidate_count))]
        {
            if let Some(value) = value.filter(|v| !(1..=128).contains(v)) {
                return Err((
                    format!("Invalid '{param}': expected a value from 1 to 128, but got {value} instead."),
                    param,
                ));
            }
        }
        let samplers = [
            ("temperature", self.temperature, temperature_max),
            ("generationConfig.temperature", generation.and_then(|g| g.temperature), 2.0),
            ("top_p", self.top_p, 1.0),
            ("generationConfig.topP", generation.and_then(|g| g.top_p), 1.0),
        ];
        for (param, value, max) in samplers {
            if let Some(value) = value.filter(|v| !(0.0..=max).contains(v)) {
                return Err((
                    format!("Invalid '{param}': expected a value from 0 to {max}, but got {value} instead."),
                    param,
                ));
            }
        }
        Ok(())
    }

    /// Characters of a plain-string `input` (speech is priced per character).
    pub fn input_chars(&self) -> Option<i64> {
        let raw = self.input?;
        let text: String = serde_json::from_str(raw.get()).ok()?;
        i64::try_from(text.chars().count()).ok()
    }
}

/// The client's request for a channel: the model mapped, the usage chunk asked for, the output
/// cap lowered to the model's limit, an over-long end-user id hashed, everything else as sent
/// (fields in their order, values byte for byte). `None`: nothing to change.
pub fn fit_request(
    body: &[u8],
    peek: &RequestPeek<'_>,
    model: Option<&str>,
    include_usage: bool,
    caps: &crate::domain::capabilities::Capabilities,
) -> Result<Option<Bytes>, serde_json::Error> {
    use super::body::Edit;
    let mut edits = Vec::new();
    if let Some(model) = model {
        edits.push(Edit::set("model", model)?);
    }
    if include_usage {
        let mut options: BTreeMap<String, Box<RawValue>> = match super::body::field(body, "stream_options") {
            Some(raw) if raw.get() != "null" => serde_json::from_str(raw.get())?,
            _ => BTreeMap::new(),
        };
        options.insert("include_usage".into(), serde_json::value::to_raw_value(&true)?);
        edits.push(Edit::set("stream_options", options)?);
    }
    for (field, value) in [
        ("max_tokens", peek.max_tokens),
        ("max_completion_tokens", peek.max_completion_tokens),
        ("max_output_tokens", peek.max_output_tokens),
    ] {
        if let Some(value) = value.filter(|v| caps.clamp_output(*v) != *v) {
            edits.push(Edit::set(field, caps.clamp_output(value))?);
        }
    }
    if let Some(user) = peek.user.as_deref()
        && let fitted @ Cow::Owned(_) = super::chat::fitted_user_id(user, super::chat::OPENAI_USER_MAX)
    {
        edits.push(Edit::set("user", fitted)?);
    }
    if edits.is_empty() {
        return Ok(None);
    }
    super::body::edit(body, edits).map(Some)
}

/// Usage in any of OpenAI's shapes: chat/completions/embeddings (`prompt_tokens`,
/// `completion_tokens`, `…_details`) and the Responses API (`input_tokens`, `output_tokens`).
#[derive(Debug, Default, Deserialize)]
pub struct WireUsage {
    #[serde(default, alias = "input_tokens")]
    pub prompt_tokens: Option<i64>,
    #[serde(default, alias = "output_tokens")]
    pub completion_tokens: Option<i64>,
    #[serde(default, alias = "input_tokens_details")]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default, alias = "output_tokens_details")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<i64>,
    /// Not OpenAI's: reported by the gateway's own conversions from providers that bill cache
    /// writes (Anthropic), so streamed usage keeps them.
    #[serde(default)]
    pub cache_write_tokens: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<i64>,
}

impl WireUsage {
    pub fn normalise(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.unwrap_or(0),
            completion_tokens: self.completion_tokens.unwrap_or(0),
            cached_tokens: self.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write_tokens: self.prompt_tokens_details.as_ref().and_then(|d| d.cache_write_tokens).unwrap_or(0),
            reasoning_tokens: self.completion_tokens_details.as_ref().and_then(|d| d.reasoning_tokens).unwrap_or(0),
            requests: 0,
        }
    }
}

#[derive(Deserialize)]
struct UsageHolder {
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Responses API stream events carry it under `response`.
    #[serde(default)]
    response: Option<Box<UsageHolder>>,
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

/// Usage reported in a (non-stream) JSON response body: `Ok(None)` when it reports none,
/// `Err` when the body is not JSON at all.
pub fn response_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    let holder: UsageHolder = serde_json::from_slice(body)?;
    Ok(holder.usage.or_else(|| holder.response.and_then(|r| r.usage)).map(|u| u.normalise()))
}

/// What one stream event's data says about usage.
pub struct EventUsage {
    pub usage: Usage,
    /// The event only carries usage (`"choices": []`), as OpenAI's `include_usage` chunk does.
    pub usage_only: bool,
}

/// Usage in one stream event's `data:` payload. Cheap for the common case: events without the
/// word `usage` (or with `"usage":null`) are not parsed.
pub fn event_usage(data: &[u8]) -> Option<EventUsage> {
    if !contains(data, b"\"usage\"") {
        return None;
    }
    let holder: UsageHolder = serde_json::from_slice(data).ok()?;
    let usage_only = holder.choices.as_ref().is_some_and(Vec::is_empty);
    let usage = holder.usage.or_else(|| holder.response.and_then(|r| r.usage))?;
    Some(EventUsage { usage: usage.normalise(), usage_only })
}

/// The JSON string fields that carry text a model reads or writes: chat and completions
/// (`content`, `text`, tool-call `arguments`, `reasoning_content`), the Responses API's deltas.
const TEXT_MARKERS: [&[u8]; 6] = [
    b"\"content\":\"",
    b"\"text\":\"",
    b"\"arguments\":\"",
    b"\"delta\":\"",
    b"\"reasoning_content\":\"",
    b"\"reasoning\":\"",
];

/// Adds the text in a JSON payload (a stream event, a whole answer, or a request body) to a
/// token tally. Responses API summary events (`….done`, `response.completed`) repeat text their
/// deltas already carried, so only its `….delta` events count.
pub fn tally_text(data: &[u8], tally: &mut Tally) {
    if contains(data, b"\"type\":\"response.") && !contains(data, b".delta\"") {
        return;
    }
    for marker in TEXT_MARKERS {
        let mut rest = data;
        while let Some(at) = find(rest, marker) {
            // The marker ends with the value's opening quote.
            let quoted = &rest[at + marker.len() - 1..];
            let len = string_literal_len(quoted);
            add_string_literal(&quoted[..len], tally);
            rest = &quoted[len..];
        }
    }
}

/// The length of the JSON string literal at the start of `quoted` (quotes included; the rest
/// of the input when it is not closed).
fn string_literal_len(quoted: &[u8]) -> usize {
    let mut escaped = false;
    for (i, &b) in quoted.iter().enumerate().skip(1) {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return i + 1;
        }
    }
    quoted.len()
}

fn add_string_literal(literal: &[u8], tally: &mut Tally) {
    let inner = literal.get(1..literal.len().saturating_sub(1)).unwrap_or_default();
    if !inner.contains(&b'\\') {
        if let Ok(text) = std::str::from_utf8(inner) {
            tally.add(text);
        }
    } else if let Ok(text) = serde_json::from_slice::<String>(literal) {
        tally.add(&text);
    }
}

/// `o200k_base` tokens of the text in a JSON payload (see [`tally_text`]).
pub fn text_tokens(data: &[u8]) -> i64 {
    let mut tally = Tally::default();
    tally_text(data, &mut tally);
    tally.tokens()
}

/// Runs on every stream event: a linear search (the window comparison it replaces was
/// quadratic in the worst case).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_reads_only_what_it_needs() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":50,"stream_options":{"include_usage":true}}"#;
        let peek = RequestPeek::parse(body).unwrap();
        assert_eq!(peek.model.as_deref(), Some("gpt-4o"));
        assert!(peek.is_stream() && peek.wants_stream_usage());
        assert_eq!(peek.max_output(), Some(50));
        assert!(RequestPeek::parse(b"not json").is_err());
        assert_eq!(RequestPeek::parse(r#"{"input":"héllo"}"#.as_bytes()).unwrap().input_chars(), Some(5));
    }

    #[test]
    fn rewrite_changes_model_and_usage_only() {
        let body = r#"{"model":"alias","messages":[{"role":"user","content":"a \"quoted\" ü"}],"temperature":0.25,"stream":true}"#.as_bytes();
        let peek = RequestPeek::parse(body).unwrap();
        let caps = crate::domain::capabilities::Capabilities::default();
        let out = fit_request(body, &peek, Some("real-model"), true, &caps).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "real-model");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["messages"][0]["content"], "a \"quoted\" ü");
        assert_eq!(v["temperature"], 0.25);
        let body = br#"{"model":"m","stream_options":{"x":1}}"#;
        let kept = fit_request(body, &RequestPeek::parse(body).unwrap(), None, true, &caps).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&kept).unwrap();
        assert_eq!(v["stream_options"], serde_json::json!({"x":1,"include_usage":true}));
    }

    #[test]
    fn usage_in_every_shape() {
        let chat = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let u = response_usage(chat).unwrap().unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens), (10, 5, 4, 2));
        let responses = br#"{"object":"response","usage":{"input_tokens":7,"output_tokens":3,"input_tokens_details":{"cached_tokens":1}}}"#;
        let u = response_usage(responses).unwrap().unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens, u.cached_tokens), (7, 3, 1));
        assert!(response_usage(br#"{"data":[]}"#).unwrap().is_none());
        assert!(response_usage(b"<html>").is_err());

        let event =
            event_usage(br#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9}}"#).unwrap();
        assert!(event.usage_only);
        assert_eq!(event.usage.completion_tokens, 9);
        assert!(event_usage(br#"{"choices":[{"delta":{"content":"x"}}],"usage":null}"#).is_none());
        let completed =
            event_usage(br#"{"type":"response.completed","response":{"usage":{"input_tokens":2,"output_tokens":4}}}"#)
                .unwrap();
        assert_eq!(completed.usage.completion_tokens, 4);
    }

    #[test]
    fn text_length_of_events() {
        assert_eq!(text_tokens(br#"{"choices":[{"delta":{"content":"hello world"}}]}"#), 2);
        assert_eq!(
            text_tokens(br#"{"choices":[{"delta":{"content":"hello\nworld \u00e9"}}]}"#),
            crate::domain::tokenizer::count("hello\nworld é")
        );
        assert_eq!(text_tokens(br#"{"choices":[{"delta":{"role":"assistant"}}]}"#), 0);
        assert_eq!(text_tokens(br#"{"choices":[{"delta":{"reasoning_content":"hello world"}}]}"#), 2);
        // An unclosed string still counts what is there; nothing panics.
        assert!(text_tokens(br#"{"content":"hello wor"#) > 0);
        assert_eq!(text_tokens(br#"{"content":""#), 0);
        // Responses API: deltas count, summaries that repeat them do not.
        assert_eq!(text_tokens(br#"{"type":"response.output_text.delta","delta":"hello world"}"#), 2);
        assert_eq!(text_tokens(br#"{"type":"response.output_text.done","text":"hello world"}"#), 0);
    }
}

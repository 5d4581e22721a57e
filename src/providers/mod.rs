//! Upstream protocols. A channel's `type` names either a protocol with its own adapter or an
//! OpenAI-compatible vendor, which is data (a preset: base URL, auth, quirks), not code.
//! Conversion providers (Anthropic, Gemini, Azure, Bedrock) plug in as new [`Protocol`] variants
//! with their own modules; the relay dispatches on the protocol and learns no provider details.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod body;
pub mod chat;
pub mod embeddings;
pub mod eventstream;
pub mod fetch;
pub mod gemini;
pub mod messages;
pub mod multipart;
pub mod openai;
#[cfg(test)]
mod properties;
pub mod sse;
pub mod upstream_error;
pub mod vendors;
pub mod wire;

use vendors::VendorPreset;
pub use wire::{ChatAdapter, Convert, Upstream};

/// The wire protocol spoken to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI's API, spoken natively: requests pass through untouched where possible.
    OpenAi,
    /// Anthropic's Messages API: chat completions are converted both ways.
    Anthropic,
    /// Google's Gemini API (`generateContent`).
    Gemini,
    /// Azure OpenAI: OpenAI's wire format at a deployment URL with an `api-key` header.
    Azure,
    /// AWS Bedrock Runtime's Converse API, signed with SigV4.
    Bedrock,
}

/// A channel type resolved to its protocol and preset.
#[derive(Clone, Copy, Debug)]
pub struct ChannelType {
    pub name: &'static str,
    pub protocol: Protocol,
    pub preset: &'static VendorPreset,
}

impl ChannelType {
    /// Resolves a channel `type` string; `None` for an unknown type.
    pub fn parse(name: &str) -> Option<Self> {
        vendors::PRESETS.iter().find(|p| p.name == name).map(|preset| Self {
            name: preset.name,
            protocol: preset.protocol,
            preset,
        })
    }

    /// Every accepted `type` string.
    pub fn names() -> impl Iterator<Item = &'static str> {
        vendors::PRESETS.iter().map(|p| p.name)
    }
}

impl Protocol {
    /// How the protocol serves OpenAI chat by converting; `None` for the OpenAI wire itself.
    pub fn chat_adapter(self) -> Option<&'static ChatAdapter> {
        match self {
            Self::Anthropic => Some(&anthropic::CHAT),
            Self::Gemini => Some(&gemini::CHAT),
            Self::Bedrock => Some(&bedrock::CHAT),
            Self::OpenAi | Self::Azure => None,
        }
    }
}

/// Carries an upstream's stream to a client of another protocol (or of the same protocol, when
/// only its usage needs reading), one event at a time, and reports the usage for billing.
pub enum StreamConverter {
    /// Anthropic Messages events → OpenAI chat completion chunks.
    AnthropicToChat(anthropic::ChatStream),
    /// Anthropic events passed through unchanged to an Anthropic client.
    AnthropicPassthrough(anthropic::StreamUsage),
    /// OpenAI chat completion chunks → Anthropic Messages events.
    ChatToAnthropic(messages::MessagesStream),
    /// Gemini partial responses → OpenAI chat completion chunks.
    GeminiToChat(gemini::ChatStream),
    /// Gemini events passed through unchanged to a Gemini client (usage read on the way).
    GeminiPassthrough(gemini::ChatStream),
    /// Bedrock ConverseStream (binary event-stream frames) → OpenAI chat completion chunks.
    BedrockToChat(bedrock::ChatStream),
    /// One conversion after another (Gemini → OpenAI chat → Anthropic).
    Chain(Box<StreamConverter>, Box<StreamConverter>),
}

impl StreamConverter {
    /// The upstream's stream is not SSE: its raw bytes go to [`Self::push_bytes`].
    pub fn is_binary(&self) -> bool {
        match self {
            Self::BedrockToChat(_) => true,
            Self::Chain(first, _) => first.is_binary(),
            _ => false,
        }
    }

    /// Converts raw upstream bytes (binary framings); client events are appended to `out`.
    pub fn push_bytes(&mut self, bytes: &[u8], out: &mut Vec<bytes::Bytes>) {
        match self {
            Self::BedrockToChat(stream) => stream.push(bytes, out),
            Self::Chain(first, second) => {
                let mut middle = Vec::new();
                first.push_bytes(bytes, &mut middle);
                second.convert_all(&middle, out);
            }
            _ => {}
        }
    }

    /// Converts one upstream SSE event; client events are appended to `out` (passed-through
    /// events share the upstream's bytes: no copy).
    pub fn convert(&mut self, event: &bytes::Bytes, out: &mut Vec<bytes::Bytes>) {
        let data = sse::data_payload(event);
        match (self, data) {
            (Self::AnthropicToChat(stream), Some(data)) => stream.convert(data, out),
            (Self::AnthropicPassthrough(usage), data) => {
                if let Some(data) = data {
                    usage.observe(data);
                }
                out.push(event.clone());
            }
            (Self::ChatToAnthropic(stream), Some(data)) => stream.convert(data, out),
            (Self::GeminiToChat(stream), Some(data)) => stream.convert(data, out),
            (Self::GeminiPassthrough(stream), data) => {
                if let Some(data) = data {
                    stream.observe(data);
                }
                out.push(event.clone());
            }
            (Self::Chain(first, second), _) => {
                let mut middle = Vec::new();
                first.convert(event, &mut middle);
                second.convert_all(&middle, out);
            }
            _ => {}
        }
    }

    fn convert_all(&mut self, events: &[bytes::Bytes], out: &mut Vec<bytes::Bytes>) {
        for event in events {
            self.convert(event, out);
        }
    }

    /// The upstream ended cleanly: events that close the client's stream, if its protocol needs
    /// them and the upstream did not send their cue.
    pub fn finish(&mut self, out: &mut Vec<bytes::Bytes>) {
        match self {
            Self::ChatToAnthropic(stream) => stream.finish_stream(out),
            Self::GeminiToChat(stream) => stream.end(out),
            Self::BedrockToChat(stream) => stream.end(out),
            Self::Chain(first, second) => {
                let mut middle = Vec::new();
                first.finish(&mut middle);
                second.convert_all(&middle, out);
                second.finish(out);
            }
            _ => {}
        }
    }

    /// The usage the upstream reported so far, if any.
    pub fn usage(&self) -> Option<crate::domain::pricing::Usage> {
        match self {
            Self::AnthropicToChat(stream) => stream.usage.usage(),
            Self::AnthropicPassthrough(usage) => usage.usage(),
            Self::ChatToAnthropic(stream) => stream.usage(),
            Self::GeminiToChat(stream) | Self::GeminiPassthrough(stream) => stream.usage(),
            Self::BedrockToChat(stream) => stream.usage(),
            Self::Chain(first, _) => first.usage(),
        }
    }

    /// `o200k_base` tokens of the text generated so far, for an estimate when the upstream
    /// reports no usage (or a stream ends early).
    pub fn text_tokens(&self) -> i64 {
        match self {
            Self::AnthropicToChat(stream) => stream.usage.text_tokens(),
            Self::AnthropicPassthrough(usage) => usage.text_tokens(),
            Self::ChatToAnthropic(stream) => stream.text_tokens(),
            Self::GeminiToChat(stream) | Self::GeminiPassthrough(stream) => stream.text_tokens(),
            Self::BedrockToChat(stream) => stream.text_tokens(),
            Self::Chain(first, _) => first.text_tokens(),
        }
    }
}

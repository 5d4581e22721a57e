//! Upstream protocols. A channel's `type` names either a protocol with its own adapter or an
//! OpenAI-compatible vendor, which is data (a preset: base URL, auth, quirks), not code.
//! Conversion providers (Anthropic, Gemini, Azure, Bedrock) plug in as new [`Protocol`] variants
//! with their own modules; the relay dispatches on the protocol and learns no provider details.

pub mod anthropic;
pub mod chat;
pub mod multipart;
pub mod openai;
pub mod vendors;

use vendors::VendorPreset;

/// The wire protocol spoken to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI's API, spoken natively: requests pass through untouched where possible.
    OpenAi,
    /// Anthropic's Messages API: chat completions are converted both ways.
    Anthropic,
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

/// Converts an upstream's stream events into the client's protocol, one event at a time.
pub enum StreamConverter {
    /// Anthropic Messages events → OpenAI chat completion chunks.
    AnthropicToChat(anthropic::ChatStream),
}

impl StreamConverter {
    /// Converts one upstream event's `data:` payload; client events are appended to `out`.
    pub fn convert(&mut self, data: &[u8], out: &mut Vec<bytes::Bytes>) {
        match self {
            Self::AnthropicToChat(stream) => stream.convert(data, out),
        }
    }
}

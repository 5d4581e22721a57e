//! What the gateway hands a protocol module to address and authenticate an upstream call, and
//! the table through which a protocol that converts from OpenAI chat is spoken: the gateway's
//! attempt runs one path for every such protocol and learns no URL, header or signature.

use bytes::Bytes;

use super::StreamConverter;
use crate::domain::capabilities::Capabilities;
use crate::domain::pricing::Usage;

/// Where and as whom a channel's requests go, borrowed from the channel for one call.
#[derive(Clone, Copy)]
pub struct Upstream<'a> {
    pub http: &'a reqwest::Client,
    /// Without a trailing slash; empty when the protocol has a default (Bedrock's region).
    pub base_url: &'a str,
    /// One of the channel's keys (several rotate).
    pub key: &'a str,
    /// Azure OpenAI: the `api-version` query parameter.
    pub api_version: Option<&'a str>,
    /// AWS Bedrock: the region (endpoint and signature).
    pub region: Option<&'a str>,
}

/// A whole answer as an OpenAI chat completion, with the usage the upstream reported.
pub type ChatAnswer = Result<(Bytes, Option<Usage>), serde_json::Error>;

/// What a request conversion needs besides the body.
pub struct Convert<'a> {
    /// The model name the upstream is asked for (after the channel's mapping).
    pub model: &'a str,
    /// The output cap for a request that sets none, where the upstream requires one.
    pub default_max_tokens: i64,
    pub caps: &'a Capabilities,
}

/// A protocol that serves OpenAI chat completions (and, through them, Anthropic Messages) by
/// converting both ways.
pub struct ChatAdapter {
    /// The upstream takes images inline only: image URLs are fetched into `data:` URLs first.
    pub inline_images: bool,
    /// An OpenAI chat request converted to the upstream's body; `Err` is a message for a 400.
    pub from_chat: fn(&[u8], &Convert<'_>) -> Result<Bytes, String>,
    /// The upstream call for `model` carrying `payload`; `Err` (a signature that cannot be
    /// made) says why no call can be.
    pub post: fn(&Upstream<'_>, model: &str, stream: bool, payload: Bytes) -> Result<reqwest::RequestBuilder, String>,
    /// The stream conversion to OpenAI chat chunks for the client's `model`, told whether to
    /// send the usage chunk.
    pub stream: fn(model: &str, created: i64, include_usage: bool) -> StreamConverter,
    /// A whole answer converted to an OpenAI chat completion naming the client's model.
    pub to_chat: fn(&[u8], model: &str, created: i64) -> ChatAnswer,
}

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

/// The provider-specific part of a channel's `config` object.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ChannelConfig {
    /// Azure OpenAI: the `api-version` query parameter.
    pub api_version: Option<String>,
    /// AWS Bedrock: the region (endpoint and signature).
    pub region: Option<String>,
    /// How a channel holding several keys picks one for a request.
    pub key_selection: KeySelection,
}

/// How a channel picks one of its available keys: at random (the default), or each in turn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySelection {
    #[default]
    Random,
    RoundRobin,
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderMap;

    use super::*;
    use crate::providers::{Protocol, anthropic, azure, bedrock, gemini, openai};

    fn upstream<'a>(http: &'a reqwest::Client, base_url: &'a str, key: &'a str) -> Upstream<'a> {
        Upstream { http, base_url, key, api_version: None, region: None }
    }

    fn header(request: &reqwest::Request, name: &str) -> Option<String> {
        request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    #[test]
    fn each_protocol_addresses_and_authenticates_its_own_calls() {
        // As the app does at start (reqwest is built without a TLS provider of its own).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let json = || reqwest::header::HeaderValue::from_static("application/json");

        let to = upstream(&http, "https://api.openai.com/v1", "sk-1");
        let call = openai::post(&to, Protocol::OpenAi, "/chat/completions", "m", json(), Bytes::new()).build().unwrap();
        assert_eq!(call.url().as_str(), "https://api.openai.com/v1/chat/completions");
        assert_eq!(header(&call, "authorization").as_deref(), Some("Bearer sk-1"));

        let to = upstream(&http, "https://r.openai.azure.com", "az");
        let call =
            openai::post(&to, Protocol::Azure, "/chat/completions", "dep", json(), Bytes::new()).build().unwrap();
        assert_eq!(
            call.url().as_str(),
            "https://r.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(header(&call, "api-key").as_deref(), Some("az"));
        assert_eq!(header(&call, "authorization"), None);
        let to = Upstream { api_version: Some("2025-01-01"), ..to };
        let call = azure::post(&to, "/embeddings", "dep").build().unwrap();
        assert!(call.url().as_str().ends_with("/openai/deployments/dep/embeddings?api-version=2025-01-01"));

        let to = upstream(&http, "https://api.anthropic.com", "ak");
        let mut client = HeaderMap::new();
        client.insert("anthropic-version", "2099-01-01".parse().unwrap());
        client.insert("anthropic-beta", "tools-1".parse().unwrap());
        let passed = anthropic::post(&to, Bytes::new(), Some(&client)).build().unwrap();
        assert_eq!(passed.url().as_str(), "https://api.anthropic.com/v1/messages");
        assert_eq!(header(&passed, "x-api-key").as_deref(), Some("ak"));
        assert_eq!(header(&passed, "anthropic-version").as_deref(), Some("2099-01-01"));
        assert_eq!(header(&passed, "anthropic-beta").as_deref(), Some("tools-1"));
        let converted = (anthropic::CHAT.post)(&to, "m", true, Bytes::new()).unwrap().build().unwrap();
        assert_eq!(header(&converted, "anthropic-version").as_deref(), Some(anthropic::VERSION));
        assert_eq!(header(&converted, "anthropic-beta"), None);

        let to = upstream(&http, "https://generativelanguage.googleapis.com", "gk");
        let call = (gemini::CHAT.post)(&to, "gemini-x", true, Bytes::new()).unwrap().build().unwrap();
        assert_eq!(
            call.url().as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
        );
        assert_eq!(header(&call, "x-goog-api-key").as_deref(), Some("gk"));
        let call = gemini::post_embeddings(&to, "emb", Bytes::new()).build().unwrap();
        assert!(call.url().as_str().ends_with("/v1beta/models/emb:batchEmbedContents"));

        // No base URL: the region's endpoint (us-east-1 when none is set), signed with SigV4.
        let to = Upstream { region: Some("eu-west-1"), ..upstream(&http, "", "AKID:SECRET") };
        let call = (bedrock::CHAT.post)(&to, "anthropic.claude-v2:1", false, Bytes::from_static(b"{}"))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            call.url().as_str(),
            "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-v2%3A1/converse"
        );
        assert!(header(&call, "authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=AKID/")));
        let to = upstream(&http, "", "bedrock-api-key");
        let call = bedrock::post(&to, "/model/m/invoke", Bytes::new()).unwrap().build().unwrap();
        assert!(call.url().as_str().starts_with("https://bedrock-runtime.us-east-1.amazonaws.com/"));
        assert_eq!(header(&call, "authorization").as_deref(), Some("Bearer bedrock-api-key"));
    }

    #[test]
    fn the_converting_protocols_have_an_adapter_and_openai_has_none() {
        for protocol in [Protocol::Anthropic, Protocol::Gemini, Protocol::Bedrock] {
            assert!(protocol.chat_adapter().is_some(), "{protocol:?}");
        }
        assert!(Protocol::OpenAi.chat_adapter().is_none());
        assert!(Protocol::Azure.chat_adapter().is_none());
        assert!(!anthropic::CHAT.inline_images && gemini::CHAT.inline_images && bedrock::CHAT.inline_images);
    }
}

//! Talking to an upstream: the request as the attempts see it, what an attempt brings back, one
//! HTTP call under the first-byte timeout, and what an upstream's failure means (retry elsewhere,
//! disable the channel, or tell the client): a verdict the relay acts on.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::Gateway;
use super::endpoints::Endpoint;
use super::error::GatewayError;
use crate::domain::pricing::Usage;
use crate::domain::time::now_ms;
use crate::providers::StreamConverter;
use crate::providers::openai::RequestPeek;
use crate::providers::upstream_error::{self, Cause, Verdict};
use crate::services::routing::keys::MAX_COOLDOWN_MS;
use crate::services::routing::{Channel, KeyedChannel};

/// The most we read of an upstream's non-stream answer or error.
const MAX_UPSTREAM_BODY: usize = 256 * 1024 * 1024;
const MAX_UPSTREAM_ERROR_BODY: usize = 64 * 1024;

/// The parsed request, borrowed for the attempts.
pub(super) struct Request<'a> {
    pub(super) endpoint: Endpoint,
    pub(super) body: &'a Bytes,
    pub(super) peek: &'a RequestPeek<'a>,
    /// The model this attempt serves: the requested one, or a fallback model.
    pub(super) model: &'a str,
    /// The model the client's body names (a fallback's attempts rename it upstream).
    pub(super) body_model: &'a str,
    /// Whose request it is (a circuit opens only on several users' failures).
    pub(super) user_id: i64,
    pub(super) stream: bool,
    pub(super) prompt_estimate: i64,
    /// `gateway.default_max_tokens` as the request was admitted with (upstreams that require an
    /// output limit get it when the client set none).
    pub(super) default_max_tokens: i64,
    /// How the requested model's family counts tokens (for estimates).
    pub(super) rule: crate::domain::tokenizer::TokenRule,
    /// The multipart boundary, for form bodies.
    pub(super) boundary: Option<&'a str>,
    pub(super) content_type: HeaderValue,
    /// The client's headers (Anthropic's version and beta headers pass through).
    pub(super) headers: &'a HeaderMap,
    /// The request as a chat completion with its image URLs fetched inline, made by the first
    /// attempt that needs it and reused by the failover attempts (images are fetched once).
    pub(super) inline_images: InlineImages,
    /// The routing snapshot the request was routed with (prices, capabilities).
    pub(super) table: &'a crate::services::routing::RoutingTable,
    /// The request's conversation, when it names one and affinity is on, and how long it sticks.
    pub(super) conversation: Option<(crate::services::affinity::Conversation, std::time::Duration)>,
}

/// The outcome of inlining a request's images: the body, or the refusal's message and parameter.
pub(super) type InlineImages = tokio::sync::OnceCell<Result<Bytes, (String, Option<&'static str>)>>;

pub(super) enum Answer {
    Whole {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
        usage: Option<Usage>,
    },
    Stream {
        content_type: Option<HeaderValue>,
        first: Bytes,
        rest: BoxStream<'static, reqwest::Result<Bytes>>,
        converter: Option<Box<StreamConverter>>,
    },
}

pub(super) enum Attempt {
    Answered(Answer),
    /// Nothing reached the client: another channel may try.
    Retry(GatewayError),
    /// The request itself was refused: no other channel would do better.
    Fail(GatewayError),
    /// The upstream refused the key or the credit behind it: the key is to be disabled for
    /// `reason` (the channel too when it was its last; the relay does it), and another channel
    /// may try.
    Disable {
        error: GatewayError,
        reason: String,
    },
}

/// What one upstream call brought: a whole 2xx body, a 2xx stream with its first chunk, or a
/// failure already classified.
pub(super) enum Received {
    Whole { status: StatusCode, content_type: Option<HeaderValue>, body: Bytes },
    Stream { content_type: Option<HeaderValue>, first: Bytes, rest: BoxStream<'static, reqwest::Result<Bytes>> },
    Failed(Attempt),
}

/// Sends a prepared upstream request under the first-byte timeout; for streams, waits for the
/// first chunk, so an upstream that fails before it can still be failed over.
pub(super) async fn send(
    state: &Gateway,
    channel: &KeyedChannel,
    builder: reqwest::RequestBuilder,
    stream: bool,
) -> Received {
    let site = state.site();
    let config = &site.gateway;
    let response = match tokio::time::timeout(config.first_byte_timeout, builder.send()).await {
        Err(_) => return Received::Failed(Attempt::Retry(GatewayError::UpstreamTimeout)),
        Ok(Err(e)) if e.is_timeout() => return Received::Failed(Attempt::Retry(GatewayError::UpstreamTimeout)),
        Ok(Err(e)) => {
            tracing::warn!(channel = channel.id, error = %e, "upstream request failed");
            return Received::Failed(Attempt::Retry(GatewayError::UpstreamUnavailable));
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    if !status.is_success() {
        let error_type = upstream_error::error_type_header(response.headers());
        if status == StatusCode::TOO_MANY_REQUESTS
            && let Some(wait) = upstream_error::retry_after_ms(response.headers())
        {
            // The upstream said how long this key must wait: it gets no traffic until then.
            let wait = i64::try_from(wait).unwrap_or(i64::MAX).min(MAX_COOLDOWN_MS);
            channel.key().stats.hold_off(now_ms().saturating_add(wait));
        }
        let body = read_limited(response, MAX_UPSTREAM_ERROR_BODY, config.first_byte_timeout).await.unwrap_or_default();
        return Received::Failed(classify_failure(channel, status, error_type.as_deref(), &body));
    }
    if stream {
        let mut rest = response.bytes_stream().boxed();
        return match tokio::time::timeout(config.first_byte_timeout, rest.next()).await {
            Err(_) => Received::Failed(Attempt::Retry(GatewayError::UpstreamTimeout)),
            Ok(None | Some(Err(_))) => Received::Failed(Attempt::Retry(GatewayError::UpstreamUnavailable)),
            Ok(Some(Ok(first))) if starts_with_error_event(&first) => {
                tracing::warn!(channel = channel.id, "upstream stream began with an error event");
                Received::Failed(Attempt::Retry(GatewayError::UpstreamUnavailable))
            }
            Ok(Some(Ok(first))) => Received::Stream { content_type, first, rest },
        };
    }
    match read_limited(response, MAX_UPSTREAM_BODY, config.first_byte_timeout).await {
        Some(body) => Received::Whole { status, content_type, body },
        None => Received::Failed(Attempt::Retry(GatewayError::UpstreamUnavailable)),
    }
}

/// Decides what an upstream error means, from its status and code fields (never its message,
/// see `providers::upstream_error`): the channel's fault (disable it, try another), a passing
/// condition (try another), or the request's fault (tell the client). Nothing is done here.
pub(super) fn classify_failure(
    channel: &Channel,
    status: StatusCode,
    error_type: Option<&str>,
    body: &[u8],
) -> Attempt {
    let status = status.as_u16();
    match upstream_error::verdict(channel.kind.protocol, status, error_type, body) {
        Verdict::Disable(cause, code) => {
            let reason = match cause {
                Cause::KeyRefused => format!("upstream rejected the key (HTTP {status}): {code}"),
                Cause::NoCredit => format!("upstream account has no credit (HTTP {status}): {code}"),
            };
            Attempt::Disable { error: GatewayError::UpstreamUnavailable, reason }
        }
        Verdict::Retry => {
            tracing::warn!(channel = channel.id, status, "upstream refused the request; trying another channel");
            Attempt::Retry(GatewayError::UpstreamUnavailable)
        }
        Verdict::RateLimited => Attempt::Retry(GatewayError::UpstreamRateLimited),
        Verdict::Client => Attempt::Fail(translate_rejection(channel, status, body)),
    }
}

/// An upstream's 4xx for the request itself, translated: its message (scrubbed of the channel's
/// key and address), type and code, never its raw body.
pub(super) fn translate_rejection(channel: &Channel, status: u16, body: &[u8]) -> GatewayError {
    #[derive(serde::Deserialize)]
    struct Wire {
        error: Option<WireError>,
        /// AWS services answer `{"message": …}`.
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct WireError {
        message: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
        code: Option<serde_json::Value>,
    }
    let wire = serde_json::from_slice::<Wire>(body).ok();
    let top_message = wire.as_ref().and_then(|w| w.message.clone());
    let parsed = wire.and_then(|w| w.error);
    let mut message = parsed
        .as_ref()
        .and_then(|e| e.message.clone())
        .or(top_message)
        .unwrap_or_else(|| format!("The upstream provider rejected the request (HTTP {status})."));
    for key in &channel.keys {
        if key.secret.len() >= 4 {
            message = message.replace(key.secret.as_str(), "[redacted]");
        }
    }
    message = message.replace(&channel.base_url, "[upstream]");
    if let Some(host) = url::Url::parse(&channel.base_url).ok().and_then(|u| u.host_str().map(str::to_string)) {
        message = message.replace(&host, "[upstream]");
    }
    message.truncate(message.floor_char_boundary(1000));
    let simple = |s: &str| s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    let kind = parsed.as_ref().and_then(|e| e.kind.clone()).filter(|k| simple(k));
    let code = parsed
        .as_ref()
        .and_then(|e| e.code.as_ref())
        .and_then(|c| c.as_str().map(str::to_string))
        .filter(|c| simple(c));
    let status = if (400..500).contains(&status) { status } else { 400 };
    GatewayError::UpstreamRejected { status, message, kind, code }
}

/// Reads an upstream body up to `limit` bytes within `deadline`; `None` on failure.
pub(super) async fn read_limited(response: reqwest::Response, limit: usize, deadline: Duration) -> Option<Bytes> {
    let read = async {
        let mut stream = response.bytes_stream();
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.ok()?;
            total += chunk.len();
            if total > limit {
                return None;
            }
            chunks.push(chunk);
        }
        Some(match chunks.len() {
            1 => chunks.pop().unwrap_or_default(),
            _ => Bytes::from(chunks.concat()),
        })
    };
    tokio::time::timeout(deadline, read).await.ok().flatten()
}

/// A stream whose first event is an error (Anthropic's `event: error`, e.g. overloaded, or an
/// OpenAI-style `data: {"error": …}`): nothing reached the client yet, so another channel may try.
fn starts_with_error_event(first: &[u8]) -> bool {
    let first = first.trim_ascii_start();
    first.starts_with(b"event: error") || first.starts_with(b"data: {\"error\"")
}

//! A channel probe: one tiny chat completion sent the way requests go (the channel's protocol
//! conversion included), for the operator's "test" button.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::attempts::attempt;
use super::endpoints::Endpoint;
use super::error::GatewayError;
use super::health;
use super::upstream::{Answer, Attempt, InlineImages, Request};
use super::{Gateway, GatewayState};
use crate::db;
use crate::db::channels::ChannelRow;
use crate::domain::tokenizer::TokenRule;
use crate::providers::openai::RequestPeek;
use crate::services::routing::{KeyState, KeyedChannel, channel_from_row};
use crate::state::{AppState, ProbeOutcome, UpstreamAccess};

/// Sends one tiny chat completion for `model` through the channel, the way requests go (its
/// protocol's conversion included); a message saying what went wrong otherwise.
pub async fn probe(state: &Gateway, channel: &KeyedChannel, model: &str) -> Result<String, String> {
    let body = Bytes::from(
        serde_json::json!({ "model": model, "messages": [{ "role": "user", "content": "ping" }], "max_tokens": 1 })
            .to_string(),
    );
    let peek = RequestPeek::parse(&body)?;
    let headers = HeaderMap::new();
    let table = state.routing().current();
    let request = Request {
        endpoint: Endpoint::ChatCompletions,
        body: &body,
        peek: &peek,
        model,
        body_model: model,
        user_id: 0,
        stream: false,
        prompt_estimate: 1,
        default_max_tokens: state.site().gateway.default_max_tokens as i64,
        rule: TokenRule::for_model(model),
        boundary: None,
        content_type: HeaderValue::from_static("application/json"),
        headers: &headers,
        inline_images: InlineImages::new(),
        table: &table,
        conversation: None,
    };
    match attempt(state, channel, &request).await {
        Attempt::Answered(Answer::Whole { body, .. }) => Ok(probe_sample(&body)),
        Attempt::Answered(Answer::Stream { .. }) => Ok(String::new()),
        Attempt::Retry(e) | Attempt::Fail(e) => Err(probe_failure(&e)),
        // The verdict is acted on before the operator sees the answer (see `health::disable`).
        Attempt::Disable { error, reason } => {
            health::disable(state, channel, &reason).await;
            Err(probe_failure(&error))
        }
    }
}

/// What the services reach upstreams through ([`UpstreamAccess`]): the gateway's request path
/// and client, installed in the shared state by the app.
pub struct Upstreams(pub Arc<GatewayState>);

impl UpstreamAccess for Upstreams {
    /// A stored channel made usable (keys decrypted) and probed.
    fn probe_channel<'a>(
        &'a self,
        state: &'a AppState,
        row: &'a ChannelRow,
        model: &'a str,
        key: Option<&'a str>,
    ) -> BoxFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            // The stored states of the keys (a probe counts nothing and ignores cooldowns).
            let inactive: Vec<String> = match db::channel_keys::of_channel(state.db().pool(), row.id).await {
                Ok(states) => states.into_iter().filter(|k| !k.is_active()).map(|k| k.fingerprint).collect(),
                Err(e) => return ProbeOutcome::Unusable(format!("the keys' states could not be read: {e}")),
            };
            let key_state = |fingerprint: &str| KeyState {
                active: !inactive.iter().any(|f| f == fingerprint),
                stats: Arc::default(),
            };
            let channel = match channel_from_row(row, state.secret_key(), key_state) {
                Ok(channel) => Arc::new(channel),
                Err(why) => return ProbeOutcome::Unusable(why),
            };
            let keyed = match key {
                Some(wanted) => channel.keys.iter().position(|k| k.fingerprint == wanted),
                // A channel whose every key is out is probed through its first.
                None => channel.with_key().map(|k| k.key).or((!channel.keys.is_empty()).then_some(0)),
            };
            let Some(index) = keyed else {
                return ProbeOutcome::Unusable("the channel holds no such key".into());
            };
            let keyed = KeyedChannel { channel: channel.clone(), key: index };
            let gateway = Gateway::new(state.clone(), self.0.clone());
            let result = probe(&gateway, &keyed, model).await;
            let keys = channel.keys.iter().map(|k| k.secret.clone()).collect();
            ProbeOutcome::Done { keys, key: keyed.key().fingerprint.clone(), result }
        })
    }

    fn client(&self) -> reqwest::Client {
        self.0.http()
    }
}

/// The start of a probe's reply (the assistant's text when the body is a chat completion), for
/// the operator to see what the upstream said.
fn probe_sample(body: &[u8]) -> String {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/choices/0/message/content").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    text.chars().take(200).collect()
}

fn probe_failure(error: &GatewayError) -> String {
    match error {
        GatewayError::UpstreamTimeout => "the upstream did not answer in time".into(),
        GatewayError::UpstreamRateLimited => "the upstream is rate limiting".into(),
        GatewayError::UpstreamRejected { status, message, .. } => {
            format!("the upstream answered HTTP {status}: {message}")
        }
        _ => "the upstream could not be reached or failed".into(),
    }
}

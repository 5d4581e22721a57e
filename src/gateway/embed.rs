//! Embeddings through the protocols that have their own embedding calls (Gemini's
//! `batchEmbedContents`, Bedrock's InvokeModel), answered in OpenAI's shape and billed at the
//! provider's token count, or the local estimate when it reports none.

use axum::http::HeaderValue;

use super::Gateway;
use super::error::GatewayError;
use super::estimate;
use super::upstream::{Answer, Attempt, Received, Request, send};
use crate::domain::pricing::Usage;
use crate::providers::{Protocol, bedrock, embeddings, gemini};
use crate::services::routing::KeyedChannel;

/// Embeddings through a Gemini or Bedrock channel.
pub(super) async fn attempt(state: &Gateway, channel: &KeyedChannel, request: &Request<'_>) -> Attempt {
    match channel.kind.protocol {
        Protocol::Bedrock => bedrock_embeddings(state, channel, request).await,
        _ => gemini_embeddings(state, channel, request).await,
    }
}

/// Embeddings through a Gemini channel: `batchEmbedContents`; Gemini reports no token count, so
/// the prompt is counted locally.
async fn gemini_embeddings(state: &Gateway, channel: &KeyedChannel, request: &Request<'_>) -> Attempt {
    let embed = match embeddings::parse(request.body) {
        Ok(embed) => embed,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: Some("input") }),
    };
    let model = channel.upstream_model(request.model);
    let http = state.gateway().http();
    let builder = gemini::post_embeddings(&channel.upstream(&http), model, embeddings::gemini_request(&embed, model));
    match send(state, channel, builder, false).await {
        Received::Whole { status, body, .. } => match embeddings::gemini_vectors(&body) {
            Ok(vectors) => {
                embedded(status, request, vectors, embed.base64, estimate::texts(request.rule, &embed.texts))
            }
            Err(_) => Attempt::Retry(GatewayError::UpstreamUnavailable),
        },
        Received::Stream { .. } => Attempt::Retry(GatewayError::UpstreamUnavailable),
        Received::Failed(attempt) => attempt,
    }
}

/// Embeddings through a Bedrock channel: InvokeModel on a Titan (one call per text) or Cohere
/// (one call) embedding model.
async fn bedrock_embeddings(state: &Gateway, channel: &KeyedChannel, request: &Request<'_>) -> Attempt {
    let embed = match embeddings::parse(request.body) {
        Ok(embed) => embed,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: Some("input") }),
    };
    let model = channel.upstream_model(request.model);
    let Some(family) = embeddings::BedrockFamily::of(model) else {
        let message = format!("The model {} is not a Bedrock embedding model (Titan or Cohere).", request.model);
        return Attempt::Fail(GatewayError::BadRequest { message, param: Some("model") });
    };
    let path = bedrock::invoke_path(model);
    let http = state.gateway().http();
    let (mut vectors, mut tokens, mut counted) = (Vec::new(), 0, true);
    let mut status = axum::http::StatusCode::OK;
    for payload in family.requests(&embed) {
        let builder = match bedrock::post(&channel.upstream(&http), &path, payload) {
            Ok(builder) => builder,
            Err(e) => {
                tracing::error!(channel = channel.id, error = %e, "cannot build the upstream request");
                return Attempt::Retry(GatewayError::UpstreamUnavailable);
            }
        };
        match send(state, channel, builder, false).await {
            Received::Whole { status: s, body, .. } => match family.vectors(&body) {
                Ok((more, count)) => {
                    status = s;
                    vectors.extend(more);
                    tokens += count.unwrap_or(0);
                    counted &= count.is_some();
                }
                Err(_) => return Attempt::Retry(GatewayError::UpstreamUnavailable),
            },
            Received::Stream { .. } => return Attempt::Retry(GatewayError::UpstreamUnavailable),
            Received::Failed(attempt) => return attempt,
        }
    }
    let tokens = if counted { tokens } else { estimate::texts(request.rule, &embed.texts) };
    embedded(status, request, vectors, embed.base64, tokens)
}

/// The OpenAI embeddings answer, billed at `prompt_tokens` (the provider's count, or the local
/// estimate when it reports none).
fn embedded(
    status: axum::http::StatusCode,
    request: &Request<'_>,
    vectors: Vec<Vec<f32>>,
    base64: bool,
    prompt_tokens: i64,
) -> Attempt {
    let body = embeddings::response(request.model, vectors, base64, prompt_tokens);
    let usage = Usage { prompt_tokens, ..Usage::default() };
    Attempt::Answered(Answer::Whole {
        status,
        content_type: Some(HeaderValue::from_static("application/json")),
        body,
        usage: Some(usage),
    })
}

//! One attempt on one channel, per protocol: the relay's request sent the way the channel's
//! upstream speaks (passed through, or converted by `crate::providers`), and its answer brought
//! back in the client's protocol. The relay learns no provider's details.

use std::sync::Arc;

use axum::http::{HeaderValue, header};
use bytes::Bytes;

use super::endpoints::Endpoint;
use super::error::GatewayError;
use super::routing::Channel;
use super::upstream::{Answer, Attempt, Received, Request, openai_post, send};
use crate::domain::capabilities::Capabilities;
use crate::domain::pricing::Usage;
use crate::domain::time::now_ms;
use crate::providers::openai;
use crate::providers::vendors::StreamUsage;
use crate::providers::{
    self, Protocol, StreamConverter, anthropic, bedrock, embeddings, fetch, gemini, messages, multipart,
};
use crate::state::AppState;

pub(super) async fn attempt(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    match (request.endpoint, channel.kind.protocol) {
        (Endpoint::Messages, Protocol::Anthropic) => {
            return attempt_messages_passthrough(state, channel, request).await;
        }
        (Endpoint::Messages, Protocol::OpenAi | Protocol::Azure) => {
            return attempt_messages_via_chat(state, channel, request).await;
        }
        (_, Protocol::Anthropic) => return attempt_anthropic(state, channel, request).await,
        (Endpoint::GeminiGenerate, Protocol::Gemini) => return attempt_gemini_native(state, channel, request).await,
        (Endpoint::GeminiGenerate, _) => {
            return Attempt::Fail(GatewayError::BadRequest {
                message: format!("The model {} is not served by a Gemini channel.", request.model),
                param: Some("model"),
            });
        }
        (_, Protocol::Gemini) => return attempt_gemini(state, channel, request).await,
        (_, Protocol::Bedrock) => return attempt_bedrock(state, channel, request).await,
        // Another channel of the route may serve it: try it, and refuse clearly if none does.
        (Endpoint::Responses, Protocol::OpenAi | Protocol::Azure) if !channel.kind.preset.responses => {
            return Attempt::Retry(unsupported(request));
        }
        (_, Protocol::OpenAi | Protocol::Azure) => {}
    }
    let upstream_model = channel.upstream_model(request.model);
    let mapped = (upstream_model != request.model).then_some(upstream_model);
    let inject_usage = request.stream
        && request.endpoint.injects_stream_usage()
        && channel.kind.preset.stream_usage == StreamUsage::OnRequest
        && !request.peek.wants_stream_usage();
    let payload = if let Some(boundary) = request.boundary {
        mapped.and_then(|model| multipart::replace_field(request.body, boundary, "model", model))
    } else {
        let caps = capabilities(request, upstream_model);
        if let Err(message) = refuse_unsupported_passthrough(request, &caps) {
            return Attempt::Fail(GatewayError::BadRequest { message, param: None });
        }
        match openai::fit_request(request.body, request.peek, mapped, inject_usage, &caps) {
            Ok(payload) => payload,
            Err(e) => {
                return Attempt::Fail(GatewayError::BadRequest {
                    message: format!("Invalid JSON body ({e})."),
                    param: None,
                });
            }
        }
    };
    let payload = payload.unwrap_or_else(|| request.body.clone());
    let builder = openai_post(state, channel, request.endpoint, upstream_model)
        .header(header::CONTENT_TYPE, request.content_type.clone())
        .body(payload);
    let (status, content_type, body) = match send(state, channel, builder, request.stream).await {
        Received::Whole { status, content_type, body } => (status, content_type, body),
        Received::Stream { content_type, first, rest } => {
            return Attempt::Answered(Answer::Stream { content_type, first, rest, converter: None });
        }
        Received::Failed(attempt) => return attempt,
    };
    if !request.endpoint.answers_json() {
        // Audio, or text in whatever `response_format` asked for: usage only if it is JSON with some.
        let usage = openai::response_usage(&body).ok().flatten();
        return Attempt::Answered(Answer::Whole { status, content_type, body, usage });
    }
    match openai::response_usage(&body) {
        Ok(usage) => Attempt::Answered(Answer::Whole { status, content_type, body, usage }),
        Err(_) => {
            tracing::warn!(channel = channel.id, "upstream answered 2xx with a body that is not JSON");
            Attempt::Retry(GatewayError::UpstreamUnavailable)
        }
    }
}

/// What the channel's model can do (the operator's table, else the shipped defaults).
fn capabilities(request: &Request<'_>, upstream_model: &str) -> Capabilities {
    request.table.capabilities(upstream_model)
}

/// Tools, images or audio in a passed-through request for a model known not to take them.
/// Images and audio are looked for only then, as JSON's own part types (`"image_url"`,
/// `"input_image"`, `"input_audio"`: quotes inside text are escaped, so text cannot match).
fn refuse_unsupported_passthrough(request: &Request<'_>, caps: &Capabilities) -> Result<(), String> {
    let body: &[u8] = request.body;
    let has = |needles: &[&[u8]]| needles.iter().any(|n| body.windows(n.len()).any(|w| w == *n));
    let needs = providers::chat::Needs {
        tools: request.peek.tools.as_ref().is_some_and(|t| !t.is_empty()),
        images: caps.refuses_images() && has(&[b"\"image_url\"", b"\"input_image\""]),
        audio: caps.refuses_audio() && has(&[b"\"input_audio\""]),
    };
    providers::chat::refuse_unsupported(caps, needs)
}

/// The refusal for an endpoint a channel's protocol has no counterpart for.
fn unsupported_endpoint(request: &Request<'_>) -> Attempt {
    Attempt::Fail(unsupported(request))
}

fn unsupported(request: &Request<'_>) -> GatewayError {
    GatewayError::BadRequest {
        message: format!("The model {} does not support {}.", request.model, request.endpoint.path()),
        param: Some("model"),
    }
}

/// A chat completion through an Anthropic channel: converted there and back.
async fn attempt_anthropic(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    if request.endpoint != Endpoint::ChatCompletions {
        return unsupported_endpoint(request);
    }
    let upstream_model = channel.upstream_model(request.model);
    let default_max_tokens = state.config().gateway.default_max_tokens;
    let caps = capabilities(request, upstream_model);
    let converted = anthropic::from_chat(request.body, upstream_model, default_max_tokens, &caps)
        .and_then(|r| serde_json::to_vec(&r).map_err(|e| e.to_string()));
    let payload = match converted {
        Ok(payload) => payload,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: None }),
    };
    let builder = state
        .gateway()
        .http()
        .post(format!("{}{}", channel.base_url, anthropic::MESSAGES_PATH))
        .header("x-api-key", channel.key())
        .header("anthropic-version", anthropic::VERSION)
        .header(header::CONTENT_TYPE, "application/json")
        .body(payload);
    let created = now_ms() / 1000;
    let received = send(state, channel, builder, request.stream).await;
    in_client_protocol(
        channel,
        request,
        received,
        |include_usage| {
            StreamConverter::AnthropicToChat(anthropic::ChatStream::new(request.model, created, include_usage))
        },
        |body| anthropic::to_chat(body, request.model, created).map(|(chat, usage)| (chat, Some(usage))),
    )
}

/// The request as an OpenAI chat completion (a Messages request converted to one) with its image
/// URLs fetched into `data:` URLs, for providers that take images inline only. Made once per
/// request: a failover attempt reuses it instead of fetching the images again.
async fn chat_with_inline_images(
    state: &AppState,
    request: &Request<'_>,
    caps: &Capabilities,
) -> Result<Bytes, Attempt> {
    let inlined = request
        .inline_images
        .get_or_init(|| async {
            let chat = if request.endpoint == Endpoint::Messages {
                messages::to_chat(request.body, request.model, false, caps).map_err(|message| (message, None))?
            } else {
                request.body.clone()
            };
            let limits = fetch::Limits::from_config(&state.config().gateway);
            fetch::inline_image_urls(&chat, limits).await.map_err(|e| (e.to_string(), Some("messages")))
        })
        .await;
    inlined.clone().map_err(|(message, param)| Attempt::Fail(GatewayError::BadRequest { message, param }))
}

/// A chat completion (or, converted to one first, a Messages request) through a Gemini channel.
async fn attempt_gemini(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    let anthropic_client = request.endpoint == Endpoint::Messages;
    if request.endpoint == Endpoint::Embeddings {
        return attempt_gemini_embeddings(state, channel, request).await;
    }
    if !anthropic_client && request.endpoint != Endpoint::ChatCompletions {
        return unsupported_endpoint(request);
    }
    let upstream_model = channel.upstream_model(request.model);
    let caps = capabilities(request, upstream_model);
    let chat = match chat_with_inline_images(state, request, &caps).await {
        Ok(chat) => chat,
        Err(attempt) => return attempt,
    };
    let payload = match gemini::from_chat(&chat, &caps) {
        Ok(payload) => payload,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: None }),
    };
    let builder = state
        .gateway()
        .http()
        .post(format!("{}{}", channel.base_url, gemini::method_path(upstream_model, request.stream)))
        .header("x-goog-api-key", channel.key())
        .header(header::CONTENT_TYPE, "application/json")
        .body(payload);
    let created = now_ms() / 1000;
    let received = send(state, channel, builder, request.stream).await;
    in_client_protocol(
        channel,
        request,
        received,
        |include_usage| StreamConverter::GeminiToChat(gemini::ChatStream::new(request.model, created, include_usage)),
        |body| gemini::to_chat(body, request.model, created),
    )
}

/// A Gemini-native request to a Gemini channel: the body passes through untouched, the model
/// in the URL mapped; usage from `usageMetadata`.
async fn attempt_gemini_native(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    let upstream_model = channel.upstream_model(request.model);
    let builder = state
        .gateway()
        .http()
        .post(format!("{}{}", channel.base_url, gemini::method_path(upstream_model, request.stream)))
        .header("x-goog-api-key", channel.key())
        .header(header::CONTENT_TYPE, "application/json")
        .body(request.body.clone());
    match send(state, channel, builder, request.stream).await {
        Received::Stream { content_type, first, rest } => Attempt::Answered(Answer::Stream {
            content_type,
            first,
            rest,
            converter: Some(Box::new(StreamConverter::GeminiPassthrough(gemini::ChatStream::new(
                request.model,
                0,
                false,
            )))),
        }),
        Received::Whole { status, content_type, body } => match gemini::response_usage(&body) {
            Ok(usage) => Attempt::Answered(Answer::Whole { status, content_type, body, usage }),
            Err(_) => Attempt::Retry(GatewayError::UpstreamUnavailable),
        },
        Received::Failed(attempt) => attempt,
    }
}

/// A chat completion (or, converted to one first, a Messages request) through a Bedrock channel:
/// Converse / ConverseStream, signed with SigV4 (or a Bedrock API key).
async fn attempt_bedrock(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    let anthropic_client = request.endpoint == Endpoint::Messages;
    if request.endpoint == Endpoint::Embeddings {
        return attempt_bedrock_embeddings(state, channel, request).await;
    }
    if !anthropic_client && request.endpoint != Endpoint::ChatCompletions {
        return unsupported_endpoint(request);
    }
    let upstream_model = channel.upstream_model(request.model);
    let caps = capabilities(request, upstream_model);
    let chat = match chat_with_inline_images(state, request, &caps).await {
        Ok(chat) => chat,
        Err(attempt) => return attempt,
    };
    let payload = match bedrock::from_chat(&chat, &caps) {
        Ok(payload) => payload,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: None }),
    };
    let path = bedrock::path(upstream_model, request.stream);
    let builder = match bedrock_post(state, channel, &path, payload) {
        Ok(builder) => builder,
        Err(error) => return Attempt::Retry(error),
    };
    let created = now_ms() / 1000;
    let received = send(state, channel, builder, request.stream).await;
    in_client_protocol(
        channel,
        request,
        received,
        |include_usage| StreamConverter::BedrockToChat(bedrock::ChatStream::new(request.model, created, include_usage)),
        |body| bedrock::to_chat(body, request.model, created),
    )
}

/// A Messages request to an Anthropic channel: passed through (the model mapped, if the channel
/// maps it), its usage read from the answer or the stream.
async fn attempt_messages_passthrough(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    let upstream_model = channel.upstream_model(request.model);
    let caps = capabilities(request, upstream_model);
    let mapped = (upstream_model != request.model).then_some(upstream_model);
    let payload = match anthropic::fit_request(request.body, request.peek, mapped, &caps) {
        Ok(payload) => payload.unwrap_or_else(|| request.body.clone()),
        Err(e) => {
            return Attempt::Fail(GatewayError::BadRequest {
                message: format!("Invalid JSON body ({e})."),
                param: None,
            });
        }
    };
    let version = request.headers.get("anthropic-version").cloned();
    let mut builder = state
        .gateway()
        .http()
        .post(format!("{}{}", channel.base_url, anthropic::MESSAGES_PATH))
        .header("x-api-key", channel.key())
        .header("anthropic-version", version.unwrap_or(HeaderValue::from_static(anthropic::VERSION)))
        .header(header::CONTENT_TYPE, "application/json")
        .body(payload);
    if let Some(beta) = request.headers.get("anthropic-beta") {
        builder = builder.header("anthropic-beta", beta.clone());
    }
    match send(state, channel, builder, request.stream).await {
        Received::Stream { content_type, first, rest } => Attempt::Answered(Answer::Stream {
            content_type,
            first,
            rest,
            converter: Some(Box::new(StreamConverter::AnthropicPassthrough(anthropic::StreamUsage::default()))),
        }),
        Received::Whole { status, content_type, body } => match anthropic::response_usage(&body) {
            Ok(usage) => Attempt::Answered(Answer::Whole { status, content_type, body, usage: Some(usage) }),
            Err(_) => {
                tracing::warn!(channel = channel.id, "upstream answered 2xx with a body that is not JSON");
                Attempt::Retry(GatewayError::UpstreamUnavailable)
            }
        },
        Received::Failed(attempt) => attempt,
    }
}

/// A Messages request to an OpenAI-protocol channel: converted to a chat completion and back.
async fn attempt_messages_via_chat(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    let upstream_model = channel.upstream_model(request.model);
    let include_usage = channel.kind.preset.stream_usage == StreamUsage::OnRequest;
    let caps = capabilities(request, upstream_model);
    let payload = match messages::to_chat(request.body, upstream_model, include_usage, &caps) {
        Ok(payload) => payload,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: None }),
    };
    let builder = openai_post(state, channel, Endpoint::ChatCompletions, upstream_model)
        .header(header::CONTENT_TYPE, "application/json")
        .body(payload);
    match send(state, channel, builder, request.stream).await {
        Received::Stream { first, rest, .. } => Attempt::Answered(Answer::Stream {
            content_type: None,
            first,
            rest,
            converter: Some(Box::new(StreamConverter::ChatToAnthropic(messages::MessagesStream::new(
                request.model,
                request.prompt_estimate,
            )))),
        }),
        Received::Whole { status, body, .. } => match messages::from_chat(&body, request.model) {
            Ok((body, usage)) => Attempt::Answered(Answer::Whole {
                status,
                content_type: Some(HeaderValue::from_static("application/json")),
                body,
                usage,
            }),
            Err(_) => {
                tracing::warn!(channel = channel.id, "upstream answered 2xx with a body that is not JSON");
                Attempt::Retry(GatewayError::UpstreamUnavailable)
            }
        },
        Received::Failed(attempt) => attempt,
    }
}

/// A signed POST of `payload` to `path` on the channel's Bedrock endpoint.
fn bedrock_post(
    state: &AppState,
    channel: &Channel,
    path: &str,
    payload: Bytes,
) -> Result<reqwest::RequestBuilder, GatewayError> {
    let region = channel.config.region.as_deref().unwrap_or("us-east-1");
    let base = if channel.base_url.is_empty() { bedrock::endpoint(region) } else { channel.base_url.clone() };
    let url = format!("{base}{path}");
    let auth = bedrock::Auth::from_key(channel.key());
    let headers = bedrock::auth_headers(&auth, region, &url, &payload, std::time::SystemTime::now()).map_err(|e| {
        tracing::error!(channel = channel.id, error = %e, "cannot sign the Bedrock request");
        GatewayError::UpstreamUnavailable
    })?;
    let mut builder = state.gateway().http().post(url).header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    Ok(builder.body(payload))
}

/// Embeddings through a Gemini channel: `batchEmbedContents`; Gemini reports no token count, so
/// the prompt is counted locally.
async fn attempt_gemini_embeddings(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    let embed = match embeddings::parse(request.body) {
        Ok(embed) => embed,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: Some("input") }),
    };
    let model = channel.upstream_model(request.model);
    let builder = state
        .gateway()
        .http()
        .post(format!("{}/v1beta/models/{model}:batchEmbedContents", channel.base_url))
        .header("x-goog-api-key", channel.key())
        .header(header::CONTENT_TYPE, "application/json")
        .body(embeddings::gemini_request(&embed, model));
    match send(state, channel, builder, false).await {
        Received::Whole { status, body, .. } => match embeddings::gemini_vectors(&body) {
            Ok(vectors) => embedded(status, request, vectors, embed.base64, texts_estimate(&embed.texts, request)),
            Err(_) => Attempt::Retry(GatewayError::UpstreamUnavailable),
        },
        Received::Stream { .. } => Attempt::Retry(GatewayError::UpstreamUnavailable),
        Received::Failed(attempt) => attempt,
    }
}

/// Embeddings through a Bedrock channel: InvokeModel on a Titan (one call per text) or Cohere
/// (one call) embedding model.
async fn attempt_bedrock_embeddings(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
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
    let (mut vectors, mut tokens, mut counted) = (Vec::new(), 0, true);
    let mut status = axum::http::StatusCode::OK;
    for payload in family.requests(&embed) {
        let builder = match bedrock_post(state, channel, &path, payload) {
            Ok(builder) => builder,
            Err(error) => return Attempt::Retry(error),
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
    let tokens = if counted { tokens } else { texts_estimate(&embed.texts, request) };
    embedded(status, request, vectors, embed.base64, tokens)
}

/// The tokens of the texts to embed, for a provider that reports none.
fn texts_estimate(texts: &[String], request: &Request<'_>) -> i64 {
    let tokens = texts.iter().map(|t| crate::domain::tokenizer::count(t)).fold(0, i64::saturating_add);
    request.rule.apply(tokens).max(1)
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

/// An answer from an upstream whose protocol converts to OpenAI chat, in the client's protocol:
/// streams through `to_chat_stream` (told whether to send the usage chunk), followed by the
/// Anthropic conversion for `/v1/messages`; whole answers through `to_chat`, likewise.
fn in_client_protocol(
    channel: &Channel,
    request: &Request<'_>,
    received: Received,
    to_chat_stream: impl FnOnce(bool) -> StreamConverter,
    to_chat: impl FnOnce(&[u8]) -> Result<(Bytes, Option<Usage>), serde_json::Error>,
) -> Attempt {
    let anthropic_client = request.endpoint == Endpoint::Messages;
    match received {
        Received::Stream { first, rest, .. } => {
            // The Anthropic conversion reads the usage chunk for its `message_delta`.
            let to_chat = to_chat_stream(anthropic_client || request.peek.wants_stream_usage());
            let converter = if anthropic_client {
                let to_messages = StreamConverter::ChatToAnthropic(messages::MessagesStream::new(
                    request.model,
                    request.prompt_estimate,
                ));
                StreamConverter::Chain(Box::new(to_chat), Box::new(to_messages))
            } else {
                to_chat
            };
            Attempt::Answered(Answer::Stream { content_type: None, first, rest, converter: Some(Box::new(converter)) })
        }
        Received::Whole { status, body, .. } => {
            let converted = to_chat(&body).and_then(|(chat, usage)| {
                if anthropic_client { messages::from_chat(&chat, request.model) } else { Ok((chat, usage)) }
            });
            match converted {
                Ok((body, usage)) => Attempt::Answered(Answer::Whole {
                    status,
                    content_type: Some(HeaderValue::from_static("application/json")),
                    body,
                    usage,
                }),
                Err(e) => {
                    tracing::warn!(channel = channel.id, error = %e, "upstream answered 2xx with an unexpected body");
                    Attempt::Retry(GatewayError::UpstreamUnavailable)
                }
            }
        }
        Received::Failed(attempt) => attempt,
    }
}

//! One attempt on one channel, per protocol: the relay's request sent the way the channel's
//! upstream speaks (passed through, or converted by `crate::providers`), and its answer brought
//! back in the client's protocol. The relay learns no provider's details.

use axum::http::HeaderValue;
use bytes::Bytes;

use super::Gateway;
use super::embed;
use super::endpoints::Endpoint;
use super::error::GatewayError;
use super::upstream::{Answer, Attempt, Received, Request, send};
use crate::domain::capabilities::Capabilities;
use crate::domain::pricing::Usage;
use crate::domain::time::now_ms;
use crate::providers::vendors::StreamUsage;
use crate::providers::{
    self, ChatAdapter, Convert, Protocol, StreamConverter, anthropic, fetch, gemini, messages, multipart, openai,
};
use crate::services::routing::KeyedChannel;

pub(super) async fn attempt(state: &Gateway, channel: &KeyedChannel, request: &Request<'_>) -> Attempt {
    match (request.endpoint, channel.kind.protocol) {
        (Endpoint::Messages, Protocol::Anthropic) => attempt_messages_passthrough(state, channel, request).await,
        (Endpoint::Messages, Protocol::OpenAi | Protocol::Azure) => {
            attempt_messages_via_chat(state, channel, request).await
        }
        (Endpoint::GeminiGenerate, Protocol::Gemini) => attempt_gemini_native(state, channel, request).await,
        (Endpoint::GeminiGenerate, Protocol::Anthropic) => Attempt::Fail(unsupported(request)),
        (Endpoint::GeminiGenerate, _) => Attempt::Fail(GatewayError::BadRequest {
            message: format!("The model {} is not served by a Gemini channel.", request.model),
            param: Some("model"),
        }),
        (Endpoint::Embeddings, Protocol::Gemini | Protocol::Bedrock) => embed::attempt(state, channel, request).await,
        // Another channel of the route may serve it: try it, and refuse clearly if none does.
        (Endpoint::Responses, Protocol::OpenAi | Protocol::Azure) if !channel.kind.preset.responses => {
            Attempt::Retry(unsupported(request))
        }
        (_, Protocol::OpenAi | Protocol::Azure) => attempt_openai(state, channel, request).await,
        (Endpoint::ChatCompletions | Endpoint::Messages, protocol) => match protocol.chat_adapter() {
            Some(adapter) => attempt_converted(state, channel, request, adapter).await,
            None => Attempt::Fail(unsupported(request)),
        },
        _ => Attempt::Fail(unsupported(request)),
    }
}

/// A request to an OpenAI-protocol channel in its own protocol: passed through, with only the
/// fields changed that the model mapping, stream usage or the model's limits need.
async fn attempt_openai(state: &Gateway, channel: &KeyedChannel, request: &Request<'_>) -> Attempt {
    let upstream_model = channel.upstream_model(request.model);
    let mapped = (upstream_model != request.body_model).then_some(upstream_model);
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
    let http = state.gateway().http();
    let builder = openai::post(
        &channel.upstream(&http),
        channel.kind.protocol,
        request.endpoint.path_after_version(),
        upstream_model,
        request.content_type.clone(),
        payload,
    );
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
fn unsupported(request: &Request<'_>) -> GatewayError {
    GatewayError::BadRequest {
        message: format!("The model {} does not support {}.", request.model, request.endpoint.path()),
        param: Some("model"),
    }
}

/// The request as an OpenAI chat completion (a Messages request converted to one) with its image
/// URLs fetched into `data:` URLs, for providers that take images inline only. Made once per
/// request: a failover attempt reuses it instead of fetching the images again.
async fn chat_with_inline_images(
    state: &Gateway,
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

/// A chat completion (or, converted to one first, a Messages request) through a channel whose
/// protocol converts from OpenAI chat: the same path for each, the protocol's details in its
/// `adapter` (conversion, URL, headers and signature).
async fn attempt_converted(
    state: &Gateway,
    channel: &KeyedChannel,
    request: &Request<'_>,
    adapter: &ChatAdapter,
) -> Attempt {
    let upstream_model = channel.upstream_model(request.model);
    let caps = capabilities(request, upstream_model);
    let chat = if adapter.inline_images {
        match chat_with_inline_images(state, request, &caps).await {
            Ok(chat) => chat,
            Err(attempt) => return attempt,
        }
    } else if request.endpoint == Endpoint::Messages {
        match messages::to_chat(request.body, request.model, false, &caps) {
            Ok(chat) => chat,
            Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: None }),
        }
    } else {
        request.body.clone()
    };
    let convert = Convert { model: upstream_model, default_max_tokens: request.default_max_tokens, caps: &caps };
    let payload = match (adapter.from_chat)(&chat, &convert) {
        Ok(payload) => payload,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: None }),
    };
    let http = state.gateway().http();
    let builder = match (adapter.post)(&channel.upstream(&http), upstream_model, request.stream, payload) {
        Ok(builder) => builder,
        Err(e) => {
            tracing::error!(channel = channel.id, error = %e, "cannot build the upstream request");
            return Attempt::Retry(GatewayError::UpstreamUnavailable);
        }
    };
    let created = now_ms() / 1000;
    let received = send(state, channel, builder, request.stream).await;
    in_client_protocol(
        channel,
        request,
        received,
        |include_usage| (adapter.stream)(request.model, created, include_usage),
        |body| (adapter.to_chat)(body, request.model, created),
    )
}

/// A Gemini-native request to a Gemini channel: the body passes through untouched, the model
/// in the URL mapped; usage from `usageMetadata`.
async fn attempt_gemini_native(state: &Gateway, channel: &KeyedChannel, request: &Request<'_>) -> Attempt {
    let upstream_model = channel.upstream_model(request.model);
    let http = state.gateway().http();
    let builder = gemini::post(&channel.upstream(&http), upstream_model, request.stream, request.body.clone());
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

/// A Messages request to an Anthropic channel: passed through (the model mapped, if the channel
/// maps it), its usage read from the answer or the stream.
async fn attempt_messages_passthrough(state: &Gateway, channel: &KeyedChannel, request: &Request<'_>) -> Attempt {
    let upstream_model = channel.upstream_model(request.model);
    let caps = capabilities(request, upstream_model);
    let mapped = (upstream_model != request.body_model).then_some(upstream_model);
    let payload = match anthropic::fit_request(request.body, request.peek, mapped, &caps) {
        Ok(payload) => payload.unwrap_or_else(|| request.body.clone()),
        Err(e) => {
            return Attempt::Fail(GatewayError::BadRequest {
                message: format!("Invalid JSON body ({e})."),
                param: None,
            });
        }
    };
    let http = state.gateway().http();
    let builder = anthropic::post(&channel.upstream(&http), payload, Some(request.headers));
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
async fn attempt_messages_via_chat(state: &Gateway, channel: &KeyedChannel, request: &Request<'_>) -> Attempt {
    let upstream_model = channel.upstream_model(request.model);
    let include_usage = channel.kind.preset.stream_usage == StreamUsage::OnRequest;
    let caps = capabilities(request, upstream_model);
    let payload = match messages::to_chat(request.body, upstream_model, include_usage, &caps) {
        Ok(payload) => payload,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: None }),
    };
    let http = state.gateway().http();
    let builder = openai::post(
        &channel.upstream(&http),
        channel.kind.protocol,
        Endpoint::ChatCompletions.path_after_version(),
        upstream_model,
        HeaderValue::from_static("application/json"),
        payload,
    );
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

/// An answer from an upstream whose protocol converts to OpenAI chat, in the client's protocol:
/// streams through `to_chat_stream` (told whether to send the usage chunk), followed by the
/// Anthropic conversion for `/v1/messages`; whole answers through `to_chat`, likewise.
fn in_client_protocol(
    channel: &KeyedChannel,
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

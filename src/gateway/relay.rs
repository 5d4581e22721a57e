//! The relay: one request from an authenticated key to an upstream channel and back.
//!
//! Peek (model, stream) → route → price → hold → try channels (priority tiers, strategy, no
//! channel twice, retry only before any byte reached the client) → pass the answer through →
//! settle from the upstream's usage. Same-protocol bodies are forwarded as received unless model
//! mapping or stream usage needs a field changed. Streams are relayed event by event; the status
//! is committed only after the first upstream chunk, so early failures can still fail over.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::auth::ApiKeyAuth;
use super::endpoints::Endpoint;
use super::error::GatewayError;
use super::routing::Channel;
use super::settlement::Settlement;
use super::stream::{self, StreamRelay};
use crate::billing::{BillingError, HoldRequest};
use crate::db::request_logs::RequestLog;
use crate::domain::pricing::{MILLION, Price, Usage};
use crate::domain::time::now_ms;
use crate::providers::openai::{self, RequestPeek};
use crate::providers::vendors::StreamUsage;
use crate::providers::{Protocol, StreamConverter, anthropic, bedrock, fetch, gemini, messages, multipart};
use crate::services;
use crate::state::AppState;

/// The most we read of an upstream's non-stream answer or error.
const MAX_UPSTREAM_BODY: usize = 256 * 1024 * 1024;
const MAX_UPSTREAM_ERROR_BODY: usize = 64 * 1024;

/// Relays one request; every failure becomes an OpenAI-shaped error.
pub async fn relay(state: AppState, auth: ApiKeyAuth, endpoint: Endpoint, headers: HeaderMap, body: Body) -> Response {
    match relay_inner(&state, auth, endpoint, &headers, body, None).await {
        Ok(response) => response,
        Err(error) if endpoint == Endpoint::Messages => error.into_anthropic_response(),
        Err(error) => error.into_response(),
    }
}

/// Relays a Gemini-native call (`/v1beta/models/{model}:generateContent` or
/// `:streamGenerateContent`) to a Gemini channel; failures in Google's error shape.
pub async fn relay_gemini_native(
    state: AppState,
    auth: ApiKeyAuth,
    model: String,
    stream: bool,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match relay_inner(&state, auth, Endpoint::GeminiGenerate, &headers, body, Some((model, stream))).await {
        Ok(response) => response,
        Err(error) => error.into_google_response(),
    }
}

async fn relay_inner(
    state: &AppState,
    auth: ApiKeyAuth,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    // The model and stream flag, when the URL names them rather than the body (Gemini's API).
    from_url: Option<(String, bool)>,
) -> Result<Response, GatewayError> {
    let config = &state.config().gateway;
    let body = read_body(body, headers, config.max_body_bytes).await?;
    let form = if endpoint.multipart() {
        let boundary =
            headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(multipart::boundary).ok_or_else(
                || GatewayError::BadRequest {
                    message: format!("{} expects a multipart/form-data body.", endpoint.path()),
                    param: None,
                },
            )?;
        Some(boundary.to_string())
    } else {
        None
    };
    let mut peek = match &form {
        Some(boundary) => multipart_peek(&body, boundary),
        None => RequestPeek::parse(&body).map_err(|message| GatewayError::BadRequest { message, param: None })?,
    };
    if let Some((model, stream)) = from_url {
        peek.model = Some(std::borrow::Cow::Owned(model));
        peek.stream = Some(stream);
    }
    let model = peek.model.as_deref().filter(|m| !m.is_empty()).ok_or_else(|| GatewayError::BadRequest {
        message: "You must provide a model parameter.".into(),
        param: Some("model"),
    })?;
    let model = model.to_string();
    let stream = peek.is_stream();
    if stream && !endpoint.streams() {
        return Err(GatewayError::BadRequest {
            message: format!("Streaming is not supported on {}.", endpoint.path()),
            param: Some("stream"),
        });
    }
    let grant = auth.grant.clone();
    if !grant.may_use_model(&model) {
        return Err(GatewayError::ModelNotFound(model));
    }
    let table = state.gateway().routing.current();
    let Some(route) = table.route(&grant.group, &model) else {
        return Err(GatewayError::ModelNotFound(model));
    };
    if route.tiers.is_empty() {
        return Err(GatewayError::NoHealthyChannel(model));
    }
    let (price, multiplier) = match table.price(&grant.group, &model) {
        Some(priced) => priced,
        None if config.allow_unpriced_models => (Price::default(), MILLION),
        None => return Err(GatewayError::ModelNotPriced(model)),
    };

    // The hold assumes every byte of the body could be prompt; billing without upstream usage
    // counts only the text the request carries.
    let estimate = endpoint.estimate(&peek, estimate_tokens(body.len()), config.default_max_tokens);
    let prompt_estimate = estimate_tokens(openai::event_text_len(&body)).max(1);
    let mut hold_amount = price.cost(&estimate, multiplier).min(config.max_hold);
    if price.is_set() && multiplier > 0 {
        // A priced model never runs on an empty balance.
        hold_amount = hold_amount.max(1);
    }
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let hold = state
        .billing()
        .hold(HoldRequest {
            user_id: grant.user_id,
            key_id: grant.key_id,
            amount: hold_amount,
            key_limited: grant.spend_limited,
        })
        .await
        .map_err(|e| match e {
            BillingError::InsufficientBalance => GatewayError::InsufficientQuota(
                "You exceeded your current quota, please check your plan and billing details.",
            ),
            BillingError::KeyLimitReached => {
                GatewayError::InsufficientQuota("This API key has reached its spend limit.")
            }
            other => {
                tracing::error!(error = %other, "hold failed");
                GatewayError::Internal
            }
        })?;
    let log = RequestLog {
        request_id,
        created_at: now_ms(),
        user_id: grant.user_id,
        api_key_id: Some(grant.key_id),
        endpoint: endpoint.path().to_string(),
        requested_model: model.clone(),
        is_stream: stream,
        client_ip: auth.client_ip.map(|ip| ip.to_string()),
        ..RequestLog::default()
    };
    let mut settlement = Settlement::new(state.clone(), hold, price, multiplier, log);
    let content_type = match &form {
        Some(_) => {
            headers.get(header::CONTENT_TYPE).cloned().unwrap_or(HeaderValue::from_static("multipart/form-data"))
        }
        None => HeaderValue::from_static("application/json"),
    };
    let request = Request {
        endpoint,
        body: &body,
        peek: &peek,
        model: &model,
        stream,
        prompt_estimate,
        boundary: form.as_deref(),
        content_type,
        headers,
    };

    let strategy = table.strategy(&grant.group, &model);
    let mut tried: Vec<i64> = Vec::new();
    let mut last_error = GatewayError::NoHealthyChannel(model.clone());
    'tiers: for tier in &route.tiers {
        while tried.len() < config.retry_attempts {
            let routing = &state.gateway().routing;
            let Some(channel) = tier.pick_excluding(strategy, |id| tried.contains(&id) || routing.is_suspended(id))
            else {
                continue 'tiers;
            };
            tried.push(channel.id);
            settlement.log.channel_id = Some(channel.id);
            settlement.log.upstream_model = channel.upstream_model(&model).to_string();
            settlement.log.attempts = i64::try_from(tried.len()).unwrap_or(i64::MAX);
            match attempt(state, &channel, &request).await {
                Attempt::Answered(answer) => {
                    settlement.log.ttfb_ms = Some(settlement.elapsed_ms());
                    return Ok(respond(state, answer, settlement, &request).await);
                }
                Attempt::Retry(error) => {
                    tracing::warn!(
                        channel = channel.id,
                        error = error.class(),
                        "upstream attempt failed; trying the next channel"
                    );
                    last_error = error;
                }
                Attempt::Fail(error) => {
                    settlement.finish(error.status().as_u16(), Some(error.class()));
                    return Err(error);
                }
            }
        }
        break;
    }
    settlement.finish(last_error.status().as_u16(), Some(last_error.class()));
    Err(last_error)
}

/// Sends one tiny chat completion for `model` through the channel, the way requests go (its
/// protocol's conversion included); a message saying what went wrong otherwise.
pub async fn probe(state: &AppState, channel: Arc<Channel>, model: &str) -> Result<(), String> {
    let body = Bytes::from(
        serde_json::json!({ "model": model, "messages": [{ "role": "user", "content": "ping" }], "max_tokens": 1 })
            .to_string(),
    );
    let peek = RequestPeek::parse(&body)?;
    let headers = HeaderMap::new();
    let request = Request {
        endpoint: Endpoint::ChatCompletions,
        body: &body,
        peek: &peek,
        model,
        stream: false,
        prompt_estimate: 1,
        boundary: None,
        content_type: HeaderValue::from_static("application/json"),
        headers: &headers,
    };
    match attempt(state, &channel, &request).await {
        Attempt::Answered(_) => Ok(()),
        Attempt::Retry(e) | Attempt::Fail(e) => Err(probe_failure(&e)),
    }
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

/// The parsed request, borrowed for the attempts.
struct Request<'a> {
    endpoint: Endpoint,
    body: &'a Bytes,
    peek: &'a RequestPeek<'a>,
    model: &'a str,
    stream: bool,
    prompt_estimate: i64,
    /// The multipart boundary, for form bodies.
    boundary: Option<&'a str>,
    content_type: HeaderValue,
    /// The client's headers (Anthropic's version and beta headers pass through).
    headers: &'a HeaderMap,
}

/// The fields of a multipart request the gateway needs (the model, `n`, `stream`).
fn multipart_peek<'a>(body: &'a [u8], boundary: &str) -> RequestPeek<'a> {
    let field = |name| multipart::field(body, boundary, name).map(str::trim);
    RequestPeek {
        model: field("model").map(std::borrow::Cow::Borrowed),
        n: field("n").and_then(|n| n.parse().ok()),
        stream: field("stream").map(|s| s == "true"),
        ..RequestPeek::default()
    }
}

enum Answer {
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
        converter: Option<StreamConverter>,
    },
}

enum Attempt {
    Answered(Answer),
    /// Nothing reached the client: another channel may try.
    Retry(GatewayError),
    /// The request itself was refused: no other channel would do better.
    Fail(GatewayError),
}

async fn attempt(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
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
        (_, Protocol::OpenAi | Protocol::Azure) => {}
    }
    let upstream_model = channel.upstream_model(request.model);
    let mapped = (upstream_model != request.model).then_some(upstream_model);
    let inject_usage = request.stream
        && request.endpoint.injects_stream_usage()
        && channel.kind.preset.stream_usage == StreamUsage::OnRequest
        && !request.peek.wants_stream_usage();
    let payload = if let (Some(boundary), Some(model)) = (request.boundary, mapped) {
        match multipart::replace_field(request.body, boundary, "model", model) {
            Some(bytes) => bytes,
            None => request.body.clone(),
        }
    } else if request.boundary.is_none() && (mapped.is_some() || inject_usage) {
        match openai::rewrite_request(request.body, mapped, inject_usage) {
            Ok(bytes) => bytes,
            Err(e) => {
                return Attempt::Fail(GatewayError::BadRequest {
                    message: format!("Invalid JSON body ({e})."),
                    param: None,
                });
            }
        }
    } else {
        request.body.clone()
    };
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

/// The upstream request for an OpenAI-protocol endpoint: `{base}/v1/…` with a bearer key, or on
/// Azure OpenAI `{base}/openai/deployments/{deployment}/…?api-version=…` with `api-key`, where the
/// deployment is the channel's upstream model name (its model mapping).
fn openai_post(
    state: &AppState,
    channel: &Channel,
    endpoint: Endpoint,
    upstream_model: &str,
) -> reqwest::RequestBuilder {
    let http = &state.gateway().http;
    match channel.kind.protocol {
        Protocol::Azure => {
            let version = channel.config.api_version.as_deref().unwrap_or(AZURE_API_VERSION);
            let url = format!(
                "{}/openai/deployments/{upstream_model}{}?api-version={version}",
                channel.base_url,
                endpoint.path_after_version()
            );
            http.post(url).header("api-key", channel.key())
        }
        _ => http.post(format!("{}{}", channel.base_url, endpoint.path_after_version())).bearer_auth(channel.key()),
    }
}

/// The Azure OpenAI API version used when a channel's config names none (the latest GA).
const AZURE_API_VERSION: &str = "2024-10-21";

/// A chat completion through an Anthropic channel: converted there and back.
async fn attempt_anthropic(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    if request.endpoint != Endpoint::ChatCompletions {
        return Attempt::Fail(GatewayError::BadRequest {
            message: format!("The model {} does not support {}.", request.model, request.endpoint.path()),
            param: Some("model"),
        });
    }
    let upstream_model = channel.upstream_model(request.model);
    let default_max_tokens = state.config().gateway.default_max_tokens;
    let converted = anthropic::from_chat(request.body, upstream_model, default_max_tokens)
        .and_then(|r| serde_json::to_vec(&r).map_err(|e| e.to_string()));
    let payload = match converted {
        Ok(payload) => payload,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: None }),
    };
    let builder = state
        .gateway()
        .http
        .post(format!("{}{}", channel.base_url, anthropic::MESSAGES_PATH))
        .header("x-api-key", channel.key())
        .header("anthropic-version", anthropic::VERSION)
        .header(header::CONTENT_TYPE, "application/json")
        .body(payload);
    let created = now_ms() / 1000;
    match send(state, channel, builder, request.stream).await {
        Received::Stream { first, rest, .. } => Attempt::Answered(Answer::Stream {
            content_type: None,
            first,
            rest,
            converter: Some(StreamConverter::AnthropicToChat(anthropic::ChatStream::new(
                request.model,
                created,
                request.peek.wants_stream_usage(),
            ))),
        }),
        Received::Whole { status, body, .. } => match anthropic::to_chat(&body, request.model, created) {
            Ok((body, usage)) => Attempt::Answered(Answer::Whole {
                status,
                content_type: Some(HeaderValue::from_static("application/json")),
                body,
                usage: Some(usage),
            }),
            Err(e) => {
                tracing::warn!(channel = channel.id, error = %e, "upstream answered 2xx with an unexpected body");
                Attempt::Retry(GatewayError::UpstreamUnavailable)
            }
        },
        Received::Failed(attempt) => attempt,
    }
}

/// The request as an OpenAI chat completion (a Messages request converted to one) with its image
/// URLs fetched into `data:` URLs, for providers that take images inline only.
async fn chat_with_inline_images(state: &AppState, request: &Request<'_>) -> Result<Bytes, Attempt> {
    let chat = if request.endpoint == Endpoint::Messages {
        messages::to_chat(request.body, request.model, false)
            .map_err(|message| Attempt::Fail(GatewayError::BadRequest { message, param: None }))?
    } else {
        request.body.clone()
    };
    let limits = fetch::Limits::from_config(&state.config().gateway);
    fetch::inline_image_urls(&chat, limits)
        .await
        .map_err(|e| Attempt::Fail(GatewayError::BadRequest { message: e.to_string(), param: Some("messages") }))
}

/// A chat completion (or, converted to one first, a Messages request) through a Gemini channel.
async fn attempt_gemini(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    let anthropic_client = request.endpoint == Endpoint::Messages;
    if !anthropic_client && request.endpoint != Endpoint::ChatCompletions {
        return Attempt::Fail(GatewayError::BadRequest {
            message: format!("The model {} does not support {}.", request.model, request.endpoint.path()),
            param: Some("model"),
        });
    }
    let chat = match chat_with_inline_images(state, request).await {
        Ok(chat) => chat,
        Err(attempt) => return attempt,
    };
    let payload = match gemini::from_chat(&chat) {
        Ok(payload) => payload,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: None }),
    };
    let upstream_model = channel.upstream_model(request.model);
    let builder = state
        .gateway()
        .http
        .post(format!("{}{}", channel.base_url, gemini::method_path(upstream_model, request.stream)))
        .header("x-goog-api-key", channel.key())
        .header(header::CONTENT_TYPE, "application/json")
        .body(payload);
    let created = now_ms() / 1000;
    match send(state, channel, builder, request.stream).await {
        Received::Stream { first, rest, .. } => {
            let include_usage = anthropic_client || request.peek.wants_stream_usage();
            let to_chat = StreamConverter::GeminiToChat(gemini::ChatStream::new(request.model, created, include_usage));
            let converter = if anthropic_client {
                let to_messages = StreamConverter::ChatToAnthropic(messages::MessagesStream::new(request.model));
                StreamConverter::Chain(Box::new(to_chat), Box::new(to_messages))
            } else {
                to_chat
            };
            Attempt::Answered(Answer::Stream { content_type: None, first, rest, converter: Some(converter) })
        }
        Received::Whole { status, body, .. } => {
            let converted = gemini::to_chat(&body, request.model, created).and_then(|(chat, usage)| {
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

/// A Gemini-native request to a Gemini channel: the body passes through untouched, the model
/// in the URL mapped; usage from `usageMetadata`.
async fn attempt_gemini_native(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    let upstream_model = channel.upstream_model(request.model);
    let builder = state
        .gateway()
        .http
        .post(format!("{}{}", channel.base_url, gemini::method_path(upstream_model, request.stream)))
        .header("x-goog-api-key", channel.key())
        .header(header::CONTENT_TYPE, "application/json")
        .body(request.body.clone());
    match send(state, channel, builder, request.stream).await {
        Received::Stream { content_type, first, rest } => Attempt::Answered(Answer::Stream {
            content_type,
            first,
            rest,
            converter: Some(StreamConverter::GeminiPassthrough(gemini::ChatStream::new(request.model, 0, false))),
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
    if !anthropic_client && request.endpoint != Endpoint::ChatCompletions {
        return Attempt::Fail(GatewayError::BadRequest {
            message: format!("The model {} does not support {}.", request.model, request.endpoint.path()),
            param: Some("model"),
        });
    }
    let chat = match chat_with_inline_images(state, request).await {
        Ok(chat) => chat,
        Err(attempt) => return attempt,
    };
    let payload = match bedrock::from_chat(&chat) {
        Ok(payload) => payload,
        Err(message) => return Attempt::Fail(GatewayError::BadRequest { message, param: None }),
    };
    let region = channel.config.region.as_deref().unwrap_or("us-east-1");
    let base = if channel.base_url.is_empty() { bedrock::endpoint(region) } else { channel.base_url.clone() };
    let url = format!("{base}{}", bedrock::path(channel.upstream_model(request.model), request.stream));
    let key = channel.key();
    let signed =
        bedrock::auth_headers(&bedrock::Auth::from_key(key), region, &url, &payload, std::time::SystemTime::now());
    let auth = match signed {
        Ok(headers) => headers,
        Err(e) => {
            tracing::error!(channel = channel.id, error = %e, "cannot sign the Bedrock request");
            return Attempt::Retry(GatewayError::UpstreamUnavailable);
        }
    };
    let mut builder = state.gateway().http.post(url).header(header::CONTENT_TYPE, "application/json");
    for (name, value) in auth {
        builder = builder.header(name, value);
    }
    let created = now_ms() / 1000;
    match send(state, channel, builder.body(payload), request.stream).await {
        Received::Stream { first, rest, .. } => {
            let include_usage = anthropic_client || request.peek.wants_stream_usage();
            let to_chat =
                StreamConverter::BedrockToChat(bedrock::ChatStream::new(request.model, created, include_usage));
            let converter = if anthropic_client {
                let to_messages = StreamConverter::ChatToAnthropic(messages::MessagesStream::new(request.model));
                StreamConverter::Chain(Box::new(to_chat), Box::new(to_messages))
            } else {
                to_chat
            };
            Attempt::Answered(Answer::Stream { content_type: None, first, rest, converter: Some(converter) })
        }
        Received::Whole { status, body, .. } => {
            let converted = bedrock::to_chat(&body, request.model, created).and_then(|(chat, usage)| {
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

/// A Messages request to an Anthropic channel: passed through (the model mapped, if the channel
/// maps it), its usage read from the answer or the stream.
async fn attempt_messages_passthrough(state: &AppState, channel: &Arc<Channel>, request: &Request<'_>) -> Attempt {
    let upstream_model = channel.upstream_model(request.model);
    let payload = if upstream_model == request.model {
        request.body.clone()
    } else {
        match openai::rewrite_request(request.body, Some(upstream_model), false) {
            Ok(bytes) => bytes,
            Err(e) => {
                return Attempt::Fail(GatewayError::BadRequest {
                    message: format!("Invalid JSON body ({e})."),
                    param: None,
                });
            }
        }
    };
    let version = request.headers.get("anthropic-version").cloned();
    let mut builder = state
        .gateway()
        .http
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
            converter: Some(StreamConverter::AnthropicPassthrough(anthropic::StreamUsage::default())),
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
    let payload = match messages::to_chat(request.body, upstream_model, include_usage) {
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
            converter: Some(StreamConverter::ChatToAnthropic(messages::MessagesStream::new(request.model))),
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

/// What one upstream call brought: a whole 2xx body, a 2xx stream with its first chunk, or a
/// failure already classified.
enum Received {
    Whole { status: StatusCode, content_type: Option<HeaderValue>, body: Bytes },
    Stream { content_type: Option<HeaderValue>, first: Bytes, rest: BoxStream<'static, reqwest::Result<Bytes>> },
    Failed(Attempt),
}

/// Sends a prepared upstream request under the first-byte timeout; for streams, waits for the
/// first chunk, so an upstream that fails before it can still be failed over.
async fn send(state: &AppState, channel: &Channel, builder: reqwest::RequestBuilder, stream: bool) -> Received {
    let config = &state.config().gateway;
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
        let body = read_limited(response, MAX_UPSTREAM_ERROR_BODY, config.first_byte_timeout).await.unwrap_or_default();
        return Received::Failed(classify_failure(state, channel, status, &body));
    }
    if stream {
        let mut rest = response.bytes_stream().boxed();
        return match tokio::time::timeout(config.first_byte_timeout, rest.next()).await {
            Err(_) => Received::Failed(Attempt::Retry(GatewayError::UpstreamTimeout)),
            Ok(None | Some(Err(_))) => Received::Failed(Attempt::Retry(GatewayError::UpstreamUnavailable)),
            Ok(Some(Ok(first))) => Received::Stream { content_type, first, rest },
        };
    }
    match read_limited(response, MAX_UPSTREAM_BODY, config.first_byte_timeout).await {
        Some(body) => Received::Whole { status, content_type, body },
        None => Received::Failed(Attempt::Retry(GatewayError::UpstreamUnavailable)),
    }
}

/// Decides what an upstream error means: the channel's fault (disable it, try another), a
/// passing condition (try another), or the request's fault (tell the client).
fn classify_failure(state: &AppState, channel: &Channel, status: StatusCode, body: &[u8]) -> Attempt {
    let text = String::from_utf8_lossy(body);
    // Gemini answers a bad key with 400 `API_KEY_INVALID`.
    let key_refused = text.contains("API_KEY_INVALID");
    let quota_exhausted = text.contains("insufficient_quota")
        || text.contains("billing_hard_limit")
        || text.contains("credit balance is too low")
        || status == StatusCode::PAYMENT_REQUIRED;
    match status.as_u16() {
        400 if key_refused => {
            services::channels::auto_disable_in_background(
                state,
                channel.id,
                "upstream rejected the key (HTTP 400)".into(),
            );
            Attempt::Retry(GatewayError::UpstreamUnavailable)
        }
        401 | 403 => {
            services::channels::auto_disable_in_background(
                state,
                channel.id,
                format!("upstream rejected the key (HTTP {})", status.as_u16()),
            );
            Attempt::Retry(GatewayError::UpstreamUnavailable)
        }
        400 | 402 | 429 if quota_exhausted => {
            services::channels::auto_disable_in_background(
                state,
                channel.id,
                "upstream account has no credit".to_string(),
            );
            Attempt::Retry(GatewayError::UpstreamUnavailable)
        }
        429 => Attempt::Retry(GatewayError::UpstreamRateLimited),
        408 | 500..=599 => Attempt::Retry(GatewayError::UpstreamUnavailable),
        code => Attempt::Fail(translate_rejection(channel, code, body)),
    }
}

/// An upstream's 4xx for the request itself, translated: its message (scrubbed of the channel's
/// key and address), type and code, never its raw body.
fn translate_rejection(channel: &Channel, status: u16, body: &[u8]) -> GatewayError {
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
        if key.len() >= 4 {
            message = message.replace(key.as_str(), "[redacted]");
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

async fn respond(state: &AppState, answer: Answer, mut settlement: Settlement, request: &Request<'_>) -> Response {
    match answer {
        Answer::Whole { status, content_type, body, usage } => {
            settlement.usage = match usage {
                Some(usage) => request.endpoint.billable(usage, request.peek),
                // No usage from upstream: count locally (estimated from text length).
                None => request.endpoint.billable(
                    Usage {
                        prompt_tokens: request.prompt_estimate,
                        completion_tokens: estimate_tokens(openai::event_text_len(&body)),
                        ..Usage::default()
                    },
                    request.peek,
                ),
            };
            settlement.finish(status.as_u16(), None);
            let mut response = (status, body).into_response();
            if let Some(ct) = content_type {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            response
        }
        Answer::Stream { content_type, first, rest, converter } => {
            settlement.usage = Usage { prompt_tokens: request.prompt_estimate, ..Usage::default() };
            let strip_usage = !request.peek.wants_stream_usage();
            let relay = StreamRelay::new(
                rest,
                settlement,
                strip_usage,
                state.config().gateway.idle_timeout,
                request.prompt_estimate,
                converter,
            );
            let relay = if request.endpoint == Endpoint::Messages { relay.for_anthropic_client() } else { relay };
            let body = Body::from_stream(stream::relay_events(relay, first));
            let mut response = Response::new(body);
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                content_type.unwrap_or_else(|| HeaderValue::from_static("text/event-stream; charset=utf-8")),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
    }
}

/// Reads the client's body up to the limit; 413 as soon as the declared or actual size exceeds it.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, GatewayError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut too_large = false;
        while let Some(err) = source {
            too_large |= err.is::<http_body_util::LengthLimitError>();
            source = err.source();
        }
        if too_large {
            GatewayError::BodyTooLarge { limit }
        } else {
            GatewayError::BadRequest { message: "The request body could not be read.".into(), param: None }
        }
    })
}

/// Reads an upstream body up to `limit` bytes within `deadline`; `None` on failure.
async fn read_limited(response: reqwest::Response, limit: usize, deadline: Duration) -> Option<Bytes> {
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

/// A cautious token estimate from a byte count (about 4 bytes per token in English; rounding up).
pub fn estimate_tokens(bytes: usize) -> i64 {
    i64::try_from(bytes.div_ceil(4)).unwrap_or(i64::MAX)
}

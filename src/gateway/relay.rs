//! The relay: one request from an authenticated key to an upstream channel and back.
//!
//! Admit (concurrency caps) → read the body → peek (model, stream) → route → price → hold → try
//! channels (priority tiers, strategy, no channel twice, retry only before any byte reached the
//! client) → pass the answer through → settle from the upstream's usage. Same-protocol bodies are forwarded as received unless model
//! mapping or stream usage needs a field changed. Streams are relayed event by event; the status
//! is committed only after the first upstream chunk, so early failures can still fail over.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::admission::Limits;
use super::attempts::attempt;
use super::auth::ApiKeyAuth;
use super::endpoints::Endpoint;
use super::error::GatewayError;
use super::routing::Channel;
use super::settlement::Settlement;
use super::stream::{self, StreamRelay};
use super::upstream::{Answer, Attempt, InlineImages, Request};
use crate::billing::{BillingError, HoldRequest};
use crate::db::request_logs::RequestLog;
use crate::domain::pricing::{MILLION, Price, Usage};
use crate::domain::time::now_ms;
use crate::domain::tokenizer::TokenRule;
use crate::providers::multipart;
use crate::providers::openai::{self, RequestPeek};
use crate::state::AppState;

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
    // The operator's runtime gateway settings, read once for this request (no lock held).
    let site = state.site();
    let config = &site.gateway;
    // Admission first, before the body is read: a tenant over its caps costs neither memory nor
    // a hold. The slots go with the settlement and are given back when the request is settled.
    let limits = Limits {
        per_key: config.max_concurrent_per_key,
        per_user: config.max_concurrent_per_user,
        wait: config.admission_wait,
    };
    let admitted = state.gateway().admission.admit(auth.grant.key_id, auth.grant.user_id, limits).await.map_err(
        |refusal| {
            tracing::debug!(key = auth.grant.key_id, user = auth.grant.user_id, scope = ?refusal.scope, "admission refused");
            GatewayError::ConcurrencyLimited { scope: refusal.scope, limit: refusal.limit }
        },
    )?;
    let body = read_body(body, headers, config.max_body_bytes).await?;
    let form = if endpoint.multipart() {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let boundary = multipart::parse_boundary(content_type).map_err(|e| {
            let message = match e {
                multipart::BoundaryError::Missing => format!("{} expects a multipart/form-data body.", endpoint.path()),
                multipart::BoundaryError::TooLong => format!(
                    "The multipart boundary is longer than {} characters (RFC 2046).",
                    multipart::MAX_BOUNDARY_LEN
                ),
                multipart::BoundaryError::Invalid => "The multipart boundary has characters RFC 2046 does not allow \
                                                      (letters, digits and '()+_,-./:=? only, not ending in a space)."
                    .to_string(),
            };
            GatewayError::BadRequest { message, param: None }
        })?;
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
    if form.is_none() {
        check_request(endpoint, &peek)?;
    }
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

    // Billing without upstream usage counts the tokens of the text the request carries (a real
    // BPE, the model family's rule); the hold takes at least a token per four bytes of the whole
    // body, which covers what the text count cannot see (tool schemas, images, JSON structure).
    let rule = TokenRule::for_model(&model);
    let prompt_estimate = rule.apply(openai::text_tokens(&body)).max(1);
    let hold_prompt = prompt_estimate.max(bytes_floor(body.len()));
    let default_max = Endpoint::default_max_tokens(&model, &peek, config.default_max_tokens);
    let estimate = endpoint.estimate(&peek, hold_prompt, default_max);
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
    let mut settlement = Settlement::new(state.clone(), hold, price, multiplier, log, admitted);
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
        rule,
        boundary: form.as_deref(),
        content_type,
        headers,
        inline_images: InlineImages::new(),
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

/// Refuses, before any hold or upstream call, what the API being imitated refuses: sizes and
/// sampling values out of range, `/v1/messages` without `max_tokens` (Anthropic requires it), and
/// server-side tools the upstream would bill per call, beyond what the gateway can price.
fn check_request(endpoint: Endpoint, peek: &RequestPeek<'_>) -> Result<(), GatewayError> {
    let temperature_max = if endpoint == Endpoint::Messages { 1.0 } else { 2.0 };
    peek.check_ranges(temperature_max)
        .map_err(|(message, param)| GatewayError::BadRequest { message, param: Some(param) })?;
    if endpoint == Endpoint::Messages && peek.max_tokens.is_none() {
        return Err(GatewayError::BadRequest {
            message: "max_tokens: Field required".into(),
            param: Some("max_tokens"),
        });
    }
    if let Some(tool) = peek.server_tool() {
        return Err(GatewayError::BadRequest {
            message: format!(
                "The server-side tool `{tool}` is billed per call by the provider and is not available through this gateway."
            ),
            param: Some("tools"),
        });
    }
    Ok(())
}

/// Sends one tiny chat completion for `model` through the channel, the way requests go (its
/// protocol's conversion included); a message saying what went wrong otherwise.
pub async fn probe(state: &AppState, channel: Arc<Channel>, model: &str) -> Result<String, String> {
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
        rule: TokenRule::for_model(model),
        boundary: None,
        content_type: HeaderValue::from_static("application/json"),
        headers: &headers,
        inline_images: InlineImages::new(),
    };
    match attempt(state, &channel, &request).await {
        Attempt::Answered(Answer::Whole { body, .. }) => Ok(probe_sample(&body)),
        Attempt::Answered(Answer::Stream { .. }) => Ok(String::new()),
        Attempt::Retry(e) | Attempt::Fail(e) => Err(probe_failure(&e)),
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

async fn respond(state: &AppState, answer: Answer, mut settlement: Settlement, request: &Request<'_>) -> Response {
    match answer {
        Answer::Whole { status, content_type, body, usage } => {
            settlement.usage = match usage {
                Some(usage) => request.endpoint.billable(usage, request.peek),
                // No usage from upstream: count locally (estimated from text length).
                None => request.endpoint.billable(
                    Usage {
                        prompt_tokens: request.prompt_estimate,
                        completion_tokens: request.rule.apply(openai::text_tokens(&body)),
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
                state.site().gateway.idle_timeout,
                request.prompt_estimate,
                request.rule,
                converter,
            );
            let relay = if request.endpoint == Endpoint::Messages { relay.for_anthropic_client() } else { relay };
            let cut = stream::Cut {
                shutdown: state.gateway().cut_streams.clone(),
                client_stall: state.site().gateway.client_stall,
            };
            let body = Body::from_stream(stream::relay_events(relay, first, state.tasks(), cut));
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
        if super::ingress::is_body_timeout(&e) {
            GatewayError::BodyTimeout
        } else if too_large {
            GatewayError::BodyTooLarge { limit }
        } else {
            GatewayError::BadRequest { message: "The request body could not be read.".into(), param: None }
        }
    })
}

/// A token per four bytes, rounding up: the least a hold assumes for a body of this size.
fn bytes_floor(bytes: usize) -> i64 {
    i64::try_from(bytes.div_ceil(4)).unwrap_or(i64::MAX)
}

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
    // `billing.cap_output_by_balance`: a request with no output cap gets one its user's balance
    // pays for, written into the body the attempts forward or convert, so the hold covers it.
    let capped_body;
    let (body, peek) =
        match output_cap(state, &grant, &table, endpoint, &peek, (&price, multiplier), hold_prompt, default_max).await?
        {
            Some(cap) if form.is_none() => {
                capped_body = with_output_cap(endpoint, &model, &body, cap);
                let mut capped = RequestPeek::parse(&capped_body)
                    .map_err(|message| GatewayError::BadRequest { message, param: None })?;
                (capped.model, capped.stream) = (peek.model.clone(), peek.stream);
                (&capped_body, capped)
            }
            _ => (&body, peek),
        };
    let mut estimate = endpoint.estimate(&peek, hold_prompt, default_max);
    // An output cap above what the model can answer is lowered on the way (`attempts`): the hold
    // covers what any channel of the route can answer, not what was asked.
    if let Some(limit) = route.output_limit(&table, &model) {
        let n = peek.choices().unwrap_or(1).clamp(1, 128);
        estimate.completion_tokens = estimate.completion_tokens.min(limit.saturating_mul(n));
    }
    let mut hold_amount = price.cost(&estimate, multiplier).min(config.max_hold);
    if price.is_set() && multiplier > 0 {
        // A priced model never runs on an empty balance.
        hold_amount = hold_amount.max(1);
    }
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
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
    let hold_request = HoldRequest {
        user_id: grant.user_id,
        key_id: grant.key_id,
        amount: hold_amount,
        key_limited: grant.spend_limited,
    };
    // The hold runs in a task of its own, so a client that goes away cannot cancel its database
    // work half-way (a cancelled BEGIN leaves a pooled connection inside a transaction; a
    // cancelled commit leaves a lease this process does not know it holds). If the request is
    // gone by the time the hold is granted, the settlement dropped with the unsent answer
    // releases it (logged as 499, nothing charged).
    let (granted_tx, granted_rx) = tokio::sync::oneshot::channel();
    let holder = state.clone();
    state.tasks().spawn(async move {
        let granted = holder
            .billing()
            .hold(hold_request)
            .await
            .map(|hold| Settlement::new(holder.clone(), hold, price, multiplier, log, admitted));
        let _ = granted_tx.send(granted);
    });
    let mut settlement = granted_rx.await.map_err(|_| GatewayError::Internal)?.map_err(quota_error)?;
    let content_type = match &form {
        Some(_) => {
            headers.get(header::CONTENT_TYPE).cloned().unwrap_or(HeaderValue::from_static("multipart/form-data"))
        }
        None => HeaderValue::from_static("application/json"),
    };
    let request = Request {
        endpoint,
        body,
        peek: &peek,
        model: &model,
        stream,
        prompt_estimate,
        rule,
        boundary: form.as_deref(),
        content_type,
        headers,
        inline_images: InlineImages::new(),
        table: &table,
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
                    let upstream_model = channel.upstream_model(&model);
                    return Ok(respond(state, answer, settlement, &request, upstream_model).await);
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

/// What a refused hold tells the client.
fn quota_error(e: BillingError) -> GatewayError {
    match e {
        BillingError::InsufficientBalance => GatewayError::InsufficientQuota(
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        BillingError::KeyLimitReached => GatewayError::InsufficientQuota("This API key has reached its spend limit."),
        BillingError::InDebt => GatewayError::InsufficientQuota(
            "Your account has an unpaid balance: a request cost more than your balance. Add credit to pay it and continue.",
        ),
        other => {
            tracing::error!(error = %other, "hold failed");
            GatewayError::Internal
        }
    }
}

/// The output cap `billing.cap_output_by_balance` sets on a request of a group that has it on,
/// when the request sets none (per answer, for `n` answers) and the user's spendable balance
/// cannot pay the usual default: the most output tokens that balance pays for on top of the
/// prompt's hold. `None`: nothing to set (the setting is off, the request has its own cap, or
/// the balance pays the usual hold). Refused with `insufficient_quota` when not even one output
/// token can be paid.
#[allow(clippy::too_many_arguments)]
async fn output_cap(
    state: &AppState,
    grant: &super::auth::Grant,
    table: &super::routing::RoutingTable,
    endpoint: Endpoint,
    peek: &RequestPeek<'_>,
    (price, multiplier): (&Price, i64),
    hold_prompt: i64,
    default_max: i64,
) -> Result<Option<i64>, GatewayError> {
    let caps = matches!(
        endpoint,
        Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Responses | Endpoint::GeminiGenerate
    );
    if !caps || peek.max_output().is_some() || !price.is_set() || !table.caps_output_by_balance(&grant.group) {
        return Ok(None);
    }
    let spendable = state.billing().spendable(grant.user_id).await.map_err(quota_error)?;
    let choices = peek.choices().unwrap_or(1).clamp(1, 128);
    let cost = |n: i64| {
        let usage =
            Usage { prompt_tokens: hold_prompt, completion_tokens: n.saturating_mul(choices), ..Usage::default() };
        price.cost(&usage, multiplier)
    };
    match affordable_output(cost, spendable, default_max) {
        None => Ok(None),
        Some(0) => Err(quota_error(BillingError::InsufficientBalance)),
        Some(cap) => Ok(Some(cap)),
    }
}

/// The most output tokens `spendable` pays for at `cost(tokens)` (which grows with the tokens),
/// below `default_max`: `None` when `default_max` itself is affordable, `Some(0)` when not one
/// token is.
fn affordable_output(cost: impl Fn(i64) -> i64, spendable: i64, default_max: i64) -> Option<i64> {
    if cost(default_max) <= spendable {
        return None;
    }
    // Binary search: `cost(affordable) <= spendable` (or `affordable` is 0), `cost(beyond) > spendable`.
    let (mut affordable, mut beyond) = (0i64, default_max);
    while beyond - affordable > 1 {
        let mid = affordable + (beyond - affordable) / 2;
        if cost(mid) <= spendable { affordable = mid } else { beyond = mid }
    }
    Some(if cost(affordable) <= spendable { affordable } else { 0 })
}

/// The request's JSON body with an output cap of `cap` tokens in the field its protocol reads
/// (`max_completion_tokens` for reasoning models on chat, whose upstreams refuse `max_tokens`).
/// A top-level field is written in front of the others, the rest of the bytes kept as they came;
/// a body that already names a cap field (as `null`) and Gemini's nested
/// `generationConfig.maxOutputTokens` go through a JSON value, so no key is ever written twice.
fn with_output_cap(endpoint: Endpoint, model: &str, body: &Bytes, cap: i64) -> Bytes {
    const CAP_FIELDS: [&str; 3] = ["max_tokens", "max_completion_tokens", "max_output_tokens"];
    let field = match endpoint {
        Endpoint::ChatCompletions if super::endpoints::is_reasoning_model(model) => "max_completion_tokens",
        Endpoint::Responses => "max_output_tokens",
        Endpoint::GeminiGenerate => "generationConfig",
        _ => "max_tokens",
    };
    let text = body.as_ref();
    let named = |name: &str| memchr::memmem::find(text, format!("\"{name}\"").as_bytes()).is_some();
    if field == "generationConfig" || CAP_FIELDS.iter().any(|f| named(f)) {
        let mut value: serde_json::Value = serde_json::from_slice(text).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.retain(|k, v| !(v.is_null() && CAP_FIELDS.contains(&k.as_str())));
            if field == "generationConfig" {
                let config = object.entry(field).or_insert_with(|| serde_json::json!({}));
                if !config.is_object() {
                    *config = serde_json::json!({});
                }
                if let Some(config) = config.as_object_mut() {
                    config.insert("maxOutputTokens".into(), cap.into());
                }
            } else {
                object.insert(field.into(), cap.into());
            }
        }
        return serde_json::to_vec(&value).map(Bytes::from).unwrap_or_else(|_| body.clone());
    }
    let Some(open) = text.iter().position(|b| *b == b'{') else { return body.clone() };
    let rest = &text[open + 1..];
    let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut out = Vec::with_capacity(text.len() + field.len() + 24);
    out.extend_from_slice(&text[..=open]);
    out.extend_from_slice(format!("\"{field}\":{cap}{}", if empty { "" } else { "," }).as_bytes());
    out.extend_from_slice(rest);
    Bytes::from(out)
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
    let table = state.gateway().routing.current();
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
        table: &table,
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

/// The answer to the client. A mapped model's answer names the model the client asked for (the
/// upstream's name is in the request log).
async fn respond(
    state: &AppState,
    answer: Answer,
    mut settlement: Settlement,
    request: &Request<'_>,
    upstream_model: &str,
) -> Response {
    let mapped = upstream_model != request.model;
    match answer {
        Answer::Whole { status, content_type, body, usage } => {
            let body = match mapped && request.endpoint.answers_json() {
                true => crate::providers::body::rename_model(&body, upstream_model, request.model).unwrap_or(body),
                false => body,
            };
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
            let relay = if mapped { relay.renaming(upstream_model, request.model) } else { relay };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(price: Price, multiplier: i64, prompt: i64) -> impl Fn(i64) -> i64 {
        move |n| price.cost(&Usage { prompt_tokens: prompt, completion_tokens: n, ..Usage::default() }, multiplier)
    }

    #[test]
    fn the_output_cap_is_the_largest_the_balance_pays_for_whatever_the_rounding() {
        // Prices and a multiplier that do not divide evenly: compare with counting up.
        let price = Price { input_per_mtok: Some(333_333), output_per_mtok: Some(7_777_777), ..Price::default() };
        for (multiplier, spendable) in [(1_500_000, 1_000), (1_000_000, 17_777), (333_333, 5), (2_000_000, 31_111)] {
            let cost = cost(price, multiplier, 9);
            let expected = (0..4096).take_while(|&n| cost(n) <= spendable).last().unwrap_or(0);
            assert!(expected > 0 || spendable == 5, "the cases cap: {multiplier} {spendable}");
            assert_eq!(affordable_output(&cost, spendable, 4096), Some(expected), "{multiplier} {spendable}");
        }
        let cost = cost(price, 1_000_000, 9);
        assert_eq!(affordable_output(&cost, i64::MAX, 4096), None, "the default fits: no cap");
        assert_eq!(affordable_output(&cost, cost(1) - 1, 4096), Some(0), "not one token");
        assert_eq!(affordable_output(&cost, cost(1), 1), None);
    }

    #[test]
    fn the_cap_is_written_once_in_the_protocols_field() {
        let chat = Bytes::from_static(br#" {"model":"m","messages":[]}"#);
        assert_eq!(
            with_output_cap(Endpoint::ChatCompletions, "gpt-4o", &chat, 7).as_ref(),
            br#" {"max_tokens":7,"model":"m","messages":[]}"#
        );
        let reasoning = with_output_cap(Endpoint::ChatCompletions, "o3-mini", &chat, 7);
        assert!(reasoning.starts_with(br#" {"max_completion_tokens":7,"#));
        let empty = with_output_cap(Endpoint::Responses, "m", &Bytes::from_static(b"{ }"), 3);
        assert_eq!(empty.as_ref(), br#"{"max_output_tokens":3 }"#);
        let null = with_output_cap(Endpoint::ChatCompletions, "m", &Bytes::from_static(br#"{"max_tokens":null}"#), 5);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&null).ok(),
            Some(serde_json::json!({ "max_tokens": 5 }))
        );
        let gemini = Bytes::from_static(br#"{"contents":[],"generationConfig":{"temperature":0.5}}"#);
        let capped: serde_json::Value =
            serde_json::from_slice(&with_output_cap(Endpoint::GeminiGenerate, "gemini-x", &gemini, 9)).unwrap();
        assert_eq!(capped["generationConfig"], serde_json::json!({ "temperature": 0.5, "maxOutputTokens": 9 }));
    }
}

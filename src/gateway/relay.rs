//! The relay: one request from an authenticated key to an upstream channel and back.
//!
//! Admit (concurrency caps) → read the body → peek (model, stream) → route → price → hold → try
//! channels (priority tiers, strategy, no channel twice, retry only before any byte reached the
//! client) → pass the answer through → settle from the upstream's usage. Same-protocol bodies are
//! forwarded as received unless model mapping or stream usage needs a field changed. Streams are
//! relayed event by event; the status is committed only after the first upstream chunk, so early
//! failures can still fail over.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::Gateway;
use super::admission::{AdmissionGuard, Limits};
use super::attempts::attempt;
use super::auth::{ApiKeyAuth, Grant};
use super::endpoints::Endpoint;
use super::error::{GatewayError, quota_error};
use super::estimate::{self, Prompt};
use super::health;
use super::limits::{self, Check, Headers, Scope, TokenReservation, Window};
use super::prepare::{form_boundary, peek_request, read_body};
use super::settlement::Settlement;
use super::stream::{self, StreamRelay};
use super::upstream::{Answer, Attempt, InlineImages, Request};
use crate::billing::{BillingError, HoldRequest, UserBudget};
use crate::config::{GatewayConfig, Strategy};
use crate::db::request_logs::RequestLog;
use crate::domain::limits::RateLimits;
use crate::domain::pricing::{MILLION, Price, Usage};
use crate::domain::time::now_ms;
use crate::providers::openai::RequestPeek;
use crate::services::affinity::{Conversation, Stuck};
use crate::services::keys;
use crate::services::routing::health::{Admission, BreakerPolicy, Circuit, InFlight, Transition};
use crate::services::routing::{Channel, KeyedChannel, Route, RoutingTable};

/// Relays one request; every failure becomes an OpenAI-shaped error.
pub async fn relay(state: Gateway, auth: ApiKeyAuth, endpoint: Endpoint, headers: HeaderMap, body: Body) -> Response {
    let mut limits = auth.limits;
    let mut response = match relay_inner(&state, auth, endpoint, &headers, body, None, &mut limits).await {
        Ok(response) => response,
        Err(error) if endpoint == Endpoint::Messages => error.into_anthropic_response(),
        Err(error) => error.into_response(),
    };
    limits.write(response.headers_mut(), now_ms());
    response
}

/// Relays a Gemini-native call (`/v1beta/models/{model}:generateContent` or
/// `:streamGenerateContent`) to a Gemini channel; failures in Google's error shape.
pub async fn relay_gemini_native(
    state: Gateway,
    auth: ApiKeyAuth,
    model: String,
    stream: bool,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut limits = auth.limits;
    let from_url = Some((model, stream));
    let mut response =
        match relay_inner(&state, auth, Endpoint::GeminiGenerate, &headers, body, from_url, &mut limits).await {
            Ok(response) => response,
            Err(error) => error.into_google_response(),
        };
    limits.write(response.headers_mut(), now_ms());
    response
}

/// Prepare and hold (admission, body, peek, route, price, output cap, hold), then
/// [`try_tiers`] with the request as the attempts see it.
async fn relay_inner(
    state: &Gateway,
    auth: ApiKeyAuth,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Body,
    // The model and stream flag, when the URL names them rather than the body (Gemini's API).
    from_url: Option<(String, bool)>,
    // The key's rate-limit standing for the answer's headers: its token window is added here.
    limits: &mut Headers,
) -> Result<Response, GatewayError> {
    // The operator's runtime gateway settings, read once for this request (no lock held).
    let site = state.site();
    let config = &site.gateway;
    let table = state.routing().current();
    // The user's limits: their own, else their group's (as authentication read them).
    let member = auth.member;
    // Admission first, before the body is read: a tenant over its caps costs neither memory nor
    // a hold. The slots go with the settlement and are given back when the request is settled.
    let mut admitted = admit(state, &auth, config, member.rates.concurrency).await?;
    let body = read_body(body, headers, config.max_body_bytes).await?;
    let form = form_boundary(endpoint, headers)?;
    let (peek, model) = peek_request(endpoint, &body, form.as_deref(), from_url)?;
    let stream = peek.is_stream();
    let grant = auth.grant.clone();
    if !grant.may_use_model(&model) {
        return Err(GatewayError::ModelNotFound(model));
    }
    let Some(route) = table.route(&grant.group, &model) else {
        return Err(GatewayError::ModelNotFound(model));
    };
    if route.tiers.is_empty() {
        return Err(GatewayError::NoHealthyChannel(model));
    }
    // The group's limits on this model, for each member, now that the body names it.
    let per_model = table.model_limits(&grant.group, &model).copied();
    if let Some(per_model) = per_model {
        admit_model(state, &auth, &mut admitted, (&model, per_model), config, limits).await?;
    }
    let (price, multiplier) = match table.price(&grant.group, &model) {
        Some(priced) => priced,
        None if config.allow_unpriced_models => (Price::default(), MILLION),
        None => return Err(GatewayError::ModelNotPriced(model)),
    };

    let prompt = Prompt::of(&model, &body);
    let default_max = Endpoint::default_max_tokens(&model, &peek, config.default_max_tokens as i64);
    // `billing.cap_output_by_balance`: a request with no output cap gets one its user's balance
    // pays for, written into the body the attempts forward or convert, so the hold covers it.
    let capped_body;
    let cap =
        estimate::output_cap(state, &grant, &table, endpoint, &peek, (&price, multiplier), prompt.hold, default_max)
            .await?;
    let (body, peek) = match cap {
        Some(cap) if form.is_none() => {
            capped_body = estimate::with_output_cap(endpoint, &model, &body, cap);
            let mut capped = RequestPeek::parse(&capped_body)
                .map_err(|message| GatewayError::BadRequest { message, param: None })?;
            (capped.model, capped.stream) = (peek.model.clone(), peek.stream);
            (&capped_body, capped)
        }
        _ => (&body, peek),
    };
    let estimate = estimate::hold_usage(endpoint, &peek, prompt, default_max, (route, &table, &model));
    let fallbacks = fallbacks(&table, &grant, endpoint, &model, config.allow_unpriced_models);
    let tpm = [(Scope::Key(grant.key_id), grant.rate_limit_tpm), (Scope::User(grant.user_id), member.rates.tpm)];
    // The model's scope is hashed only when the group limits the model's tokens.
    let model_tpm = match per_model.and_then(|m| m.tpm) {
        Some(tpm) => (Scope::model(grant.user_id, &model), Some(tpm)),
        None => (Scope::User(grant.user_id), None),
    };
    let mut tokens = reserve_tokens(state, &estimate, [tpm[0], tpm[1], model_tpm], limits).await?;
    // The hold covers the dearest model that may serve: the requested one or a fallback.
    let mut hold_amount = std::iter::once((price, multiplier))
        .chain(fallbacks.iter().map(|f| (f.price, f.multiplier)))
        .map(|(price, multiplier)| price.cost(&estimate, multiplier).min(config.max_hold))
        .max()
        .unwrap_or(0);
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
    let budget_now = state.gateway().budget_now();
    // The user's budget: their own, else their group's (each member counts their own spend).
    let user_budget = member.budget;
    let hold_request = HoldRequest {
        user_id: grant.user_id,
        key_id: grant.key_id,
        amount: hold_amount,
        key_limited: grant.spend_limit.is_some() || grant.budget.is_some(),
        key_terms: grant.lease_terms(),
        budget_window: grant.budget.map_or(0, |b| b.window(budget_now, config.budget_zone).0),
        user_budget: user_budget.map(|b| UserBudget {
            window: b.window(budget_now, config.budget_zone).0,
            limit: b.amount,
            terms: b.terms(),
        }),
    };
    let held = hold(state, hold_request, (price, multiplier), log, admitted).await;
    if held.is_err()
        && let Some(tokens) = tokens.take()
    {
        // Nothing is sent: the reserved tokens go back.
        tokens.true_up(state, 0).await;
    }
    let mut settlement = match held {
        Ok(settlement) => settlement,
        // The key's spend limit or its budget: say which, and when a budget starts again.
        Err(BillingError::KeyLimitReached) if grant.budget.is_some() => {
            let refusal = keys::budget_refusal(state, grant.key_id, hold_amount, budget_now, config.budget_zone).await;
            return Err(match refusal {
                Some(refusal) => budget_spent("This API key's", refusal, config.budget_zone),
                None => quota_error(BillingError::KeyLimitReached),
            });
        }
        Err(BillingError::UserBudgetSpent) if let Some(budget) = user_budget => {
            let resets_at = budget.window(budget_now, config.budget_zone).1;
            let refusal = keys::BudgetRefusal { budget, resets_at, now: budget_now };
            return Err(budget_spent("Your account's", refusal, config.budget_zone));
        }
        Err(e) => return Err(quota_error(e)),
    };
    settlement.tokens = tokens;
    let content_type = match &form {
        Some(_) => {
            headers.get(header::CONTENT_TYPE).cloned().unwrap_or(HeaderValue::from_static("multipart/form-data"))
        }
        None => HeaderValue::from_static("application/json"),
    };
    let mut request = Request {
        endpoint,
        body,
        peek: &peek,
        model: &model,
        body_model: &model,
        user_id: grant.user_id,
        stream,
        prompt_estimate: prompt.estimate,
        default_max_tokens: config.default_max_tokens as i64,
        rule: prompt.rule,
        boundary: form.as_deref(),
        content_type,
        headers,
        inline_images: InlineImages::new(),
        table: &table,
        conversation: conversation(config, headers, &peek, grant.key_id, &model),
    };
    let failover = |model: &str| Failover {
        strategy: table.strategy(&grant.group, model),
        attempts: config.retry_attempts,
        breaker: BreakerPolicy::from(config),
    };
    let mut tried = try_tiers(state, route, failover(&model), settlement, &request).await;
    // Every channel of the model failed: its group's fallback models, in order, each at its price.
    for fallback in &fallbacks {
        let Err(Failed::Exhausted(error, mut settlement)) = tried else { break };
        tracing::info!(requested = %model, fallback = %fallback.model, error = error.class(), "falling back to another model");
        settlement.reprice(fallback.price, fallback.multiplier);
        request.model = fallback.model;
        request.conversation = conversation(config, headers, &peek, grant.key_id, fallback.model);
        tried = try_tiers(state, fallback.route, failover(fallback.model), *settlement, &request).await;
    }
    match tried {
        Ok(response) => Ok(response),
        Err(Failed::Refused(error)) => Err(error),
        Err(Failed::Exhausted(error, settlement)) => {
            settlement.finish(error.status().as_u16(), Some(error.class()));
            Err(error)
        }
    }
}

/// A model a request may fall back to, with its route and price.
struct Fallback<'t> {
    model: &'t str,
    route: &'t Route,
    price: Price,
    multiplier: i64,
}

/// The group's fallback models for `model` that this request may use: chat-like endpoints only
/// (another model's embeddings or images would not be what was asked for), a key that has not
/// opted out and may call the model, a route with channels, and a price (or unpriced models
/// allowed).
fn fallbacks<'t>(
    table: &'t RoutingTable,
    grant: &Grant,
    endpoint: Endpoint,
    model: &str,
    allow_unpriced: bool,
) -> Vec<Fallback<'t>> {
    let chat_like = matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses);
    if !chat_like || !grant.fallback {
        return Vec::new();
    }
    let usable = |fallback: &'t String| {
        let route =
            table.route(&grant.group, fallback).filter(|r| !r.tiers.is_empty() && grant.may_use_model(fallback))?;
        let (price, multiplier) = match table.price(&grant.group, fallback) {
            Some(priced) => priced,
            None if allow_unpriced => (Price::default(), MILLION),
            None => return None,
        };
        Some(Fallback { model: fallback, route, price, multiplier })
    };
    table.fallbacks(&grant.group, model).iter().filter_map(usable).collect()
}

/// How a route's channels all failed to answer.
enum Failed {
    /// The request itself was refused (a 4xx about it): the settlement is finished.
    Refused(GatewayError),
    /// Every channel tried failed: the last error, and the settlement still open (for a fallback).
    Exhausted(GatewayError, Box<Settlement>),
}

/// Admits the request under its key's and user's concurrency caps (waiting a little for a slot).
/// `per_user`: the user's own cap or their group's, else the site's.
async fn admit(
    state: &Gateway,
    auth: &ApiKeyAuth,
    config: &GatewayConfig,
    per_user: Option<u32>,
) -> Result<AdmissionGuard, GatewayError> {
    let limits = Limits {
        // A key's own cap, when it has one (the account's cap still binds above it).
        per_key: auth.grant.max_concurrent.unwrap_or(config.max_concurrent_per_key),
        per_user: per_user.map_or(config.max_concurrent_per_user, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        wait: config.admission_wait,
    };
    let (key, user) = (auth.grant.key_id, auth.grant.user_id);
    state.gateway().admission.admit(key, user, limits).await.map_err(|refusal| {
        tracing::debug!(key, user, scope = ?refusal.scope, "admission refused");
        GatewayError::ConcurrencyLimited { scope: refusal.scope, limit: refusal.limit }
    })
}

/// Admits the request under its group's limits on the model, for each member: a slot among the
/// user's requests in flight on it, then a count in its per-minute and per-day windows. Refused
/// by the model's requests, the request counts in none of its windows (the key's and the user's,
/// counted at authentication, are given back).
async fn admit_model(
    state: &Gateway,
    auth: &ApiKeyAuth,
    admitted: &mut AdmissionGuard,
    (model, per_model): (&str, RateLimits),
    config: &GatewayConfig,
    headers: &mut Headers,
) -> Result<(), GatewayError> {
    let user = auth.grant.user_id;
    let scope = Scope::model(user, model);
    if let (Some(cap), Scope::Model(_, hash)) = (per_model.concurrency, scope) {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        let admission = &state.gateway().admission;
        admission
            .admit_model(admitted, (user, hash), cap, config.admission_wait)
            .await
            .map_err(|refusal| GatewayError::ConcurrencyLimited { scope: refusal.scope, limit: refusal.limit })?;
    }
    let checks = super::auth::request_checks([(scope, per_model.rpm, per_model.rpd)]);
    if checks.is_empty() {
        return Ok(());
    }
    let (local, now) = (&state.gateway().counts, now_ms());
    match limits::take_all(state, local, &checks, 1, now).await {
        Ok(standings) => {
            headers.requests = Headers::tighter(headers.requests, Headers::tightest(standings));
            Ok(())
        }
        Err((check, standing)) => {
            let (counted, at) = &auth.counted;
            for taken in counted {
                limits::adjust(state, local, taken.window, taken.scope, *at, -1).await;
            }
            Err(super::auth::rate_limited(check, standing, now))
        }
    }
}

/// Holds the request's money and opens its settlement. The hold runs in a task of its own, so a
/// client that goes away cannot cancel its database work half-way (a cancelled BEGIN leaves a
/// pooled connection inside a transaction; a cancelled commit leaves a lease this process does
/// not know it holds). If the request is gone by the time the hold is granted, the settlement
/// dropped with the unsent answer releases it (logged as 499, nothing charged).
async fn hold(
    state: &Gateway,
    request: HoldRequest,
    (price, multiplier): (Price, i64),
    log: RequestLog,
    admitted: AdmissionGuard,
) -> Result<Settlement, BillingError> {
    let (granted_tx, granted_rx) = tokio::sync::oneshot::channel();
    let gateway = state.clone();
    state.tasks().spawn(async move {
        let granted = super::reclaim::hold(&gateway, request)
            .await
            .map(|hold| Settlement::new(gateway.app().clone(), hold, price, multiplier, log, admitted));
        let _ = granted_tx.send(granted);
    });
    granted_rx.await.map_err(|_| BillingError::WriterGone)?
}

/// Reserves the request's estimated tokens (prompt and output) in the tokens-per-minute windows
/// it has (its key's, its user's, its model's: each scope with its limit, if any); refused, and
/// reserved in none, when one cannot take them.
async fn reserve_tokens<const N: usize>(
    state: &Gateway,
    estimate: &Usage,
    scopes: [(Scope, Option<u32>); N],
    limits: &mut Headers,
) -> Result<Option<TokenReservation>, GatewayError> {
    let checks: Vec<Check> = scopes
        .into_iter()
        .filter_map(|(scope, tpm)| Some(Check { window: Window::TokensPerMinute, scope, limit: tpm?.into() }))
        .collect();
    if checks.is_empty() {
        return Ok(None);
    }
    let needed = u64::try_from(estimate.prompt_tokens.saturating_add(estimate.completion_tokens)).unwrap_or(0).max(1);
    let (local, now) = (&state.gateway().counts, now_ms());
    match limits::take_all(state, local, &checks, needed, now).await {
        Ok(standings) => {
            limits.tokens = Headers::tightest(standings);
            let scopes = checks.iter().map(|c| c.scope).collect();
            Ok(Some(TokenReservation { local: local.clone(), scopes, at: now, reserved: needed }))
        }
        Err((check, standing)) => {
            limits.tokens = Some(standing);
            Err(GatewayError::TokensLimited {
                retry_after_secs: standing.wait_secs(now),
                limit: check.limit,
                needed,
                scope: check.scope,
            })
        }
    }
}

/// A budget's refusal in words: whose budget (the key's or the account's), and when it starts
/// again.
fn budget_spent(whose: &str, refusal: keys::BudgetRefusal, zone: time::UtcOffset) -> GatewayError {
    let keys::BudgetRefusal { budget, resets_at, now } = refusal;
    GatewayError::BudgetSpent {
        message: format!(
            "{whose} {} budget of {} is spent; it starts again at {}.",
            budget.period.adjective(),
            crate::domain::money::Money(budget.amount),
            crate::domain::budget::rfc3339(resets_at, zone)
        ),
        resets_in_ms: resets_at - now,
    }
}

/// How the channels of a route are tried: the strategy inside a tier, the most attempts, and
/// when a channel's circuit opens.
struct Failover {
    strategy: Strategy,
    attempts: usize,
    breaker: BreakerPolicy,
}

/// Tries the route's channels, tier by tier in the strategy's order, no channel twice (but for
/// another of its keys, when only the key failed), none whose circuit is open, and at most
/// `attempts` in all, until one answers or the request itself is refused (the settlement is
/// finished with either), or every channel failed.
async fn try_tiers(
    state: &Gateway,
    route: &Route,
    failover: Failover,
    mut settlement: Settlement,
    request: &Request<'_>,
) -> Result<Response, Failed> {
    let Failover { strategy, attempts: retry_attempts, breaker } = failover;
    let model = request.model;
    let mut attempts = 0usize;
    // Channels not to pick again: one that failed (unless only its key did: another of its keys
    // may serve), and one with no key that may take a request now (not counted as an attempt).
    let mut spent: Vec<i64> = Vec::new();
    let mut last_error = GatewayError::NoHealthyChannel(model.to_string());
    let mut sticky = sticky_channel(state, route, request);
    'tiers: for tier in &route.tiers {
        while attempts < retry_attempts {
            let routing = &state.routing();
            // Read per pick: an earlier attempt may have waited long enough for a cooldown to end.
            let now = now_ms();
            let channel = match sticky.take() {
                Some(channel) => channel,
                None => {
                    let excluded = |c: &Channel| {
                        spent.contains(&c.id) || routing.is_suspended(c.id) || !c.health.breaker.may_try(now, &breaker)
                    };
                    let Some(channel) = tier.pick_excluding(strategy, excluded) else { continue 'tiers };
                    // Without a key that may take a request, or with its half-open circuit's
                    // trial taken by another request, the channel sits this request out.
                    let Some(keyed) = channel.with_key().filter(|_| admitted(&channel, now, &breaker)) else {
                        spent.push(channel.id);
                        continue;
                    };
                    keyed
                }
            };
            attempts += 1;
            settlement.log.channel_id = Some(channel.id);
            settlement.log.upstream_model = channel.upstream_model(model).to_string();
            settlement.log.attempts = i64::try_from(attempts).unwrap_or(i64::MAX);
            let mut in_flight = InFlight::start(channel.health.clone(), channel.key().stats.clone());
            match attempt_on(state, &channel, request, &breaker, &in_flight).await {
                Attempt::Answered(answer) => {
                    in_flight.answered();
                    settlement.in_flight = Some(in_flight);
                    if let Some((conversation, ttl)) = request.conversation {
                        routing.affinity().stick(conversation, Stuck { channel: channel.id, key: channel.key }, ttl);
                    }
                    settlement.log.ttfb_ms = Some(settlement.elapsed_ms());
                    let upstream_model = channel.upstream_model(model);
                    return Ok(respond(state, answer, settlement, request, upstream_model).await);
                }
                Attempt::Retry(error) | Attempt::Disable { error, .. } => {
                    // A key that failed alone leaves the channel to serve through another key.
                    if !channel.failed_alone(now_ms()) {
                        spent.push(channel.id);
                    }
                    // A conversation on a failing channel lets go of it (the next that answers
                    // takes it).
                    if let Some((conversation, _)) = request.conversation
                        && routing.affinity().stuck(conversation).is_some_and(|s| s.channel == channel.id)
                    {
                        routing.affinity().release(conversation);
                    }
                    tracing::warn!(
                        channel = channel.id,
                        error = error.class(),
                        "upstream attempt failed; trying the next channel"
                    );
                    last_error = error;
                }
                Attempt::Fail(error) => {
                    settlement.finish(error.status().as_u16(), Some(error.class()));
                    return Err(Failed::Refused(error));
                }
            }
        }
        break;
    }
    Err(Failed::Exhausted(last_error, Box::new(settlement)))
}

/// Lets a picked channel's request through its circuit breaker (as the trial, when half-open);
/// false when another request took the trial first. A change of the circuit is logged.
fn admitted(channel: &Channel, now: i64, breaker: &BreakerPolicy) -> bool {
    match channel.health.breaker.admit(now, breaker) {
        Admission::Through => true,
        Admission::Trial => {
            health::circuit_changed(channel, Some(Transition::HalfOpened));
            true
        }
        Admission::Refused => false,
    }
}

/// The channel (and key) the request's conversation sticks to, when it is still in the route and
/// in routing (not disabled, suspended, or with a circuit not closed); another of the channel's
/// keys when that one is out. Counted as an affinity hit or miss.
fn sticky_channel(state: &Gateway, route: &Route, request: &Request<'_>) -> Option<KeyedChannel> {
    let (conversation, _) = request.conversation?;
    let affinity = state.routing().affinity();
    let keyed =
        affinity.stuck(conversation).filter(|stuck| !state.routing().is_suspended(stuck.channel)).and_then(|stuck| {
            let channel = route.channel(stuck.channel).filter(|c| c.health.breaker.circuit() == Circuit::Closed)?;
            match channel.keys.get(stuck.key) {
                Some(key) if key.available(now_ms()) => Some(KeyedChannel { channel, key: stuck.key }),
                _ => channel.with_key(),
            }
        });
    if keyed.is_none() {
        affinity.release(conversation);
    }
    affinity.counted(keyed.is_some());
    keyed
}

/// The request's conversation for session affinity (off when its TTL is 0): the header the
/// operator names, Codex's `session_id` or Claude Code's `x-claude-code-session-id` header, else
/// the body's marker (`prompt_cache_key`, `metadata.user_id`, `user`); scoped to key and model.
fn conversation(
    config: &GatewayConfig,
    headers: &HeaderMap,
    peek: &RequestPeek<'_>,
    key_id: i64,
    model: &str,
) -> Option<(Conversation, std::time::Duration)> {
    if config.affinity_ttl.is_zero() {
        return None;
    }
    let named = (!config.affinity_header.is_empty()).then_some(config.affinity_header.as_str());
    let header = named
        .into_iter()
        .chain(["session_id", "x-claude-code-session-id"])
        .find_map(|name| headers.get(name)?.to_str().ok().filter(|v| !v.is_empty()));
    let marker = match header {
        Some(value) => std::borrow::Cow::Borrowed(value),
        None => peek.conversation_marker()?,
    };
    Some((Conversation::new(key_id, model, &marker), config.affinity_ttl))
}

/// One attempt on `channel` through its key, with the upstream's verdict acted on (the one place
/// it is): a refused key or credit takes the key out of routing at once and disables it in the
/// background (the channel too when it was its last), and the outcome is counted on the key and
/// on the channel and its circuit breaker (a failure that was the key's alone, on the key only);
/// the request may go on to another channel. `in_flight` started with the attempt: its time is
/// the time to first token.
async fn attempt_on(
    state: &Gateway,
    channel: &KeyedChannel,
    request: &Request<'_>,
    breaker: &BreakerPolicy,
    in_flight: &InFlight,
) -> Attempt {
    let outcome = attempt(state, channel, request).await;
    if let Attempt::Disable { reason, .. } = &outcome {
        health::disable_in_background(state, channel, reason.clone());
    }
    health::count(channel, request.user_id, &outcome, in_flight.elapsed(), breaker);
    match outcome {
        Attempt::Disable { error, .. } => Attempt::Retry(error),
        other => other,
    }
}

/// The answer to the client. A mapped model's answer names the model the client asked for (the
/// upstream's name is in the request log).
async fn respond(
    state: &Gateway,
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
                        completion_tokens: estimate::completion(request.rule, &body),
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

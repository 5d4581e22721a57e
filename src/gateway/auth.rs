//! API-key authentication for the gateway: the [`ApiKeyAuth`] extractor (through the key cache of
//! `services::keys::cache`: no database read on a hit, none for a token not shaped like a key)
//! and the request limits (per minute, per day: `limits`) of the key and of its user (their own,
//! else their group's, from the routing snapshot).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::Gateway;
use super::error::GatewayError;
use super::limits::{self, Check, Headers, Scope, Window};
use crate::domain::api_key;
use crate::domain::limits::{Limits, RateLimits};
use crate::domain::time::now_ms;
pub use crate::services::keys::cache::Grant;

/// The authenticated key of a gateway request, from `Authorization: Bearer sk-…`
/// (or `x-api-key`, as Anthropic clients send it).
pub struct ApiKeyAuth {
    pub grant: Arc<Grant>,
    pub client_ip: Option<IpAddr>,
    /// The tightest request window after this request was counted (for the `x-ratelimit-*`
    /// headers); the token window is added once the request's estimate is known.
    pub limits: Headers,
    /// The windows this request was counted in, and when: given back should a later limit (a
    /// model's) refuse it.
    pub counted: (Vec<Check>, i64),
    /// The user's limits (their own, else their group's), read once for the whole request.
    pub member: Limits,
}

impl FromRequestParts<Gateway> for ApiKeyAuth {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &Gateway) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts).ok_or(GatewayError::InvalidApiKey)?;
        // Anything not shaped like one of our keys is refused without a database query.
        if !api_key::is_well_formed(secret) {
            return Err(GatewayError::InvalidApiKey);
        }
        let grant = state
            .keys()
            .lookup(state.db(), api_key::hash(secret))
            .await
            .map_err(|_| GatewayError::Internal)?
            .ok_or(GatewayError::InvalidApiKey)?;
        let client_ip = crate::client_ip::of(parts).0;
        let expired = grant.expires_at.is_some_and(|t| t <= now_ms());
        if !grant.active || expired || !grant.may_connect_from(client_ip) {
            return Err(GatewayError::InvalidApiKey);
        }
        let member = state.routing().current().member_limits(&grant.group, &grant.user_limits);
        let (limits, counted) = count_request(state, &grant, member.rates).await?;
        Ok(Self { grant, client_ip, limits, counted, member })
    }
}

/// Counts the request in the per-minute and per-day windows of its key and of its user (in the
/// counters the replicas share when there are some, else on this replica); refused when one is
/// full, and then none counts it. The windows counted, and when.
async fn count_request(
    state: &Gateway,
    grant: &Grant,
    user: RateLimits,
) -> Result<(Headers, (Vec<Check>, i64)), GatewayError> {
    let now = now_ms();
    let checks = request_checks([
        (Scope::Key(grant.key_id), grant.rate_limit_rpm, grant.rate_limit_rpd),
        (Scope::User(grant.user_id), user.rpm, user.rpd),
    ]);
    if checks.is_empty() {
        return Ok((Headers::default(), (checks, now)));
    }
    match limits::take_all(state, &state.gateway().counts, &checks, 1, now).await {
        Ok(standings) => Ok((Headers { requests: Headers::tightest(standings), tokens: None }, (checks, now))),
        Err((check, standing)) => Err(rate_limited(check, standing, now)),
    }
}

/// The request windows of each (scope, per minute, per day) that has them.
pub(super) fn request_checks<const N: usize>(scopes: [(Scope, Option<u32>, Option<u32>); N]) -> Vec<Check> {
    let mut checks = Vec::new();
    for (scope, rpm, rpd) in scopes {
        if let Some(rpm) = rpm {
            checks.push(Check { window: Window::RequestsPerMinute, scope, limit: rpm.into() });
        }
        if let Some(rpd) = rpd {
            checks.push(Check { window: Window::RequestsPerDay, scope, limit: rpd.into() });
        }
    }
    checks
}

/// A request window's refusal.
pub(super) fn rate_limited(check: Check, standing: limits::Standing, now: i64) -> GatewayError {
    GatewayError::RateLimited {
        retry_after_secs: standing.wait_secs(now),
        limit: standing.limit,
        per: if check.window == Window::RequestsPerDay { "day" } else { "minute" },
        scope: check.scope,
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let headers = &parts.headers;
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty());
    }
    // Anthropic clients send `x-api-key`; Gemini clients `x-goog-api-key` or `?key=`.
    let header = ["x-api-key", "x-goog-api-key"].into_iter().find_map(|name| headers.get(name));
    if let Some(value) = header {
        return value.to_str().ok().map(str::trim).filter(|t| !t.is_empty());
    }
    // Only Gemini's own routes take the key in the query string, as Google's API does.
    if !parts.uri.path().starts_with("/v1beta/") {
        return None;
    }
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| pair.strip_prefix("key=")).filter(|k| !k.is_empty())
}

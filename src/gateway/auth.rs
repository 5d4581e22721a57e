//! API-key authentication for the gateway: the [`ApiKeyAuth`] extractor (through the key cache of
//! `services::keys::cache`: no database read on a hit, none for a token not shaped like a key)
//! and the key's request limits (per minute, per day: `limits`).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::Gateway;
use super::error::GatewayError;
use super::limits::{self, Headers, Standing, Window};
use crate::domain::api_key;
use crate::domain::time::now_ms;
pub use crate::services::keys::cache::Grant;

/// The authenticated key of a gateway request, from `Authorization: Bearer sk-…`
/// (or `x-api-key`, as Anthropic clients send it).
pub struct ApiKeyAuth {
    pub grant: Arc<Grant>,
    pub client_ip: Option<IpAddr>,
    /// The key's request window after this request was counted (for the `x-ratelimit-*`
    /// headers); the token window is added once the request's estimate is known.
    pub limits: Headers,
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
        let limits = count_request(state, &grant).await?;
        Ok(Self { grant, client_ip, limits })
    }
}

/// Counts the request in the key's per-minute and per-day windows (in the counters the replicas
/// share when there are some, else on this replica); refused when either is full, and then
/// neither counts it.
async fn count_request(state: &Gateway, grant: &Grant) -> Result<Headers, GatewayError> {
    let (key, now) = (grant.key_id, now_ms());
    let local = &state.gateway().counts;
    let refused = |window: Window, s: Standing| GatewayError::RateLimited {
        retry_after_secs: s.wait_secs(now),
        limit: s.limit,
        per: if window == Window::RequestsPerDay { "day" } else { "minute" },
    };
    let minute = match grant.rate_limit_rpm {
        Some(rpm) => Some(
            limits::take(state, local, Window::RequestsPerMinute, key, 1, rpm.into(), now)
                .await
                .map_err(|s| refused(Window::RequestsPerMinute, s))?,
        ),
        None => None,
    };
    let day = match grant.rate_limit_rpd {
        Some(rpd) => match limits::take(state, local, Window::RequestsPerDay, key, 1, rpd.into(), now).await {
            Ok(standing) => Some(standing),
            Err(standing) => {
                if minute.is_some() {
                    limits::adjust(state, local, Window::RequestsPerMinute, key, now, -1).await;
                }
                return Err(refused(Window::RequestsPerDay, standing));
            }
        },
        None => None,
    };
    Ok(Headers { requests: Headers::requests_from(minute, day), tokens: None })
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

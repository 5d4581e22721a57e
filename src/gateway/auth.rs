//! API-key authentication for the gateway: the [`ApiKeyAuth`] extractor (through the key cache of
//! `services::keys::cache`: no database read on a hit, none for a token not shaped like a key)
//! and the per-key requests-per-minute limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::Gateway;
use super::error::GatewayError;
use crate::domain::api_key;
use crate::domain::time::now_ms;
pub use crate::services::keys::cache::Grant;

/// Most keys tracked by the rate limiter before it drops past windows.
const MAX_ENTRIES: usize = 100_000;

/// Fixed one-minute windows per key.
#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<i64, (u64, u32)>>,
}

impl RateLimiter {
    /// Counts one request; `Err(seconds until the next window)` when the key is over its limit.
    fn check(&self, key_id: i64, rpm: u32) -> Result<(), u64> {
        let now_secs = u64::try_from(now_ms() / 1000).unwrap_or(0);
        let minute = now_secs / 60;
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        if windows.len() > MAX_ENTRIES {
            windows.retain(|_, (m, _)| *m == minute);
        }
        let entry = windows.entry(key_id).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= rpm {
            return Err((60 - now_secs % 60).max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The authenticated key of a gateway request, from `Authorization: Bearer sk-…`
/// (or `x-api-key`, as Anthropic clients send it).
pub struct ApiKeyAuth {
    pub grant: Arc<Grant>,
    pub client_ip: Option<IpAddr>,
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
        if let Some(rpm) = grant.rate_limit_rpm {
            rate_limit(state, grant.key_id, rpm)
                .await
                .map_err(|retry_after_secs| GatewayError::RateLimited { retry_after_secs })?;
        }
        Ok(Self { grant, client_ip })
    }
}

/// Counts one request of a key with a requests-per-minute limit: in the counters every replica
/// shares when there are some (Redis), else (or when Redis fails) on this replica.
/// `Err(seconds until the next window)` when the key is over its limit.
async fn rate_limit(state: &Gateway, key_id: i64, rpm: u32) -> Result<(), u64> {
    let now_secs = u64::try_from(now_ms() / 1000).unwrap_or(0);
    // Without Redis, no key name is built: this replica counts.
    let shared = match state.counters().redis_up() {
        Some(_) => {
            let window = format!("bc:rpm:{key_id}:{}", now_secs / 60);
            state.counters().hit(&window, std::time::Duration::from_secs(61)).await
        }
        None => None,
    };
    match shared {
        Some(count) if count > u64::from(rpm) => Err((60 - now_secs % 60).max(1)),
        Some(_) => Ok(()),
        None => state.gateway().rate_limiter.check(key_id, rpm),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_per_key() {
        let limiter = RateLimiter::default();
        assert!(limiter.check(1, 2).is_ok());
        assert!(limiter.check(1, 2).is_ok());
        let retry = limiter.check(1, 2).unwrap_err();
        assert!((1..=60).contains(&retry));
        assert!(limiter.check(2, 2).is_ok(), "another key has its own window");
    }
}

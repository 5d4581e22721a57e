//! API-key authentication for the gateway: the [`ApiKeyAuth`] extractor, the in-memory key cache
//! (no database read on a hit; entries expire after the cache TTL so changes made by another
//! replica arrive, and local changes invalidate at once) and the per-key requests-per-minute limit.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::GatewayError;
use crate::db::api_keys::{self, KeyGrant};
use crate::domain::api_key;
use crate::domain::ip_allowlist::IpBlock;
use crate::domain::time::now_ms;
use crate::state::AppState;

/// What an authenticated key may do.
#[derive(Debug)]
pub struct Grant {
    pub key_id: i64,
    pub user_id: i64,
    pub group: String,
    pub active: bool,
    pub expires_at: Option<i64>,
    pub allowed_models: Option<HashSet<String>>,
    pub allowed_ips: Option<Vec<IpBlock>>,
    pub rate_limit_rpm: Option<u32>,
    /// The key has a spend limit (holds reserve on it).
    pub spend_limited: bool,
}

impl Grant {
    fn from_row(row: KeyGrant) -> Self {
        let list = |json: Option<String>| -> Option<Vec<String>> {
            json.and_then(|j| serde_json::from_str::<Vec<String>>(&j).ok()).filter(|v| !v.is_empty())
        };
        Self {
            key_id: row.key_id,
            user_id: row.user_id,
            group: row.group,
            active: row.key_status == "active" && row.user_status == "active",
            expires_at: row.expires_at,
            allowed_models: list(row.allowed_models).map(|v| v.into_iter().collect()),
            // An unparsable entry denies rather than silently widening access.
            allowed_ips: list(row.allowed_ips).map(|v| v.iter().filter_map(|s| IpBlock::parse(s).ok()).collect()),
            rate_limit_rpm: row.rate_limit_rpm.and_then(|n| u32::try_from(n).ok()),
            spend_limited: row.spend_limit.is_some(),
        }
    }

    pub fn may_use_model(&self, model: &str) -> bool {
        self.allowed_models.as_ref().is_none_or(|m| m.contains(model))
    }

    fn may_connect_from(&self, ip: Option<IpAddr>) -> bool {
        match (&self.allowed_ips, ip) {
            (None, _) => true,
            (Some(blocks), Some(ip)) => blocks.iter().any(|b| b.contains(ip)),
            (Some(_), None) => false,
        }
    }
}

/// Cached key lookups, by key hash. Unknown keys are cached too (briefly), so a flood of bad keys
/// does not become a flood of queries.
pub struct KeyCache {
    /// How long a lookup is trusted, in ms (a run-time setting: atomic, read per lookup).
    ttl_ms: std::sync::atomic::AtomicU64,
    entries: RwLock<HashMap<String, CachedGrant>>,
}

/// A lookup result and when it was loaded (`None`: no such key).
type CachedGrant = (Instant, Option<Arc<Grant>>);

/// Beyond this many entries the cache starts over rather than grow without bound.
const MAX_ENTRIES: usize = 100_000;

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl_ms: std::sync::atomic::AtomicU64::new(ttl.as_millis() as u64), entries: RwLock::new(HashMap::new()) }
    }

    /// Changes how long lookups are trusted (the `gateway.cache_ttl_secs` setting).
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(ttl.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn invalidate_all(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    async fn lookup(&self, state: &AppState, hash: String) -> Result<Option<Arc<Grant>>, GatewayError> {
        if let Ok(entries) = self.entries.read()
            && let Some((loaded, grant)) = entries.get(&hash)
            && loaded.elapsed() < self.ttl()
        {
            return Ok(grant.clone());
        }
        let row = api_keys::grant_by_hash(state.db().pool(), &hash).await.map_err(|e| {
            tracing::error!(error = %e, "key lookup failed");
            GatewayError::Internal
        })?;
        let grant = row.map(|r| Arc::new(Grant::from_row(r)));
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(hash, (Instant::now(), grant.clone()));
        }
        Ok(grant)
    }
}

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

impl FromRequestParts<AppState> for ApiKeyAuth {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts).ok_or(GatewayError::InvalidApiKey)?;
        let grant =
            state.gateway().keys.lookup(state, api_key::hash(secret)).await?.ok_or(GatewayError::InvalidApiKey)?;
        let client_ip = crate::client_ip::of(parts).0;
        let expired = grant.expires_at.is_some_and(|t| t <= now_ms());
        if !grant.active || expired || !grant.may_connect_from(client_ip) {
            return Err(GatewayError::InvalidApiKey);
        }
        if let Some(rpm) = grant.rate_limit_rpm {
            state
                .gateway()
                .rate_limiter
                .check(grant.key_id, rpm)
                .map_err(|retry_after_secs| GatewayError::RateLimited { retry_after_secs })?;
        }
        Ok(Self { grant, client_ip })
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

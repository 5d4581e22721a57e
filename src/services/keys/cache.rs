//! The in-memory cache of API keys: no database read on a hit, bounded LRU, entries expire after
//! the cache TTL so changes made by another replica arrive, and local changes invalidate their
//! entries at once. The gateway authenticates through it; the services that change keys and
//! users invalidate it.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashlink::LruCache;

use crate::db::Db;
use crate::db::api_keys::{self, KeyGrant};
use crate::domain::budget::Budget;
use crate::domain::ip_allowlist::IpBlock;
use crate::domain::limits::Limits;

/// The database could not be read (logged where it happened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupFailed;

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
    /// Requests per UTC day and tokens per minute.
    pub rate_limit_rpd: Option<u32>,
    pub rate_limit_tpm: Option<u32>,
    /// The key's own cap on requests in flight (`None`: the site's per-key cap).
    pub max_concurrent: Option<usize>,
    /// The key may be answered by its group's fallback models.
    pub fallback: bool,
    /// The key's lifetime spend limit (holds reserve on it).
    pub spend_limit: Option<i64>,
    /// The key's budget per period (holds reserve on it too).
    pub budget: Option<Budget>,
    /// The user's own budget and rate limits; their group's (in the routing snapshot) apply
    /// where these are not set.
    pub user_limits: Limits,
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
            rate_limit_rpd: row.rate_limit_rpd.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            rate_limit_tpm: row.rate_limit_tpm.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            max_concurrent: row.max_concurrent.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            fallback: !row.no_fallback,
            spend_limit: row.spend_limit,
            budget: Budget::from_stored(row.budget, row.budget_period.as_deref(), row.budget_anchor),
            user_limits: row.user_limits.limits(),
        }
    }

    /// A fingerprint of the key's spend limit and budget: a budget lease taken under others is
    /// given back rather than used.
    pub fn lease_terms(&self) -> i64 {
        let limit = self.spend_limit.unwrap_or(-1).wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as i64);
        limit ^ self.budget.map_or(-1, |b| b.terms())
    }

    pub fn may_use_model(&self, model: &str) -> bool {
        self.allowed_models.as_ref().is_none_or(|m| m.contains(model))
    }

    pub fn may_connect_from(&self, ip: Option<IpAddr>) -> bool {
        match (&self.allowed_ips, ip) {
            (None, _) => true,
            (Some(blocks), Some(ip)) => blocks.iter().any(|b| b.contains(ip)),
            (Some(_), None) => false,
        }
    }
}

/// Cached key lookups, by key hash: a bounded LRU of known keys, and a smaller one of unknown
/// hashes, so a flood of made-up keys costs one query each at most and cannot push real keys out.
/// Invalidation removes single entries and bumps a generation counter: a lookup that read the
/// database before an invalidation does not store what it read.
pub struct KeyCache {
    /// How long a lookup is trusted, in ms (a run-time setting: atomic, read per lookup).
    ttl_ms: AtomicU64,
    entries: Mutex<Entries>,
    /// Database lookups made (cache misses), for tests and monitoring.
    db_lookups: AtomicU64,
}

struct Entries {
    known: LruCache<String, (Instant, Arc<Grant>)>,
    unknown: LruCache<String, Instant>,
    /// Bumped by every invalidation.
    generation: u64,
}

impl KeyCache {
    /// A cache of up to `capacity` known keys (and a tenth as many unknown ones).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            ttl_ms: AtomicU64::new(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            entries: Mutex::new(Entries {
                known: LruCache::new(capacity),
                unknown: LruCache::new((capacity / 10).max(16)),
                generation: 0,
            }),
            db_lookups: AtomicU64::new(0),
        }
    }

    /// Changes how long lookups are trusted (the `gateway.cache_ttl_secs` setting).
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    /// How many lookups went to the database since start.
    pub fn db_lookups(&self) -> u64 {
        self.db_lookups.load(Ordering::Relaxed)
    }

    /// How many known keys are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.known.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the entries `stale` picks (by key hash or grant) and bumps the generation.
    fn invalidate(&self, stale: impl Fn(&str, Option<&Grant>) -> bool) {
        let Ok(mut entries) = self.entries.lock() else { return };
        entries.generation += 1;
        let known: Vec<String> =
            entries.known.iter().filter(|(hash, (_, g))| stale(hash, Some(g))).map(|(h, _)| h.clone()).collect();
        for hash in known {
            entries.known.remove(&hash);
        }
        let unknown: Vec<String> =
            entries.unknown.iter().filter(|(hash, _)| stale(hash, None)).map(|(h, _)| h.clone()).collect();
        for hash in unknown {
            entries.unknown.remove(&hash);
        }
    }

    /// A key was created (its hash may be cached as unknown).
    pub fn invalidate_hash(&self, hash: &str) {
        self.invalidate(|h, _| h == hash);
    }

    /// A key changed or was deleted.
    pub fn invalidate_key(&self, key_id: i64) {
        self.invalidate(|_, g| g.is_some_and(|g| g.key_id == key_id));
    }

    /// A user's status or group changed: every one of their keys.
    pub fn invalidate_user(&self, user_id: i64) {
        self.invalidate(|_, g| g.is_some_and(|g| g.user_id == user_id));
    }

    /// Everything (a bootstrap file was applied).
    pub fn invalidate_all(&self) {
        self.invalidate(|_, _| true);
    }

    /// The grant of the key whose hash is `hash`: from the cache, else from the database.
    pub async fn lookup(&self, db: &Db, hash: String) -> Result<Option<Arc<Grant>>, LookupFailed> {
        self.get_or_load(hash, |hash| async move {
            let row = api_keys::grant_by_hash(db.pool(), &hash).await.map_err(|e| {
                tracing::error!(error = %e, "key lookup failed");
                LookupFailed
            })?;
            Ok(row.map(Grant::from_row))
        })
        .await
    }

    /// The cached grant for `hash`, or what `load` finds, cached unless an invalidation
    /// happened while it ran (what it read may predate the change).
    async fn get_or_load<F, Fut>(&self, hash: String, load: F) -> Result<Option<Arc<Grant>>, LookupFailed>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Grant>, LookupFailed>>,
    {
        let ttl = self.ttl();
        let generation = {
            let Ok(mut entries) = self.entries.lock() else { return Err(LookupFailed) };
            if let Some((loaded, grant)) = entries.known.get(&hash)
                && loaded.elapsed() < ttl
            {
                return Ok(Some(grant.clone()));
            }
            if let Some(loaded) = entries.unknown.get(&hash)
                && loaded.elapsed() < ttl
            {
                return Ok(None);
            }
            entries.generation
        };
        self.db_lookups.fetch_add(1, Ordering::Relaxed);
        let grant = load(hash.clone()).await?.map(Arc::new);
        if let Ok(mut entries) = self.entries.lock()
            && entries.generation == generation
        {
            match &grant {
                Some(grant) => {
                    entries.unknown.remove(&hash);
                    entries.known.insert(hash, (Instant::now(), grant.clone()));
                }
                None => {
                    entries.known.remove(&hash);
                    entries.unknown.insert(hash, Instant::now());
                }
            }
        }
        Ok(grant)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests spawn freely
mod tests {
    use super::*;

    fn grant(key_id: i64, user_id: i64, active: bool) -> Grant {
        Grant {
            key_id,
            user_id,
            group: "default".into(),
            active,
            expires_at: None,
            allowed_models: None,
            allowed_ips: None,
            rate_limit_rpm: None,
            rate_limit_rpd: None,
            rate_limit_tpm: None,
            max_concurrent: None,
            fallback: true,
            spend_limit: None,
            budget: None,
            user_limits: Limits::default(),
        }
    }

    async fn get(cache: &KeyCache, hash: &str, found: Option<Grant>) -> Option<Arc<Grant>> {
        cache.get_or_load(hash.to_string(), |_| async move { Ok(found) }).await.unwrap()
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_evicts_the_least_recently_used() {
        let cache = KeyCache::new(Duration::from_secs(60), 2);
        get(&cache, "a", Some(grant(1, 1, true))).await;
        get(&cache, "b", Some(grant(2, 1, true))).await;
        get(&cache, "a", None).await; // a hit: "a" is now the most recently used
        get(&cache, "c", Some(grant(3, 1, true))).await;
        assert_eq!(cache.len(), 2, "bounded, not cleared");
        assert_eq!(cache.db_lookups(), 3);
        assert!(get(&cache, "a", None).await.is_some(), "kept: used recently");
        assert!(get(&cache, "c", None).await.is_some());
        assert_eq!(cache.db_lookups(), 3, "both were hits");
        assert!(get(&cache, "b", None).await.is_none(), "evicted: looked up again");
        assert_eq!(cache.db_lookups(), 4);
    }

    #[tokio::test]
    async fn unknown_keys_cannot_push_known_ones_out() {
        let cache = KeyCache::new(Duration::from_secs(60), 10);
        get(&cache, "real", Some(grant(1, 1, true))).await;
        for i in 0..1000 {
            get(&cache, &format!("made-up-{i}"), None).await;
        }
        let lookups = cache.db_lookups();
        assert!(get(&cache, "real", None).await.is_some());
        assert_eq!(cache.db_lookups(), lookups, "still cached");
        get(&cache, "made-up-999", None).await;
        assert_eq!(cache.db_lookups(), lookups, "recent unknown keys are cached too");
    }

    #[tokio::test]
    async fn invalidation_removes_single_entries() {
        let cache = KeyCache::new(Duration::from_secs(60), 100);
        get(&cache, "k1", Some(grant(1, 7, true))).await;
        get(&cache, "k2", Some(grant(2, 7, true))).await;
        get(&cache, "k3", Some(grant(3, 8, true))).await;
        get(&cache, "new", None).await;
        cache.invalidate_key(1);
        assert_eq!(cache.len(), 2);
        cache.invalidate_user(7);
        assert_eq!(cache.len(), 1, "only user 8's key is left");
        cache.invalidate_hash("new");
        let before = cache.db_lookups();
        assert!(get(&cache, "new", Some(grant(4, 8, true))).await.is_some(), "a key created since is found");
        assert!(get(&cache, "k3", None).await.is_some());
        assert_eq!(cache.db_lookups(), before + 1);
    }

    #[tokio::test]
    async fn a_lookup_in_flight_during_an_invalidation_does_not_store_its_stale_result() {
        let cache = Arc::new(KeyCache::new(Duration::from_secs(60), 100));
        get(&cache, "key", Some(grant(1, 1, true))).await;
        cache.invalidate_key(1); // expire it, so the next request reads the database
        let (read, release) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let in_flight = {
            let (cache, read, release) = (cache.clone(), read.clone(), release.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load("key".into(), |_| async move {
                        // The row as it was before the key was disabled…
                        read.notify_one();
                        release.notified().await;
                        Ok(Some(grant(1, 1, true)))
                    })
                    .await
                    .unwrap()
            })
        };
        read.notified().await;
        // …the key is disabled and its entry invalidated while that lookup is still running.
        cache.invalidate_key(1);
        release.notify_one();
        assert!(in_flight.await.unwrap().unwrap().active, "that request read the old row");
        let next = get(&cache, "key", Some(grant(1, 1, false))).await.unwrap();
        assert!(!next.active, "the next request reads the database again and is refused");
    }
}

//! Counters every replica shares: with `BURNCLOUD_REDIS_URL`, the key rate limits are counted in
//! Redis, so N replicas allow what one would. Without it, each replica counts on its own (and the
//! documented limits are per replica). Money never depends on Redis: if it fails at run time, the
//! counts fall back to this replica's own, with a warning when it goes and when it comes back, and
//! a metric (`burncloud_redis_fallbacks_total`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a counter may take before the local count is used instead.
const TIMEOUT: Duration = Duration::from_millis(250);
/// The longest wait between attempts to reach Redis when it was down at start.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The shared counters (see the module's documentation).
#[derive(Default)]
pub struct Counters {
    redis: Option<Arc<Shared>>,
    fallbacks: AtomicU64,
}

struct Shared {
    client: redis::Client,
    /// Set once the first connection is made; the manager reconnects by itself after that.
    connection: tokio::sync::RwLock<Option<ConnectionManager>>,
    up: AtomicBool,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").field("redis", &self.redis.is_some()).finish_non_exhaustive()
    }
}

impl Counters {
    /// Counters in Redis at `url` (`redis://[user:password@]host:port[/db]`). Nothing is connected
    /// yet: [`connect`](Self::connect) does that, retrying, so a Redis that is down at start does
    /// not keep the server from starting.
    pub fn redis(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let shared = Shared { client, connection: tokio::sync::RwLock::new(None), up: AtomicBool::new(false) };
        Ok(Self { redis: Some(Arc::new(shared)), fallbacks: AtomicU64::new(0) })
    }

    /// Whether Redis is configured, and if so whether the last call reached it.
    pub fn redis_up(&self) -> Option<bool> {
        self.redis.as_ref().map(|r| r.up.load(Ordering::Relaxed))
    }

    /// Counts that fell back to this replica's own because Redis did not answer.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Connects to Redis, retrying with backoff until it answers or `stop` is cancelled. Nothing
    /// to do without Redis.
    pub async fn connect(&self, stop: tokio_util::sync::CancellationToken) {
        let Some(shared) = &self.redis else { return };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2);
        let mut backoff = Duration::from_millis(250);
        loop {
            match shared.client.get_connection_manager_with_config(config.clone()).await {
                Ok(manager) => {
                    *shared.connection.write().await = Some(manager);
                    shared.up.store(true, Ordering::Relaxed);
                    tracing::info!("shared counters: connected to Redis");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "shared counters: Redis unreachable, counting on this replica meanwhile")
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Counts one hit on `key` and returns the count so far, the key expiring after `ttl` (a
    /// fixed window: the window belongs in the key). `None` when there is no Redis or it did not
    /// answer in time: the caller counts on this replica.
    pub async fn hit(&self, key: &str, ttl: Duration) -> Option<u64> {
        let shared = self.redis.as_ref()?;
        let connection = shared.connection.read().await.clone();
        let result = match connection {
            Some(mut connection) => {
                let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                let mut pipe = redis::pipe();
                pipe.atomic().incr(key, 1u64).pexpire(key, ttl_ms as i64).ignore();
                match tokio::time::timeout(TIMEOUT, pipe.query_async::<(u64,)>(&mut connection)).await {
                    Ok(Ok((count,))) => Ok(count),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".to_string()),
                }
            }
            None => Err("not connected yet".to_string()),
        };
        match result {
            Ok(count) => {
                if !shared.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("shared counters: Redis answers again");
                }
                Some(count)
            }
            Err(error) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                if shared.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%error, "shared counters: Redis failed; counting on this replica until it is back");
                }
                None
            }
        }
    }
}

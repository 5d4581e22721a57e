//! Counters every replica shares: with `BURNCLOUD_REDIS_URL`, the key rate limits and the
//! anonymous forms' attempt limits are counted in Redis, so N replicas allow what one would. Without it, each replica counts on its own (and the
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
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        pipe.atomic().incr(key, 1u64).pexpire(key, ttl_ms).ignore();
        self.run::<(u64,)>(Query::Pipe(pipe)).await.map(|(count,)| count)
    }

    /// A sliding-window attempt over `keys` (each with its limit), atomically: if every key has
    /// room, the attempt is recorded under all of them and the answer is zero; otherwise nothing
    /// is recorded and the answer is how long until the fullest key has room. `None`: no Redis, or
    /// it did not answer (the caller counts on this replica).
    pub async fn window_attempt(&self, keys: &[(String, usize)], window: Duration) -> Option<Duration> {
        let now = u64::try_from(crate::domain::time::now_ms()).unwrap_or(0);
        let member = format!("{now}-{}", crate::domain::token::random_alphanumeric(8));
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(WINDOW_ATTEMPT).arg(keys.len());
        for (key, _) in keys {
            cmd.arg(key);
        }
        cmd.arg(now).arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX)).arg(member);
        for (_, limit) in keys {
            cmd.arg(*limit);
        }
        self.run::<u64>(Query::Cmd(cmd)).await.map(Duration::from_millis)
    }

    /// Takes back the latest attempt recorded under each of `keys`; `forget` keys are dropped
    /// whole. `false` when Redis did not answer.
    pub async fn window_give_back(&self, keys: &[String], forget: &[String]) -> bool {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in keys {
            pipe.cmd("ZPOPMAX").arg(key).ignore();
        }
        for key in forget {
            pipe.del(key).ignore();
        }
        self.run::<()>(Query::Pipe(pipe)).await.is_some()
    }

    /// Adds `amount` to `key` when the sum stays within `limit` (the key expires `ttl` after its
    /// first count): whether it was added, and the count after. One script, so concurrent adds
    /// on any replica cannot pass the limit together. `None`: no Redis, or it did not answer.
    pub async fn add_within(&self, key: &str, amount: u64, limit: u64, ttl: Duration) -> Option<(bool, u64)> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(ADD_WITHIN)
            .arg(1)
            .arg(key)
            .arg(amount)
            .arg(limit)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self.run::<(u64, u64)>(Query::Cmd(cmd)).await.map(|(added, count)| (added == 1, count))
    }

    /// Moves `key` by `delta` (never below zero) if it still exists: a true-up within a window
    /// that has not ended. `None`: no Redis, or it did not answer.
    pub async fn adjust_existing(&self, key: &str, delta: i64) -> Option<()> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(ADJUST_EXISTING).arg(1).arg(key).arg(delta);
        self.run::<u64>(Query::Cmd(cmd)).await.map(|_| ())
    }

    /// Increments `key` (no expiry) and returns the new value: a generation that retires every
    /// key built on the old one.
    pub async fn bump(&self, key: &str) -> Option<u64> {
        let mut cmd = redis::cmd("INCR");
        cmd.arg(key);
        self.run::<u64>(Query::Cmd(cmd)).await
    }

    /// The number stored at `key`, 0 when none.
    pub async fn read(&self, key: &str) -> Option<u64> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.run::<Option<u64>>(Query::Cmd(cmd)).await.map(Option::unwrap_or_default)
    }

    /// Sends `query` within [`TIMEOUT`]; `None` without Redis or when it did not answer.
    async fn run<T: redis::FromRedisValue>(&self, query: Query) -> Option<T> {
        let shared = self.redis.as_ref()?;
        let connection = shared.connection.read().await.clone();
        let result = match connection {
            Some(mut connection) => {
                let call = async {
                    match &query {
                        Query::Cmd(cmd) => cmd.query_async::<T>(&mut connection).await,
                        Query::Pipe(pipe) => pipe.query_async::<T>(&mut connection).await,
                    }
                };
                match tokio::time::timeout(TIMEOUT, call).await {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".to_string()),
                }
            }
            None => Err("not connected yet".to_string()),
        };
        self.note(shared, result)
    }

    /// Keeps `up` and the fallback count true, warning once when Redis goes and once when it
    /// comes back.
    fn note<T>(&self, shared: &Shared, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => {
                if !shared.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("shared counters: Redis answers again");
                }
                Some(value)
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

/// One command, or several sent together.
enum Query {
    Cmd(redis::Cmd),
    Pipe(redis::Pipeline),
}

/// KEYS[1]: a window's count. ARGV: amount, limit, ttl (ms). Returns {added (0/1), count}.
const ADD_WITHIN: &str = r#"
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if count + amount > tonumber(ARGV[2]) then return {0, count} end
count = redis.call('INCRBY', KEYS[1], amount)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, count}
"#;

/// KEYS[1]: a window's count. ARGV: delta. Only while the window's key exists; never below 0.
const ADJUST_EXISTING: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
return 1
"#;

/// The sliding window in one script, so concurrent attempts on any replica cannot all pass.
/// KEYS: sorted sets of attempt times. ARGV: now (ms), window (ms), this attempt's member, then
/// each key's limit. Returns 0 (recorded) or the ms until the fullest key has room.
const WINDOW_ATTEMPT: &str = r#"
local now, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local left = tonumber(oldest[2]) + window - now
    if left > wait then wait = left end
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, window)
end
return 0
"#;

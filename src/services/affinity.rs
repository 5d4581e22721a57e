//! Session affinity: requests of one conversation go to the channel that served it before, for
//! a while, so the upstream's prompt cache keeps hitting. A conversation is named by a marker the
//! client sends (`prompt_cache_key`, `user`, Anthropic's `metadata.user_id`, Claude Code's or
//! Codex's session header, or a header the operator names), scoped to the key and the model.
//! This replica's memory only, bounded; a channel that is disabled or fails is let go at once.

use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hashlink::LruCache;

/// Most conversations remembered (least recently used go first).
const MAX_ENTRIES: usize = 100_000;

/// A conversation: its marker, scoped to the key and the model (a hash; never stored as text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conversation(u64);

impl Conversation {
    pub fn new(key_id: i64, model: &str, marker: &str) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (key_id, model, marker).hash(&mut hasher);
        Self(hasher.finish())
    }
}

/// Where a conversation sticks: a channel, and the index of the key that served it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stuck {
    pub channel: i64,
    pub key: usize,
}

pub struct Affinity {
    sticks: Mutex<LruCache<Conversation, (Stuck, Instant)>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for Affinity {
    fn default() -> Self {
        Self { sticks: Mutex::new(LruCache::new(MAX_ENTRIES)), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }
}

impl Affinity {
    /// The channel and key the conversation sticks to, if it still does (not expired). Counted
    /// as a hit or a miss only by [`Self::counted`], once the caller knows whether it could use it.
    pub fn stuck(&self, conversation: Conversation) -> Option<Stuck> {
        let mut sticks = self.sticks.lock().ok()?;
        match sticks.get(&conversation) {
            Some(&(stuck, until)) if until > Instant::now() => Some(stuck),
            Some(_) => {
                sticks.remove(&conversation);
                None
            }
            None => None,
        }
    }

    /// Records whether a request with a marker went to its conversation's channel.
    pub fn counted(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The conversation sticks to a channel and key for `ttl` from now (renewed by every answer).
    pub fn stick(&self, conversation: Conversation, stuck: Stuck, ttl: Duration) {
        if let Ok(mut sticks) = self.sticks.lock() {
            sticks.insert(conversation, (stuck, Instant::now() + ttl));
        }
    }

    /// Lets the conversation go (its channel failed or is out of routing).
    pub fn release(&self, conversation: Conversation) {
        if let Ok(mut sticks) = self.sticks.lock() {
            sticks.remove(&conversation);
        }
    }

    /// Requests with a marker that went to their conversation's channel, and those that did not.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_sticks_until_it_expires_or_is_let_go() {
        let affinity = Affinity::default();
        let a = Conversation::new(1, "m", "conv-1");
        assert_ne!(a, Conversation::new(2, "m", "conv-1"), "scoped to the key");
        assert_ne!(a, Conversation::new(1, "n", "conv-1"), "and to the model");
        let seven = Stuck { channel: 7, key: 2 };
        assert_eq!(affinity.stuck(a), None);
        affinity.stick(a, seven, Duration::from_secs(60));
        assert_eq!(affinity.stuck(a), Some(seven));
        affinity.release(a);
        assert_eq!(affinity.stuck(a), None);
        affinity.stick(a, seven, Duration::ZERO);
        assert_eq!(affinity.stuck(a), None, "expired");
    }
}

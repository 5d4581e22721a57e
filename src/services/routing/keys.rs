//! A channel's upstream keys: how each is named without showing it (its fingerprint), whether it
//! may take traffic now, how one is picked, and its health (kept across snapshots).
//!
//! A key leaves routing three ways: stored as disabled (automatically, after an upstream refused
//! it, or by hand), refused on this replica a moment ago (before its stored state reaches the
//! snapshot), or cooling down after an upstream 429 asked the gateway to wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use rand::Rng;
use sha2::Digest;

use super::health::Health;

pub use crate::providers::wire::KeySelection;

/// How long a refused key stays out of this replica's routing on its own say-so: long enough for
/// its disabling to be written and every snapshot to catch up; the stored state decides after.
pub const REFUSAL_HOLD_MS: i64 = 60_000;
/// The longest wait an upstream's `Retry-After` can impose on a key (a proxy asking for a day
/// must not take a key out for a day).
pub const MAX_COOLDOWN_MS: i64 = 600_000;

/// The name a key goes by in the database, the API and the console: the first 16 hex digits of
/// its SHA-256. It tells keys apart without revealing them.
pub fn fingerprint(secret: &str) -> String {
    let mut hex = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    hex.truncate(16);
    hex
}

/// One key's health on this replica, and the instant until which it takes no traffic here.
#[derive(Debug, Default)]
pub struct KeyStats {
    pub health: Health,
    /// Unix ms; 0 when the key is not held off.
    held_until: AtomicI64,
}

impl KeyStats {
    /// Keeps the key out of routing until `until` (unix ms), or longer if it already is.
    pub fn hold_off(&self, until: i64) {
        self.held_until.fetch_max(until, Ordering::Relaxed);
    }

    /// Lets the key take traffic again at once (it passed a probe, or was enabled by hand).
    pub fn release(&self) {
        self.held_until.store(0, Ordering::Relaxed);
    }

    /// Until when the key is held off, if it is at `now`.
    pub fn held_until(&self, now: i64) -> Option<i64> {
        let until = self.held_until.load(Ordering::Relaxed);
        (until > now).then_some(until)
    }
}

/// One upstream key of a channel, decrypted.
#[derive(Debug)]
pub struct UpstreamKey {
    pub secret: String,
    pub fingerprint: String,
    /// Its stored state is active (not disabled automatically or by hand).
    pub active: bool,
    pub stats: Arc<KeyStats>,
}

impl UpstreamKey {
    pub fn new(secret: String, active: bool, stats: Arc<KeyStats>) -> Self {
        Self { fingerprint: fingerprint(&secret), secret, active, stats }
    }

    /// Whether the key may take a request at `now` (unix ms).
    pub fn available(&self, now: i64) -> bool {
        self.active && self.stats.held_until(now).is_none()
    }
}

/// Picks one of `keys` available at `now`: at random, or in turn (`turn` counts the picks);
/// `None` when none is.
pub fn pick(keys: &[UpstreamKey], selection: KeySelection, turn: &AtomicUsize, now: i64) -> Option<usize> {
    let n = keys.len();
    if n <= 1 {
        return keys.first().filter(|k| k.available(now)).map(|_| 0);
    }
    let ticket = match selection {
        KeySelection::Random => rand::rng().random_range(0..n),
        KeySelection::RoundRobin => turn.fetch_add(1, Ordering::Relaxed),
    };
    if keys[ticket % n].available(now) {
        return Some(ticket % n);
    }
    // Some key is out: the same ticket chooses among the others, evenly (not "the next one",
    // which would give the key after a dead one a double share).
    let open: Vec<usize> = (0..n).filter(|&i| keys[i].available(now)).collect();
    let ticket = match selection {
        KeySelection::Random => rand::rng().random_range(0..open.len().max(1)),
        KeySelection::RoundRobin => ticket,
    };
    open.get(ticket % open.len().max(1)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<UpstreamKey> {
        (0..n).map(|i| UpstreamKey::new(format!("sk-{i}"), true, Arc::default())).collect()
    }

    fn shares(keys: &[UpstreamKey], selection: KeySelection, n: usize) -> Vec<usize> {
        let turn = AtomicUsize::new(0);
        let mut counts = vec![0; keys.len()];
        for _ in 0..n {
            counts[pick(keys, selection, &turn, 1_000).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_takes_each_key_in_turn_and_skips_one_that_is_out_evenly() {
        let mut three = keys(3);
        assert_eq!(shares(&three, KeySelection::RoundRobin, 9), [3, 3, 3]);
        three[1].active = false;
        assert_eq!(shares(&three, KeySelection::RoundRobin, 10), [5, 0, 5]);
        three[0].stats.hold_off(2_000);
        assert_eq!(shares(&three, KeySelection::RoundRobin, 4), [0, 0, 4]);
        three[2].stats.hold_off(1_001);
        let turn = AtomicUsize::new(0);
        assert_eq!(pick(&three, KeySelection::RoundRobin, &turn, 1_000), None);
        // A hold ends by itself.
        assert_eq!(pick(&three, KeySelection::RoundRobin, &turn, 1_001), Some(2));
        three[0].stats.release();
        assert_eq!(pick(&three, KeySelection::Random, &turn, 1_000), Some(0));
    }

    #[test]
    fn random_spreads_over_the_available_keys() {
        let three = keys(3);
        three[2].stats.hold_off(5_000);
        let counts = shares(&three, KeySelection::Random, 6_000);
        assert_eq!(counts[2], 0);
        assert!(counts[0].abs_diff(3_000) < 300 && counts[1].abs_diff(3_000) < 300, "{counts:?}");
    }

    #[test]
    fn a_fingerprint_names_a_key_without_showing_it() {
        let f = fingerprint("sk-live-abcdefghijklmnop");
        assert_eq!(f.len(), 16);
        assert!(f.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(f, fingerprint("sk-live-abcdefghijklmnoq"));
        assert!(!f.contains("abcd"));
    }

    #[test]
    fn holds_only_lengthen() {
        let stats = KeyStats::default();
        stats.hold_off(5_000);
        stats.hold_off(3_000);
        assert_eq!(stats.held_until(1_000), Some(5_000));
        assert_eq!(stats.held_until(5_000), None);
    }
}

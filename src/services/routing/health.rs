//! How each channel and each upstream key has been answering on this replica: moving averages
//! (EWMA) of time to first token, whole-answer latency and error rate, the requests in flight,
//! and each channel's circuit breaker. The health-aware strategies (`least_latency`,
//! `least_busy`) read them; nothing here touches the database.
//!
//! Every replica keeps its own: they measure what this replica saw, and the breaker opens here
//! when this replica's attempts keep failing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::keys::KeyStats;

/// A moving average (weight 1/5 to each new sample), `None` before the first sample.
#[derive(Debug)]
struct Ewma(AtomicU64);

impl Default for Ewma {
    fn default() -> Self {
        Self(AtomicU64::new(f64::NAN.to_bits()))
    }
}

impl Ewma {
    const ALPHA: f64 = 0.2;

    fn record(&self, sample: f64) {
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            let old = f64::from_bits(bits);
            let new = if old.is_nan() { sample } else { old + Self::ALPHA * (sample - old) };
            Some(new.to_bits())
        });
    }

    fn get(&self) -> Option<f64> {
        Some(f64::from_bits(self.0.load(Ordering::Relaxed))).filter(|v| !v.is_nan())
    }
}

/// One channel's or key's answers on this replica.
#[derive(Debug, Default)]
pub struct Health {
    requests: AtomicU64,
    failures: AtomicU64,
    /// From sending the request to the answer's start: the first stream event, or the whole
    /// answer when it does not stream.
    ttft: Ewma,
    /// From sending the request to the answer's last byte.
    latency: Ewma,
    /// 1 for a failed attempt, 0 for an answer.
    errors: Ewma,
    in_flight: AtomicI64,
}

/// What [`Health`] shows the API and the console.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct HealthView {
    pub requests: u64,
    pub failures: u64,
    pub ttft_ms: Option<i64>,
    pub latency_ms: Option<i64>,
    /// The moving error rate, 0 to 1 (three decimals).
    pub error_rate: Option<f64>,
    pub in_flight: i64,
}

impl Health {
    /// Counts one attempt: an answer that began after `ttft`, or a failure.
    pub fn record(&self, answered: Option<std::time::Duration>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match answered {
            Some(ttft) => {
                self.ttft.record(ttft.as_secs_f64() * 1000.0);
                self.errors.record(0.0);
            }
            None => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.errors.record(1.0);
            }
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The moving time to first token in ms, if any answer was seen.
    pub fn ttft_ms(&self) -> Option<f64> {
        self.ttft.get()
    }

    /// The moving error rate (0 to 1), if any attempt was seen.
    pub fn error_rate(&self) -> Option<f64> {
        self.errors.get()
    }

    /// How `least_latency` ranks the channel, lower first: its moving time to first token, raised
    /// by its error rate (a channel failing half its attempts counts twice as slow, at most ten
    /// times). Never tried: 0, so it gets measured; tried but never answered: last.
    pub fn latency_score(&self) -> f64 {
        match self.ttft.get() {
            None if self.requests() == 0 => 0.0,
            None => f64::INFINITY,
            Some(ttft) => ttft / (1.0 - self.error_rate().unwrap_or(0.0).min(0.9)),
        }
    }

    /// Requests sent and not yet answered to their end.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed).max(0)
    }

    pub fn view(&self) -> HealthView {
        HealthView {
            requests: self.requests(),
            failures: self.failures(),
            ttft_ms: self.ttft.get().map(|v| v.round() as i64),
            latency_ms: self.latency.get().map(|v| v.round() as i64),
            error_rate: self.errors.get().map(|v| (v * 1000.0).round() / 1000.0),
            in_flight: self.in_flight(),
        }
    }
}

/// One request in flight on a channel and its key: counted while it lives; its whole latency is
/// recorded when it ends, if it was answered.
#[derive(Debug)]
pub struct InFlight {
    on: [Arc<dyn AsHealth>; 2],
    started: Instant,
    answered: bool,
}

/// Something with a [`Health`]: a channel's or a key's.
pub trait AsHealth: std::fmt::Debug + Send + Sync {
    fn health(&self) -> &Health;
}

impl AsHealth for ChannelHealth {
    fn health(&self) -> &Health {
        &self.health
    }
}

impl AsHealth for KeyStats {
    fn health(&self) -> &Health {
        &self.health
    }
}

impl InFlight {
    /// Starts counting a request on a channel and the key it goes through.
    pub fn start(channel: Arc<ChannelHealth>, key: Arc<KeyStats>) -> Self {
        let on: [Arc<dyn AsHealth>; 2] = [channel, key];
        for h in &on {
            h.health().in_flight.fetch_add(1, Ordering::Relaxed);
        }
        Self { on, started: Instant::now(), answered: false }
    }

    /// Since the request was sent.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The request was answered: its end counts as a latency sample.
    pub fn answered(&mut self) {
        self.answered = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        for h in &self.on {
            h.health().in_flight.fetch_sub(1, Ordering::Relaxed);
            if self.answered {
                h.health().latency.record(ms);
            }
        }
    }
}

/// When a channel's circuit opens and for how long (the `gateway.circuit_*` settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failed attempts that open the circuit (0: never on this rule).
    pub failures: u32,
    /// The failed share of a window's attempts, in percent, that opens it (0: never on this rule).
    pub error_rate_pct: u32,
    /// The fewest attempts in a window for its error rate to count.
    pub min_requests: u32,
    pub window_ms: i64,
    /// How long an open circuit takes no traffic before one trial request is let through.
    pub cooldown_ms: i64,
    /// The fewest distinct users whose attempts failed in the window before the circuit opens:
    /// one tenant provoking upstream errors must not take a channel from everyone.
    pub min_users: u32,
}

impl From<&crate::config::GatewayConfig> for BreakerPolicy {
    fn from(g: &crate::config::GatewayConfig) -> Self {
        let whole = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            failures: whole(g.circuit_failures),
            error_rate_pct: whole(g.circuit_error_rate),
            min_requests: whole(g.circuit_min_requests),
            window_ms: ms(g.circuit_window),
            cooldown_ms: ms(g.circuit_cooldown),
            min_users: whole(g.circuit_min_users).clamp(1, MAX_MIN_USERS),
        }
    }
}

/// The most distinct failing users a breaker waits for (and so keeps in memory).
pub const MAX_MIN_USERS: u32 = 10;

impl BreakerPolicy {
    fn is_off(&self) -> bool {
        self.failures == 0 && self.error_rate_pct == 0
    }
}

/// A circuit's state, as the API and the console show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Circuit {
    /// Traffic flows.
    Closed,
    /// No traffic until `until` (unix ms).
    Open { until: i64 },
    /// One trial request is in flight since `since`; its outcome closes or reopens the circuit.
    HalfOpen { since: i64 },
}

#[derive(Debug)]
struct BreakerState {
    circuit: Circuit,
    consecutive: u32,
    window_start: i64,
    window_requests: u32,
    window_failures: u32,
    /// Distinct users whose attempts failed in the window (at most `min_users` kept).
    failing_users: Vec<i64>,
}

impl BreakerState {
    /// Starts counting afresh at `now`.
    fn restart(&mut self, now: i64) {
        (self.consecutive, self.window_start, self.window_requests, self.window_failures) = (0, now, 0, 0);
        self.failing_users.clear();
    }
}

/// A channel's circuit breaker. Closed, it counts failures; open, the channel gets no traffic for
/// a cooldown; then one request is let through as a trial (half-open): an answer closes the
/// circuit, a failure opens it again. A trial that never reports (its client went away) is
/// replaced by another after a cooldown.
#[derive(Debug)]
pub struct Breaker {
    /// 0 while closed: the common case is read without the lock.
    tripped: AtomicI64,
    state: Mutex<BreakerState>,
}

impl Default for Breaker {
    fn default() -> Self {
        let state = BreakerState {
            circuit: Circuit::Closed,
            consecutive: 0,
            window_start: 0,
            window_requests: 0,
            window_failures: 0,
            failing_users: Vec::new(),
        };
        Self { tripped: AtomicI64::new(0), state: Mutex::new(state) }
    }
}

/// Whether a circuit lets a request through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Through,
    /// As the trial of a circuit that has just half-opened.
    Trial,
    /// Not now: the circuit is open, or its trial is taken.
    Refused,
}

/// A change of a circuit's state, for the log and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Opened,
    HalfOpened,
    Closed,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "open",
            Self::HalfOpened => "half_open",
            Self::Closed => "closed",
        }
    }
}

impl Breaker {
    /// The circuit now.
    pub fn circuit(&self) -> Circuit {
        if self.tripped.load(Ordering::Acquire) == 0 {
            return Circuit::Closed;
        }
        self.state.lock().map_or(Circuit::Closed, |s| s.circuit)
    }

    /// Whether the channel may be picked at `now`: closed, or open past its cooldown, or
    /// half-open with a trial that has not reported for a cooldown. Reads only.
    pub fn may_try(&self, now: i64, policy: &BreakerPolicy) -> bool {
        match self.circuit() {
            Circuit::Closed => true,
            Circuit::Open { until } => now >= until,
            Circuit::HalfOpen { since } => now >= since.saturating_add(policy.cooldown_ms),
        }
    }

    /// Lets a picked channel's request through: always when closed; past the cooldown, as the one
    /// trial (half-open); not when another request took the trial first.
    pub fn admit(&self, now: i64, policy: &BreakerPolicy) -> Admission {
        if self.tripped.load(Ordering::Acquire) == 0 {
            return Admission::Through;
        }
        let Ok(mut s) = self.state.lock() else { return Admission::Through };
        match s.circuit {
            Circuit::Closed => Admission::Through,
            Circuit::Open { until } if now >= until => {
                s.circuit = Circuit::HalfOpen { since: now };
                Admission::Trial
            }
            Circuit::HalfOpen { since } if now >= since.saturating_add(policy.cooldown_ms) => {
                s.circuit = Circuit::HalfOpen { since: now };
                Admission::Through
            }
            _ => Admission::Refused,
        }
    }

    /// Counts the outcome of one attempt `user` made at `now`; says when it changed the circuit.
    pub fn record(&self, ok: bool, user: i64, now: i64, policy: &BreakerPolicy) -> Option<Transition> {
        if policy.is_off() {
            return self.reset_if_tripped();
        }
        let Ok(mut s) = self.state.lock() else { return None };
        if now - s.window_start >= policy.window_ms.max(1) {
            let consecutive = s.consecutive;
            s.restart(now);
            s.consecutive = consecutive;
        }
        s.window_requests = s.window_requests.saturating_add(1);
        if ok {
            s.consecutive = 0;
        } else {
            s.consecutive = s.consecutive.saturating_add(1);
            s.window_failures = s.window_failures.saturating_add(1);
            if s.failing_users.len() < policy.min_users as usize && !s.failing_users.contains(&user) {
                s.failing_users.push(user);
            }
        }
        let open = |s: &mut BreakerState| {
            s.circuit = Circuit::Open { until: now.saturating_add(policy.cooldown_ms) };
            s.restart(now);
            self.tripped.store(1, Ordering::Release);
            Some(Transition::Opened)
        };
        match s.circuit {
            // The trial's answer closes the circuit; its failure opens it again.
            Circuit::HalfOpen { .. } if ok => {
                s.circuit = Circuit::Closed;
                s.restart(now);
                self.tripped.store(0, Ordering::Release);
                Some(Transition::Closed)
            }
            Circuit::HalfOpen { .. } => open(&mut s),
            // Attempts that started before the circuit opened change nothing.
            Circuit::Open { .. } => None,
            Circuit::Closed if ok => None,
            Circuit::Closed => {
                let by_count = policy.failures > 0 && s.consecutive >= policy.failures;
                let by_rate = policy.error_rate_pct > 0
                    && s.window_requests >= policy.min_requests.max(1)
                    && u64::from(s.window_failures) * 100
                        >= u64::from(policy.error_rate_pct) * u64::from(s.window_requests);
                let users = s.failing_users.len() >= policy.min_users.max(1) as usize;
                if (by_count || by_rate) && users { open(&mut s) } else { None }
            }
        }
    }

    /// Closes the circuit now (an operator saved or enabled the channel, or a probe passed).
    pub fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.circuit = Circuit::Closed;
            let start = s.window_start;
            s.restart(start);
        }
        self.tripped.store(0, Ordering::Release);
    }

    /// With the breaker turned off, a circuit left open closes.
    fn reset_if_tripped(&self) -> Option<Transition> {
        if self.tripped.swap(0, Ordering::AcqRel) == 0 {
            return None;
        }
        if let Ok(mut s) = self.state.lock() {
            s.circuit = Circuit::Closed;
        }
        Some(Transition::Closed)
    }
}

/// One channel's health and circuit breaker on this replica.
#[derive(Debug, Default)]
pub struct ChannelHealth {
    pub health: Health,
    pub breaker: Breaker,
}

/// What [`ChannelHealth`] shows the API and the console.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct ChannelHealthView {
    #[serde(flatten)]
    pub traffic: HealthView,
    /// `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    /// Until when (unix ms) an open circuit takes no traffic.
    pub circuit_until: Option<i64>,
}

impl Default for ChannelHealthView {
    fn default() -> Self {
        Self { traffic: HealthView::default(), circuit: "closed", circuit_until: None }
    }
}

impl ChannelHealth {
    pub fn view(&self) -> ChannelHealthView {
        let (circuit, circuit_until) = match self.breaker.circuit() {
            Circuit::Closed => ("closed", None),
            Circuit::Open { until } => ("open", Some(until)),
            Circuit::HalfOpen { .. } => ("half_open", None),
        };
        ChannelHealthView { traffic: self.health.view(), circuit, circuit_until }
    }
}

/// Channels' and keys' health by id (and fingerprint), shared by every snapshot so a reload keeps
/// them. Bounded by the channels and keys: each reload forgets those no enabled channel holds.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    keys: Shared<(i64, String), KeyStats>,
    channels: Shared<i64, ChannelHealth>,
}

/// Values by key behind one lock, shared with every snapshot that holds them.
#[derive(Debug)]
struct Shared<K, V>(Mutex<HashMap<K, Arc<V>>>);

impl<K, V> Default for Shared<K, V> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<K: std::hash::Hash + Eq, V: Default> Shared<K, V> {
    /// The value of `key`, new for a key not seen before.
    fn get(&self, key: K) -> Arc<V> {
        let Ok(mut map) = self.0.lock() else { return Arc::default() };
        map.entry(key).or_default().clone()
    }

    fn find(&self, key: &K) -> Option<Arc<V>> {
        self.0.lock().ok()?.get(key).cloned()
    }

    /// Forgets every key not in `live`.
    fn retain(&self, live: &HashSet<K>) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|k, _| live.contains(k));
        }
    }
}

impl HealthRegistry {
    /// The counters of a channel's key (new ones for a key not seen before).
    pub fn key(&self, channel_id: i64, fingerprint: &str) -> Arc<KeyStats> {
        self.keys.get((channel_id, fingerprint.to_string()))
    }

    /// The counters of a key, if it is known.
    pub fn find_key(&self, channel_id: i64, fingerprint: &str) -> Option<Arc<KeyStats>> {
        self.keys.find(&(channel_id, fingerprint.to_string()))
    }

    /// A channel's health (new for a channel not seen before).
    pub fn channel(&self, channel_id: i64) -> Arc<ChannelHealth> {
        self.channels.get(channel_id)
    }

    /// A channel's health, if it is known (it is enabled, or was until lately).
    pub fn find_channel(&self, channel_id: i64) -> Option<Arc<ChannelHealth>> {
        self.channels.find(&channel_id)
    }

    /// Forgets every key not in `keys` and every channel not in `channels`.
    pub fn retain(&self, keys: &HashSet<(i64, String)>, channels: &HashSet<i64>) {
        self.keys.retain(keys);
        self.channels.retain(channels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures: 3,
        error_rate_pct: 50,
        min_requests: 10,
        window_ms: 60_000,
        cooldown_ms: 1_000,
        min_users: 1,
    };

    #[test]
    fn consecutive_failures_open_the_circuit_and_a_trial_closes_or_reopens_it() {
        let b = Breaker::default();
        assert_eq!(b.record(false, 7, 0, &POLICY), None);
        assert_eq!(b.record(false, 7, 1, &POLICY), None);
        // A success in between starts the count again.
        assert_eq!(b.record(true, 7, 2, &POLICY), None);
        assert_eq!(b.record(false, 7, 3, &POLICY), None);
        assert_eq!(b.record(false, 7, 4, &POLICY), None);
        assert_eq!(b.record(false, 7, 5, &POLICY), Some(Transition::Opened));
        assert_eq!(b.circuit(), Circuit::Open { until: 1_005 });
        assert!(!b.may_try(1_004, &POLICY));
        assert_eq!(b.admit(1_004, &POLICY), Admission::Refused);
        // Past the cooldown, one trial; a second request meanwhile is turned away.
        assert!(b.may_try(1_005, &POLICY));
        assert_eq!(b.admit(1_005, &POLICY), Admission::Trial);
        assert!(!b.may_try(1_006, &POLICY));
        assert_eq!(b.admit(1_006, &POLICY), Admission::Refused);
        // The trial fails: open again for a cooldown.
        assert_eq!(b.record(false, 7, 1_100, &POLICY), Some(Transition::Opened));
        assert_eq!(b.circuit(), Circuit::Open { until: 2_100 });
        assert_eq!(b.admit(2_100, &POLICY), Admission::Trial);
        // A trial that never reports is replaced after a cooldown.
        assert_eq!(b.admit(3_099, &POLICY), Admission::Refused);
        assert_eq!(b.admit(3_100, &POLICY), Admission::Through);
        assert_eq!(b.record(true, 7, 3_200, &POLICY), Some(Transition::Closed));
        assert_eq!(b.circuit(), Circuit::Closed);
        assert_eq!(b.admit(3_201, &POLICY), Admission::Through);
        // An operator's hand closes an open circuit at once.
        for i in 0..3 {
            b.record(false, 7, 4_000 + i, &POLICY);
        }
        assert!(!b.may_try(4_003, &POLICY));
        b.close();
        assert!(b.may_try(4_003, &POLICY) && b.circuit() == Circuit::Closed);
    }

    #[test]
    fn an_error_rate_over_the_window_opens_the_circuit() {
        let b = Breaker::default();
        let policy = BreakerPolicy { failures: 0, ..POLICY };
        // Alternating answers and failures: never 3 in a row, but half failed.
        for i in 0..9 {
            assert_eq!(b.record(i % 2 == 1, 7, i, &policy), None, "{i}");
        }
        assert_eq!(b.record(false, 7, 9, &policy), Some(Transition::Opened));
        // A new window forgets the old one's failures.
        let b = Breaker::default();
        for i in 0..9 {
            b.record(i % 2 == 1, 7, i, &policy);
        }
        assert_eq!(b.record(false, 7, 60_000, &policy), None);
    }

    #[test]
    fn one_user_alone_never_opens_a_circuit_that_needs_two() {
        let b = Breaker::default();
        let policy = BreakerPolicy { min_users: 2, ..POLICY };
        for i in 0..20 {
            assert_eq!(b.record(false, 7, i, &policy), None, "{i}");
        }
        // A second user's failure: the channel fails for more than one tenant.
        assert_eq!(b.record(false, 8, 20, &policy), Some(Transition::Opened));
        // Counting starts afresh after the circuit closes, and after a window passes.
        b.close();
        b.record(false, 7, 21, &policy);
        assert_eq!(b.record(false, 8, 60_031, &policy), None);
        assert_eq!(b.record(false, 8, 60_032, &policy), None, "user 7's failure was in the old window");
        assert_eq!(b.record(false, 7, 60_033, &policy), Some(Transition::Opened));
    }

    #[test]
    fn a_breaker_turned_off_never_opens_and_closes_an_open_circuit() {
        let b = Breaker::default();
        for i in 0..3 {
            b.record(false, 7, i, &POLICY);
        }
        assert!(matches!(b.circuit(), Circuit::Open { .. }));
        let off = BreakerPolicy { failures: 0, error_rate_pct: 0, ..POLICY };
        assert_eq!(b.record(false, 7, 10, &off), Some(Transition::Closed));
        for i in 0..100 {
            assert_eq!(b.record(false, 7, 20 + i, &off), None);
        }
        assert!(b.may_try(200, &off));
    }

    #[test]
    fn moving_averages_follow_the_samples_and_in_flight_counts_until_the_end() {
        let channel = Arc::new(ChannelHealth::default());
        let key = Arc::new(KeyStats::default());
        assert_eq!(channel.health.view(), HealthView::default());
        channel.health.record(Some(std::time::Duration::from_millis(100)));
        channel.health.record(Some(std::time::Duration::from_millis(200)));
        channel.health.record(None);
        let view = channel.health.view();
        assert_eq!((view.requests, view.failures, view.ttft_ms), (3, 1, Some(120)));
        assert_eq!(view.error_rate, Some(0.2));
        let mut first = InFlight::start(channel.clone(), key.clone());
        let second = InFlight::start(channel.clone(), key.clone());
        assert_eq!((channel.health.in_flight(), key.health.in_flight()), (2, 2));
        first.answered();
        drop(first);
        drop(second);
        assert_eq!(channel.health.in_flight(), 0);
        // Only the answered one is a latency sample.
        assert!(channel.health.view().latency_ms.is_some() && key.health.view().latency_ms.is_some());
    }
}

//! Rate limits in fixed windows: requests per minute, requests per UTC day and tokens per minute,
//! counted per key, per user (their own limits or their group's) and per user on one model (their
//! group's per-model limits). Counted in Redis when one is configured (every replica shares the
//! count), else — and whenever Redis does not answer — on this replica. Key and user requests are
//! counted when the key is authenticated, a model's once the body names it; tokens are reserved
//! from the request's estimate once its body is read, and trued up to the upstream's usage at
//! settlement. A refusal counts nothing in any scope. Every answer to a limited caller carries
//! OpenAI's `x-ratelimit-*` headers ([`Headers`]) for the tightest of its windows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::domain::time::reset_text;
use crate::state::AppState;

/// Most (window, scope) counts this replica keeps before it drops those of past windows.
const MAX_ENTRIES: usize = 100_000;

/// What a limit counts, and over which window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    RequestsPerMinute,
    RequestsPerDay,
    TokensPerMinute,
}

impl Window {
    fn len_ms(self) -> i64 {
        match self {
            Self::RequestsPerDay => 86_400_000,
            Self::RequestsPerMinute | Self::TokensPerMinute => 60_000,
        }
    }

    /// The number of the window that contains `at` (unix ms).
    fn number(self, at: i64) -> i64 {
        at.div_euclid(self.len_ms())
    }

    fn tag(self) -> &'static str {
        match self {
            Self::RequestsPerMinute => "rpm",
            Self::RequestsPerDay => "rpd",
            Self::TokensPerMinute => "tpm",
        }
    }
}

/// Whose count a limit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Key(i64),
    /// A user's, over all of their keys.
    User(i64),
    /// A user's on one model: the user and the model's name, hashed.
    Model(i64, u64),
}

impl Scope {
    /// A user's count on `model`. The hash is the same in every replica (one binary, fixed keys).
    pub fn model(user: i64, model: &str) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        model.hash(&mut hasher);
        Self::Model(user, hasher.finish())
    }

    /// The scope in a Redis counter's name (a key's keeps the name it had before users had limits).
    fn name(self) -> String {
        match self {
            Self::Key(id) => id.to_string(),
            Self::User(id) => format!("u{id}"),
            Self::Model(id, model) => format!("u{id}m{model:016x}"),
        }
    }

    /// Who the limit is of, in a refusal's message: "Rate limit reached for …".
    pub fn subject(self) -> &'static str {
        match self {
            Self::Key(_) => "this key",
            Self::User(_) => "your account",
            Self::Model(..) => "this model on your account",
        }
    }

    /// "… more than … limit".
    pub fn possessive(self) -> &'static str {
        match self {
            Self::Key(_) => "this key's",
            Self::User(_) => "your account's",
            Self::Model(..) => "your account's per-model",
        }
    }
}

/// One limit a request is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub window: Window,
    pub scope: Scope,
    pub limit: u64,
}

/// Where a caller stands in one window after a count: for the headers, and for a refusal's wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    pub limit: u64,
    pub used: u64,
    /// When the window ends (unix ms).
    pub resets_at: i64,
}

impl Standing {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Whole seconds until the window ends (at least 1), for `Retry-After`.
    pub fn wait_secs(&self, now: i64) -> u64 {
        u64::try_from((self.resets_at - now + 999) / 1000).unwrap_or(1).max(1)
    }
}

/// This replica's own counts: (window, scope) → (window number, used).
#[derive(Default)]
pub struct LocalCounts {
    counts: Mutex<HashMap<(Window, Scope), (i64, u64)>>,
}

impl LocalCounts {
    fn take(&self, window: Window, key: Scope, number: i64, amount: u64, limit: u64) -> (bool, u64) {
        let Ok(mut counts) = self.counts.lock() else { return (true, 0) };
        if counts.len() > MAX_ENTRIES {
            let now = crate::domain::time::now_ms();
            counts.retain(|(w, _), (n, _)| *n == w.number(now));
        }
        let entry = counts.entry((window, key)).or_insert((number, 0));
        if entry.0 != number {
            *entry = (number, 0);
        }
        if entry.1.saturating_add(amount) > limit {
            return (false, entry.1);
        }
        entry.1 += amount;
        (true, entry.1)
    }

    fn adjust(&self, window: Window, key: Scope, number: i64, delta: i64) {
        let Ok(mut counts) = self.counts.lock() else { return };
        if let Some(entry) = counts.get_mut(&(window, key))
            && entry.0 == number
        {
            entry.1 = entry.1.saturating_add_signed(delta);
        }
    }
}

/// Counts `amount` in every check's window (the one containing `now`), all or none: where each
/// stands after, or the check that refused and where it stands (what the others had counted is
/// given back).
pub async fn take_all(
    state: &AppState,
    local: &LocalCounts,
    checks: &[Check],
    amount: u64,
    now: i64,
) -> Result<Vec<Standing>, (Check, Standing)> {
    let mut standings = Vec::with_capacity(checks.len());
    for (i, &check) in checks.iter().enumerate() {
        match take(state, local, check, amount, now).await {
            Ok(standing) => standings.push(standing),
            Err(standing) => {
                let delta = -i64::try_from(amount).unwrap_or(i64::MAX);
                for taken in &checks[..i] {
                    adjust(state, local, taken.window, taken.scope, now, delta).await;
                }
                return Err((check, standing));
            }
        }
    }
    Ok(standings)
}

/// Counts `amount` in `check`'s window (the one containing `now`) when the count stays within its
/// limit: `Ok` with where it stands after, or `Err` with where it stands (nothing counted).
async fn take(
    state: &AppState,
    local: &LocalCounts,
    check: Check,
    amount: u64,
    now: i64,
) -> Result<Standing, Standing> {
    let Check { window, scope: key, limit } = check;
    let number = window.number(now);
    let resets_at = (number + 1) * window.len_ms();
    let shared = match state.counters().redis_up() {
        Some(_) => {
            let name = format!("bc:{}:{}:{number}", window.tag(), key.name());
            let ttl = Duration::from_millis(u64::try_from(window.len_ms()).unwrap_or(60_000) + 1_000);
            state.counters().add_within(&name, amount, limit, ttl).await
        }
        None => None,
    };
    let (taken, used) = shared.unwrap_or_else(|| local.take(window, key, number, amount, limit));
    let standing = Standing { limit, used, resets_at };
    if taken { Ok(standing) } else { Err(standing) }
}

/// Moves `key`'s count in the window that contained `at` (when it was counted) by `delta`, if
/// that window is still counted (a true-up or a give-back; a window that has passed is left alone).
pub async fn adjust(state: &AppState, local: &LocalCounts, window: Window, key: Scope, at: i64, delta: i64) {
    if delta == 0 {
        return;
    }
    let number = window.number(at);
    if state.counters().redis_up().is_some() {
        let name = format!("bc:{}:{}:{number}", window.tag(), key.name());
        if state.counters().adjust_existing(&name, delta).await.is_some() {
            return;
        }
    }
    local.adjust(window, key, number, delta);
}

/// Tokens reserved for a request in its tokens-per-minute windows (its key's, its user's, its
/// model's), trued up to what the request used when it is settled.
pub struct TokenReservation {
    pub local: Arc<LocalCounts>,
    pub scopes: Vec<Scope>,
    /// When the tokens were reserved (unix ms): the window they count in.
    pub at: i64,
    pub reserved: u64,
}

impl TokenReservation {
    /// Replaces the reservation by what the request used (its prompt and output tokens; 0 gives
    /// it all back).
    pub async fn true_up(self, state: &AppState, used: u64) {
        let delta = i64::try_from(used).unwrap_or(i64::MAX).saturating_sub(i64::try_from(self.reserved).unwrap_or(0));
        for scope in self.scopes {
            adjust(state, &self.local, Window::TokensPerMinute, scope, self.at, delta).await;
        }
    }
}

/// The `x-ratelimit-*` headers of an answer: the key's request window (the tighter of its
/// per-minute and per-day ones) and its token window, when it has those limits.
#[derive(Clone, Copy, Debug, Default)]
pub struct Headers {
    pub requests: Option<Standing>,
    pub tokens: Option<Standing>,
}

impl Headers {
    /// Writes the headers OpenAI sends: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
    pub fn write(&self, headers: &mut HeaderMap, now: i64) {
        const NAMES: [(&str, &str, &str); 2] = [
            ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
            ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
        ];
        for ((limit, remaining, reset), standing) in NAMES.into_iter().zip([self.requests, self.tokens]) {
            let Some(s) = standing else { continue };
            for (name, value) in [
                (limit, s.limit.to_string()),
                (remaining, s.remaining().to_string()),
                (reset, reset_text(s.resets_at - now)),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(HeaderName::from_static(name), value);
                }
            }
        }
    }

    /// The window with less left of the two (the headers show the tightest).
    pub fn tighter(a: Option<Standing>, b: Option<Standing>) -> Option<Standing> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.remaining() < a.remaining() { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// The tightest of `standings`.
    pub fn tightest(standings: impl IntoIterator<Item = Standing>) -> Option<Standing> {
        standings.into_iter().fold(None, |tight, s| Self::tighter(tight, Some(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_counts_refuse_past_the_limit_and_count_nothing_then() {
        let local = LocalCounts::default();
        let key = Scope::Key(1);
        assert_eq!(local.take(Window::TokensPerMinute, key, 7, 60, 100), (true, 60));
        assert_eq!(local.take(Window::TokensPerMinute, key, 7, 50, 100), (false, 60));
        assert_eq!(local.take(Window::TokensPerMinute, key, 7, 40, 100), (true, 100));
        local.adjust(Window::TokensPerMinute, key, 7, -70);
        assert_eq!(local.take(Window::TokensPerMinute, key, 7, 0, 100), (true, 30));
        // The next window starts from zero; an adjustment of a past window changes nothing.
        assert_eq!(local.take(Window::TokensPerMinute, key, 8, 10, 100), (true, 10));
        local.adjust(Window::TokensPerMinute, key, 7, 50);
        assert_eq!(local.take(Window::TokensPerMinute, key, 8, 0, 100), (true, 10));
        // Another scope with the same number counts on its own.
        assert_eq!(local.take(Window::TokensPerMinute, Scope::User(1), 8, 5, 100), (true, 5));
        assert_ne!(Scope::model(1, "a"), Scope::model(1, "b"));
        assert_eq!(Scope::model(1, "a"), Scope::model(1, "a"));
        assert_eq!(Scope::Key(7).name(), "7", "a key's Redis counters keep their names");
    }

    #[test]
    fn headers_are_written_as_openai_does() {
        let now = 1_000_000;
        let headers = Headers {
            requests: Some(Standing { limit: 60, used: 1, resets_at: now + 59_500 }),
            tokens: Some(Standing { limit: 1000, used: 1200, resets_at: now + 6_000 }),
        };
        let mut map = HeaderMap::new();
        headers.write(&mut map, now);
        assert_eq!(map["x-ratelimit-limit-requests"], "60");
        assert_eq!(map["x-ratelimit-remaining-requests"], "59");
        assert_eq!(map["x-ratelimit-reset-requests"], "1m0s");
        assert_eq!(map["x-ratelimit-remaining-tokens"], "0", "never negative");
        assert_eq!(map["x-ratelimit-reset-tokens"], "6s");
    }
}

//! Login throttling that slows guessing without letting an attacker lock a victim out: failed
//! logins are counted per (client address, account) and per client address, in a sliding
//! window. Too many from one address for one account, or from one address overall, make that
//! address wait; the account itself stays open from everywhere else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per (address, account) in the window.
const PER_ACCOUNT: usize = 5;
/// Failures allowed per address, over all accounts, in the window.
const PER_ADDRESS: usize = 30;
const WINDOW: Duration = Duration::from_secs(15 * 60);

/// (client address, lowercased account — empty for the address's total) → failure times.
type Failures = HashMap<(Option<IpAddr>, String), Vec<Instant>>;

#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<Failures>,
}

impl LoginThrottle {
    /// `Err(wait)` when this address must wait before trying this account again.
    pub fn check(&self, ip: Option<IpAddr>, account: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.lock();
        let mut wait = Duration::ZERO;
        for (key, limit) in [((ip, account.to_lowercase()), PER_ACCOUNT), ((ip, String::new()), PER_ADDRESS)] {
            if let Some(times) = failures.get_mut(&key) {
                times.retain(|t| now.duration_since(*t) < WINDOW);
                if times.len() >= limit
                    && let Some(oldest) = times.first()
                {
                    wait = wait.max(WINDOW.saturating_sub(now.duration_since(*oldest)));
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    pub fn failed(&self, ip: Option<IpAddr>, account: &str) {
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() > 100_000 {
            // Bound memory under a flood: forget windows that have passed.
            failures.retain(|_, times| times.last().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        failures.entry((ip, account.to_lowercase())).or_default().push(now);
        failures.entry((ip, String::new())).or_default().push(now);
    }

    /// A successful login clears that address's record for the account.
    pub fn succeeded(&self, ip: Option<IpAddr>, account: &str) {
        self.lock().remove(&(ip, account.to_lowercase()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_slowed_for_one_account_others_are_not() {
        let throttle = LoginThrottle::default();
        let attacker: Option<IpAddr> = Some("203.0.113.9".parse().unwrap());
        let victim: Option<IpAddr> = Some("198.51.100.7".parse().unwrap());
        for _ in 0..PER_ACCOUNT {
            assert!(throttle.check(attacker, "ada@example.com").is_ok());
            throttle.failed(attacker, "ADA@example.com");
        }
        assert!(throttle.check(attacker, "ada@example.com").is_err());
        assert!(throttle.check(victim, "ada@example.com").is_ok(), "the owner, elsewhere, is not locked out");
        assert!(throttle.check(attacker, "bob@example.com").is_ok());
        for i in 0..PER_ADDRESS {
            throttle.failed(attacker, &format!("user{i}@example.com"));
        }
        assert!(throttle.check(attacker, "carol@example.com").is_err(), "a sprayer is slowed across accounts");
    }
}

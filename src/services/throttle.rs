//! Throttling for the anonymous forms that cost a password hash or send mail (login, signup,
//! forgot and reset password): it slows guessing without letting an attacker lock a victim out
//! from everywhere, and without telling anyone which accounts exist.
//!
//! Attempts are counted in a sliding window under three keys: (client, account), the client
//! over all accounts, and the account over all clients. The account is the submitted email,
//! normalised (trimmed, lower-cased) whether or not it has an account, so a known and an unknown
//! address are throttled — and answered — identically. A client is its address, and for IPv6
//! its /64 (one subscriber's whole prefix), so rotating through a prefix does not help.
//!
//! [`LoginThrottle::attempt`] takes the slot before the password is checked: concurrent attempts
//! cannot all pass the check and be counted only afterwards. A successful login gives its slot
//! back and clears the (client, account) record.
//!
//! Memory is bounded: at most [`MAX_KEYS`] keys, each holding at most its limit of timestamps.
//! At the cap, finished windows are forgotten first, then the keys idle longest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts allowed per (client, account) in the window.
pub const PER_CLIENT_ACCOUNT: usize = 5;
/// Attempts allowed per client, over all accounts, in the window.
pub const PER_CLIENT: usize = 30;
/// Attempts allowed per account, from all clients, in the window: bounds guessing from many
/// addresses (a botnet) while leaving the owner room to log in.
pub const PER_ACCOUNT: usize = 50;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The most keys kept; about 100 bytes each plus their timestamps (a few MB at the cap).
pub const MAX_KEYS: usize = 100_000;

/// What attempts are counted under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    ClientAccount(Option<IpAddr>, String),
    Client(Option<IpAddr>),
    Account(String),
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    attempts: Mutex<HashMap<Key, Vec<Instant>>>,
}

/// The client part of a key: IPv4 as is, IPv6 as its /64.
pub fn client_block(ip: Option<IpAddr>) -> Option<IpAddr> {
    ip.map(|ip| match crate::domain::ip_allowlist::canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    })
}

/// The account part of a key: the submitted email as `Email::parse` would store it.
pub fn account_key(scope: &str, email: &str) -> String {
    format!("{scope}:{}", email.trim().to_lowercase())
}

impl LoginThrottle {
    /// Counts an attempt by `ip` on `account` (a scope and an email, or only a scope for forms
    /// without one), or `Err(wait)` when one of its limits is reached. The attempt is counted
    /// before any verification, so N concurrent attempts take N slots.
    pub fn attempt(&self, ip: Option<IpAddr>, scope: &str, email: Option<&str>) -> Result<(), Duration> {
        let now = Instant::now();
        let client = client_block(ip);
        let mut keys = vec![(Key::Client(client), PER_CLIENT)];
        if let Some(email) = email {
            let account = account_key(scope, email);
            keys.push((Key::ClientAccount(client, account.clone()), PER_CLIENT_ACCOUNT));
            keys.push((Key::Account(account), PER_ACCOUNT));
        } else {
            keys.push((Key::ClientAccount(client, account_key(scope, "")), PER_CLIENT));
        }
        let mut attempts = self.lock();
        let mut wait = Duration::ZERO;
        for (key, limit) in &keys {
            if let Some(times) = attempts.get_mut(key) {
                times.retain(|t| now.duration_since(*t) < WINDOW);
                if times.len() >= *limit
                    && let Some(oldest) = times.first()
                {
                    wait = wait.max(WINDOW.saturating_sub(now.duration_since(*oldest)));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait.max(Duration::from_secs(1)));
        }
        if attempts.len() + keys.len() > MAX_KEYS {
            evict(&mut attempts, now);
        }
        for (key, _) in keys {
            attempts.entry(key).or_default().push(now);
        }
        Ok(())
    }

    /// A successful login: the attempt's slots are given back and the client's record for the
    /// account is cleared.
    pub fn succeeded(&self, ip: Option<IpAddr>, scope: &str, email: &str) {
        let client = client_block(ip);
        let account = account_key(scope, email);
        let mut attempts = self.lock();
        attempts.remove(&Key::ClientAccount(client, account.clone()));
        for key in [Key::Client(client), Key::Account(account)] {
            if let Some(times) = attempts.get_mut(&key) {
                times.pop();
            }
        }
    }

    /// An attempt that was never judged (the server was too busy to check the password): its
    /// slots are given back, so a storm of others' requests does not use up a user's tries.
    pub fn give_back(&self, ip: Option<IpAddr>, scope: &str, email: &str) {
        let client = client_block(ip);
        let account = account_key(scope, email);
        let mut attempts = self.lock();
        for key in [Key::ClientAccount(client, account.clone()), Key::Client(client), Key::Account(account)] {
            if let Some(times) = attempts.get_mut(&key) {
                times.pop();
            }
        }
    }

    /// The account proved its owner (a reset link was used): it is open again from everywhere.
    pub fn clear_account(&self, scope: &str, email: &str) {
        let account = account_key(scope, email);
        self.lock().retain(|key, _| match key {
            Key::Account(a) | Key::ClientAccount(_, a) => *a != account,
            Key::Client(_) => true,
        });
    }

    /// How many keys are held (for tests and the bound).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Instant>>> {
        self.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Makes room: forgets finished windows, then, if still over 90 % of the cap, the keys idle
/// longest (a tenth of the cap at once, so a flood pays the sort rarely).
fn evict(attempts: &mut HashMap<Key, Vec<Instant>>, now: Instant) {
    attempts.retain(|_, times| times.last().is_some_and(|t| now.duration_since(*t) < WINDOW));
    if attempts.len() <= MAX_KEYS / 10 * 9 {
        return;
    }
    let mut last_seen: Vec<Instant> = attempts.values().filter_map(|times| times.last().copied()).collect();
    last_seen.sort_unstable();
    let Some(cutoff) = last_seen.get(attempts.len() - MAX_KEYS / 10 * 8).copied() else { return };
    attempts.retain(|_, times| times.last().is_some_and(|t| *t >= cutoff));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn one_client_is_slowed_for_one_account_others_are_not() {
        let throttle = LoginThrottle::default();
        let attacker = ip("203.0.113.9");
        let victim = ip("198.51.100.7");
        for _ in 0..PER_CLIENT_ACCOUNT {
            assert!(throttle.attempt(attacker, "login", Some(" ADA@example.com")).is_ok());
        }
        assert!(throttle.attempt(attacker, "login", Some("ada@example.com")).is_err());
        assert!(throttle.attempt(victim, "login", Some("ada@example.com")).is_ok(), "the owner is not locked out");
        assert!(throttle.attempt(attacker, "login", Some("bob@example.com")).is_ok());
        assert!(throttle.attempt(attacker, "signup", Some("ada@example.com")).is_ok(), "scopes are apart");
        for i in 0..PER_CLIENT {
            let _ = throttle.attempt(attacker, "login", Some(&format!("user{i}@example.com")));
        }
        assert!(throttle.attempt(attacker, "login", Some("carol@example.com")).is_err(), "a sprayer is slowed");
    }

    #[test]
    fn many_clients_on_one_account_are_slowed_and_a_success_gives_its_slot_back() {
        let throttle = LoginThrottle::default();
        for i in 0..PER_ACCOUNT {
            assert!(throttle.attempt(ip(&format!("10.0.{}.{}", i / 200, i % 200)), "login", Some("ada@x.io")).is_ok());
        }
        assert!(throttle.attempt(ip("192.0.2.1"), "login", Some("ada@x.io")).is_err(), "a botnet is slowed");
        throttle.clear_account("login", "ADA@x.io");
        assert!(throttle.attempt(ip("192.0.2.1"), "login", Some("ada@x.io")).is_ok(), "a reset opens it again");

        let throttle = LoginThrottle::default();
        for _ in 0..PER_CLIENT * 2 {
            assert!(throttle.attempt(ip("192.0.2.1"), "login", Some("ada@x.io")).is_ok());
            throttle.succeeded(ip("192.0.2.1"), "login", "ada@x.io");
        }
        for _ in 0..PER_CLIENT * 2 {
            assert!(throttle.attempt(ip("192.0.2.1"), "login", Some("bob@x.io")).is_ok());
            throttle.give_back(ip("192.0.2.1"), "login", "bob@x.io");
        }
    }

    #[test]
    fn ipv6_counts_per_64() {
        let throttle = LoginThrottle::default();
        for i in 0..PER_CLIENT_ACCOUNT {
            assert!(throttle.attempt(ip(&format!("2001:db8:1:2::{i:x}")), "login", Some("a@x.io")).is_ok());
        }
        assert!(throttle.attempt(ip("2001:db8:1:2:ffff::1"), "login", Some("a@x.io")).is_err());
        assert!(throttle.attempt(ip("2001:db8:1:3::1"), "login", Some("a@x.io")).is_ok(), "another /64");
        assert_eq!(client_block(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn the_map_stays_under_its_cap() {
        let throttle = LoginThrottle::default();
        for i in 0..(MAX_KEYS as u32) {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = throttle.attempt(Some(addr), "login", Some(&format!("u{i}@x.io")));
            assert!(throttle.len() <= MAX_KEYS);
        }
        assert!(throttle.len() > MAX_KEYS / 2, "recent keys are kept");
    }
}

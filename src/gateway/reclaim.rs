//! A hold refused because the user's balance, or a budget of theirs or their key's, sits in other
//! replicas' leases: this replica asks them to give back what they have not promised (a
//! `LeaseWanted` change notice, which covers the user's balance and budgets) and tries again
//! for up to about 0.8 s before answering "insufficient quota". Without it, a small balance
//! leased whole by one replica would be unspendable on the others until that lease went idle.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Gateway;
use crate::billing::{BillingError, Hold, HoldRequest};
use crate::services::changes::{self, Change};

/// The waits between tries after the first refusal.
const WAITS_MS: [u64; 5] = [25, 50, 100, 200, 400];
/// One notice per user per this long from one replica: a tenant whose money is elsewhere cannot
/// turn each of its requests into a notice to every replica.
const ASK_EVERY: Duration = Duration::from_millis(200);
/// Users remembered; the map is cleared when full (a notice more is harmless).
const MAX_USERS: usize = 4096;

/// When this replica last asked for each user's balance.
#[derive(Debug, Default)]
pub struct LeaseWants {
    asked: Mutex<HashMap<i64, Instant>>,
}

impl LeaseWants {
    /// Whether to send a notice for `user` now (and note that it was sent).
    fn ask(&self, user: i64) -> bool {
        let Ok(mut asked) = self.asked.lock() else { return false };
        let now = Instant::now();
        if asked.get(&user).is_some_and(|last| now.duration_since(*last) < ASK_EVERY) {
            return false;
        }
        if asked.len() >= MAX_USERS {
            asked.clear();
        }
        asked.insert(user, now);
        true
    }
}

/// Holds the request's money, asking the other replicas for the user's balance when they hold it.
pub async fn hold(gateway: &Gateway, request: HoldRequest) -> Result<Hold, BillingError> {
    let mut waits = WAITS_MS.into_iter();
    loop {
        match gateway.billing().hold(request).await {
            Err(e @ (BillingError::HeldElsewhere | BillingError::BudgetHeldElsewhere { .. })) => {
                let Some(wait) = waits.next() else {
                    return Err(match e {
                        BillingError::BudgetHeldElsewhere { key: true } => BillingError::KeyLimitReached,
                        BillingError::BudgetHeldElsewhere { key: false } => BillingError::UserBudgetSpent,
                        _ => BillingError::InsufficientBalance,
                    });
                };
                if gateway.gateway().lease_wants.ask(request.user_id) {
                    changes::publish(gateway, Change::LeaseWanted(request.user_id)).await;
                }
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_notice_per_user_per_interval() {
        let wants = LeaseWants::default();
        assert!(wants.ask(1));
        assert!(!wants.ask(1), "asked again at once");
        assert!(wants.ask(2), "another user");
        wants.asked.lock().unwrap().insert(1, Instant::now() - ASK_EVERY);
        assert!(wants.ask(1), "after the interval");
    }
}

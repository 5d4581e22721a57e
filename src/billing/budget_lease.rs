//! The in-memory side of budget leases (the database side is [`crate::db::budget_leases`]).
//!
//! A key with a spend limit or a budget, and a user with a budget, used to cost every request a
//! database reservation before it went upstream. Instead this process reserves a slice of what the
//! budget still allows (a lease, counted in the budget by the same conditional update) and admits
//! requests against it in memory, as balance leases do for money ([`super::lease`]). So:
//! - a budget is never exceeded: every reservation, a lease's or a single hold's, is the
//!   conditional update, and a lease's unused part still counts until it is given back;
//! - near a budget's edge no lease is taken: when a slice of an eighth of the room would not cover
//!   [`MIN_HOLDS`] holds, each hold reserves exactly its amount, so concurrent requests there
//!   admit exactly what the budget covers; what other replicas' leases hold is asked back
//!   (`HeldElsewhere`, as for balances);
//! - a lease is for one window of one budget on given terms (the limits it was taken under): a
//!   new window or changed limits take a new one, so an operator's change holds on the next
//!   request;
//! - a process that dies leaves its leases counted until they expire by the database's clock;
//!   renewals keep them alive, and memory never promises more than the rows hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::Acquire;

use super::lease::{ChargePlan, LEASE_TTL};
use crate::db::Db;
use crate::db::budget_leases::{self, Account, Taken};

/// A lease is an eighth of the budget's room, and is taken only when that covers at least this
/// many holds like the one that asked for it. Not fewer: with many requests in flight, a lease of
/// a few dozen holds would be spent on holds still in flight and taken again every few requests.
const MIN_HOLDS: i64 = 4;

/// What a hold asks of one budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    pub account: Account,
    /// The user the budget belongs to (a key's owner), to give back on their behalf.
    pub user_id: i64,
    /// The window's start (unix ms; 0 for a key's lifetime spend limit alone).
    pub window: i64,
    /// A user's budget (a key's limits are read from its row).
    pub limit: i64,
    /// The limits the lease is taken under: a lease on other terms is not used.
    pub terms: i64,
    pub amount: i64,
}

/// Why a budget refused a hold.
#[derive(Debug)]
pub enum Refusal {
    Short,
    HeldElsewhere,
    Db(sqlx::Error),
}

#[derive(Debug)]
pub struct BudgetLeases {
    holder: String,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    leases: HashMap<(Account, i64), Lease>,
    valid_until: Instant,
}

#[derive(Debug)]
struct Lease {
    user_id: i64,
    terms: i64,
    /// Reserved in the database for this process and not promised to any request.
    available: i64,
    /// Promised to requests in flight.
    held: i64,
    last_used: Instant,
    /// One take per lease at a time; the others wait and use what it brought.
    taking: Arc<tokio::sync::Mutex<()>>,
    /// Counts the takes, so a renewal whose rows may predate one leaves the lease alone.
    takes: u64,
}

impl BudgetLeases {
    pub fn new(holder: String) -> Self {
        let valid_until = Instant::now() + LEASE_TTL / 2;
        Self { holder, inner: Mutex::new(Inner { leases: HashMap::new(), valid_until }) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A few counters updated in place; a panic elsewhere cannot leave them torn.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Test seam: plays a process whose last renewal was long ago.
    pub fn lapse(&self) {
        self.lock().valid_until = Instant::now();
    }

    /// What this process may still promise from a lease, in memory.
    pub fn available(&self, account: Account, window: i64) -> i64 {
        self.lock().leases.get(&(account, window)).map_or(0, |lease| lease.available)
    }

    /// Promises `ask.amount` of the budget to a request: from the lease in memory, or from a new
    /// lease (or a reservation of exactly what is missing, near the edge).
    pub async fn admit(&self, db: &Db, ask: Ask) -> Result<(), Refusal> {
        let key = (ask.account, ask.window);
        let (taking, stale) = {
            let mut inner = self.lock();
            if inner.try_admit(&ask) {
                return Ok(());
            }
            // Entries live only while they hold or promise something (see `drain`): as many as
            // the budgets in use, like the balance leases'.
            let lease = inner.leases.entry(key).or_insert_with(|| Lease::new(&ask));
            // Taken on other terms (the limits changed): what is left of it goes back.
            let stale = if lease.terms == ask.terms { 0 } else { std::mem::take(&mut lease.available) };
            lease.terms = ask.terms;
            (lease.taking.clone(), stale)
        };
        if stale > 0 {
            self.give_back(db, ask.account, ask.window, stale).await;
        }
        let _turn = taking.lock().await;
        if self.lock().try_admit(&ask) {
            return Ok(());
        }
        if Instant::now() >= self.lock().valid_until {
            self.renew(db).await.map_err(Refusal::Db)?;
        }
        // Holds of the same budget admitted from memory meanwhile may take what a take counted
        // on: then take again (a few times at most; each take reserves at least what is missing).
        for _ in 0..3 {
            let need = ask.amount.saturating_sub(self.available(ask.account, ask.window)).max(1);
            self.take_into_memory(db, &ask, need).await?;
            if self.lock().try_admit(&ask) {
                return Ok(());
            }
        }
        Err(Refusal::Short)
    }

    /// One lease of at least `need`, committed and added to memory: a slice of the room, or
    /// exactly `need` near the budget's edge.
    async fn take_into_memory(&self, db: &Db, ask: &Ask, need: i64) -> Result<(), Refusal> {
        let amount = ask.amount;
        let size = |room: i64| {
            let slice = room / 8;
            if slice >= amount.saturating_mul(MIN_HOLDS) { slice } else { 0 }
        };
        let taken = async {
            let mut conn = db.writer().acquire().await?;
            let mut tx = conn.begin().await?;
            let ttl = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
            let taken =
                budget_leases::take(&mut tx, ask.account, ask.window, ask.limit, &self.holder, need, size, ttl).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(taken)
        }
        .await
        .map_err(Refusal::Db)?;
        match taken {
            Taken::Reserved(taken) => {
                let mut inner = self.lock();
                let lease = inner.leases.entry((ask.account, ask.window)).or_insert_with(|| Lease::new(ask));
                lease.available += taken;
                lease.takes += 1;
                Ok(())
            }
            Taken::Short => Err(Refusal::Short),
            Taken::HeldElsewhere => Err(Refusal::HeldElsewhere),
        }
    }

    /// Takes back a promise that will not be charged (the request was refused after all).
    pub fn cancel(&self, account: Account, window: i64, amount: i64) {
        if let Some(lease) = self.lock().leases.get_mut(&(account, window)) {
            lease.held -= amount;
            lease.available += amount;
        }
    }

    /// Ends a promise of `held` at `cost`: what is not charged becomes available again; a cost
    /// beyond the promise takes what the lease has left, then goes beyond it.
    pub fn plan_charge(&self, account: Account, window: i64, held: i64, cost: i64) -> ChargePlan {
        let mut inner = self.lock();
        let Some(lease) = inner.leases.get_mut(&(account, window)) else {
            return ChargePlan { from_lease: 0, beyond: cost };
        };
        lease.held -= held;
        ChargePlan::ending(&mut lease.available, held, cost)
    }

    /// Puts back an amount planned for a charge the database did not take: the row still has it.
    pub fn restore(&self, account: Account, window: i64, amount: i64) {
        if amount > 0
            && let Some(lease) = self.lock().leases.get_mut(&(account, window))
        {
            lease.available += amount;
        }
    }

    /// Gives back the unpromised part of every lease unused for `idle`.
    pub async fn give_back_idle(&self, db: &Db, idle: Duration) {
        let now = Instant::now();
        let drained = self.drain(|_, lease| lease.held == 0 && now.duration_since(lease.last_used) >= idle);
        self.give_back_all_of(db, drained).await;
    }

    /// Gives back the unpromised part of the leases on the user's budget and their keys' (another
    /// replica asks for them, or an operator changed something).
    pub async fn give_back_user(&self, db: &Db, user_id: i64) {
        let drained = self.drain(|_, lease| lease.user_id == user_id);
        self.give_back_all_of(db, drained).await;
    }

    /// Gives back the unpromised part of every lease (at shutdown).
    pub async fn give_back_everything(&self, db: &Db) {
        let drained = self.drain(|_, _| true);
        self.give_back_all_of(db, drained).await;
    }

    async fn give_back_all_of(&self, db: &Db, drained: Vec<((Account, i64), i64)>) {
        for ((account, window), amount) in drained {
            self.give_back(db, account, window, amount).await;
        }
    }

    /// Gives `amount`, already drained from memory, back; when the database refuses, it returns
    /// to memory (the row still reserves it, and renewals keep it alive).
    async fn give_back(&self, db: &Db, account: Account, window: i64, amount: i64) {
        let given = async {
            let mut conn = db.writer().acquire().await?;
            let mut tx = conn.begin().await?;
            budget_leases::give_back(&mut tx, account, window, &self.holder, amount).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = given {
            tracing::warn!(?account, error = %e, "could not give a budget lease back; it stays in memory");
            self.restore(account, window, amount);
        }
    }

    fn drain(&self, pick: impl Fn(&(Account, i64), &Lease) -> bool) -> Vec<((Account, i64), i64)> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        inner.leases.retain(|key, lease| {
            if pick(key, lease) && lease.available > 0 {
                out.push((*key, std::mem::take(&mut lease.available)));
            }
            // Forget empty entries nobody is taking a lease for.
            lease.available > 0 || lease.held != 0 || Arc::strong_count(&lease.taking) > 1
        });
        out
    }

    /// Extends this process's leases; memory is reconciled with what the rows still hold (a
    /// lease swept elsewhere stops being spendable here at once).
    pub async fn renew(&self, db: &Db) -> Result<(), sqlx::Error> {
        let started = Instant::now();
        let takes: HashMap<(Account, i64), u64> =
            self.lock().leases.iter().map(|(&key, lease)| (key, lease.takes)).collect();
        let rows = {
            let mut conn = db.writer().acquire().await?;
            let ttl = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
            budget_leases::renew(&mut conn, &self.holder, ttl).await?
        };
        let in_db: HashMap<(Account, i64), i64> = rows.into_iter().map(|(a, w, amount)| ((a, w), amount)).collect();
        let mut inner = self.lock();
        for (key, lease) in &mut inner.leases {
            if takes.get(key) != Some(&lease.takes) {
                continue;
            }
            let at_most = (in_db.get(key).copied().unwrap_or(0) - lease.held).max(0);
            if lease.available > at_most {
                tracing::warn!(account = ?key.0, in_memory = lease.available, in_database = at_most,
                    "budget lease ended or shrunk elsewhere; no longer promising it");
                lease.available = at_most;
            }
        }
        inner.valid_until = inner.valid_until.max(started + LEASE_TTL / 2);
        Ok(())
    }
}

impl Lease {
    fn new(ask: &Ask) -> Self {
        Self {
            user_id: ask.user_id,
            terms: ask.terms,
            available: 0,
            held: 0,
            last_used: Instant::now(),
            taking: Arc::default(),
            takes: 0,
        }
    }
}

impl Inner {
    fn try_admit(&mut self, ask: &Ask) -> bool {
        let now = Instant::now();
        if now >= self.valid_until {
            return false;
        }
        match self.leases.get_mut(&(ask.account, ask.window)) {
            Some(lease) if lease.terms == ask.terms && lease.available >= ask.amount => {
                lease.available -= ask.amount;
                lease.held += ask.amount;
                lease.last_used = now;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(amount: i64) -> Ask {
        Ask { account: Account::User(1), user_id: 1, window: 10, limit: 1000, terms: 1000, amount }
    }

    fn with_lease(available: i64) -> BudgetLeases {
        let leases = BudgetLeases::new("test".into());
        let mut lease = Lease::new(&ask(0));
        lease.available = available;
        leases.lock().leases.insert((Account::User(1), 10), lease);
        leases
    }

    #[test]
    fn a_lease_admits_holds_of_its_terms_and_window_only() {
        let leases = with_lease(100);
        assert!(leases.lock().try_admit(&ask(60)));
        assert!(!leases.lock().try_admit(&ask(60)), "only 40 left");
        assert!(!leases.lock().try_admit(&Ask { terms: 500, ..ask(10) }), "the limits changed");
        assert!(!leases.lock().try_admit(&Ask { window: 20, ..ask(10) }), "a new window");
        assert_eq!(leases.plan_charge(Account::User(1), 10, 60, 25), ChargePlan { from_lease: 25, beyond: 0 });
        assert_eq!(leases.available(Account::User(1), 10), 75);
    }

    #[test]
    fn a_cost_beyond_the_hold_takes_the_lease_then_goes_beyond() {
        let leases = with_lease(100);
        assert!(leases.lock().try_admit(&ask(60)));
        assert_eq!(leases.plan_charge(Account::User(1), 10, 60, 130), ChargePlan { from_lease: 100, beyond: 30 });
        assert_eq!(leases.available(Account::User(1), 10), 0);
    }

    #[test]
    fn draining_leaves_promises_and_forgets_empty_leases() {
        let leases = with_lease(100);
        assert!(leases.lock().try_admit(&ask(30)));
        let now = Instant::now();
        let idle = |_: &(Account, i64), l: &Lease| l.held == 0 && now.duration_since(l.last_used) >= Duration::ZERO;
        assert!(leases.drain(idle).is_empty(), "a request is in flight");
        assert_eq!(leases.drain(|_, _| true), vec![((Account::User(1), 10), 70)]);
        assert_eq!(leases.plan_charge(Account::User(1), 10, 30, 30), ChargePlan { from_lease: 30, beyond: 0 });
        assert!(leases.drain(|_, _| true).is_empty());
        assert!(leases.lock().leases.is_empty());
    }

    #[test]
    fn a_lapsed_process_admits_nothing() {
        let leases = with_lease(100);
        leases.lapse();
        assert!(!leases.lock().try_admit(&ask(1)));
    }
}

//! The in-memory side of balance leases (the database side is [`crate::db::leases`]).
//!
//! To admit a request, the gateway must know its hold is covered. Rather than committing every
//! hold before calling upstream, this process reserves a slice of the user's balance in the
//! database (a lease: one conditional `UPDATE … WHERE balance - leased >= $n`, the same guarantee
//! a hold had) and admits requests against it in memory. Money moves, with its ledger row, only
//! when a request's cost is charged, from the lease. So:
//! - a balance never goes below zero and the ledger always sums to it: leases move no money, and
//!   a charge shrinks the lease and the balance together in one transaction;
//! - no two processes can promise the same money: each spends only its own lease rows, and
//!   everyone else's debits see `users.leased`;
//! - a process that crashes or loses the database stops renewing its leases; it stops admitting
//!   after half the lease's lifetime, and any process ends leases past their expiry, returning
//!   the reservation. A restart of the same holder ends its old leases at once;
//! - expiry is decided by the database's clock (the SQL computes it), never by a process's, so
//!   replicas whose clocks disagree still agree on which leases are live;
//! - memory never promises more than the database holds for this process: every renewal reads
//!   the process's lease rows back and drops from memory what is no longer there (a lease ended
//!   by another process or the sweeper); an amount the database refused to take back (a failed
//!   give-back) or to charge stays in memory, still reserved, to be used or given back later.
//!
//! Requests in flight at a crash are not charged (their holds lived in memory); what they could
//! cost is bounded by the holds of the requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::Acquire;

use super::BillingError;
use crate::db::Db;
use crate::db::leases;
use crate::domain::time::now_ms;

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
/// A process clock further than this from the database's is worth a warning.
const CLOCK_WARN_MS: i64 = 5_000;
/// A lease unused for this long goes back to the user's balance.
pub const IDLE_RETURN: Duration = Duration::from_secs(10);
/// A new lease covers at least this many holds like the one that asked for it, or a quarter of
/// the unreserved balance if that is more (capped at the unreserved balance).
const HOLDS_PER_LEASE: i64 = 64;

#[derive(Debug)]
pub struct Leases {
    holder: String,
    inner: Mutex<Inner>,
    /// Test seam: how far this process's wall clock is off, as the lease code reads it.
    skew_ms: AtomicI64,
    /// This process's clock minus the database's, measured at the last renewal.
    clock_offset_ms: AtomicI64,
}

#[derive(Debug)]
struct Inner {
    users: HashMap<i64, UserLease>,
    /// Leases may be used until then: half their lifetime after the last renewal, so they are
    /// never used after another process could have ended them.
    valid_until: Instant,
}

#[derive(Debug)]
struct UserLease {
    /// Reserved in the database for this process and not promised to any request.
    available: i64,
    /// Promised to requests in flight.
    held: i64,
    last_used: Instant,
    /// One lease request per user at a time; the others wait and use what it brought.
    taking: Arc<tokio::sync::Mutex<()>>,
    /// Counts the leases taken, so a renewal can tell that its view of the database may predate
    /// one and must not be reconciled against.
    takes: u64,
}

impl UserLease {
    fn new(now: Instant) -> Self {
        Self { available: 0, held: 0, last_used: now, taking: Arc::default(), takes: 0 }
    }
}

/// How a request's cost is charged: from this process's lease, and beyond it from the user's
/// unreserved balance (as much as is there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChargePlan {
    pub from_lease: i64,
    pub beyond: i64,
}

impl ChargePlan {
    /// Ends a promise of `held` at `cost` against a lease with `available` unpromised (balance
    /// and budget leases alike): what is not charged becomes available again; a cost beyond the
    /// promise takes what the lease has left, then goes beyond it.
    pub(crate) fn ending(available: &mut i64, held: i64, cost: i64) -> Self {
        if cost <= held {
            *available += held - cost;
            return Self { from_lease: cost, beyond: 0 };
        }
        let more = (cost - held).min(*available);
        *available -= more;
        Self { from_lease: held + more, beyond: cost - held - more }
    }
}

impl Leases {
    /// `holder` names this process in `balance_leases`; it must be unique among the processes
    /// sharing the database (see [`holder_name`]).
    pub fn new(holder: String) -> Self {
        let valid_until = Instant::now() + LEASE_TTL / 2;
        Self {
            holder,
            inner: Mutex::new(Inner { users: HashMap::new(), valid_until }),
            skew_ms: AtomicI64::new(0),
            clock_offset_ms: AtomicI64::new(0),
        }
    }

    /// Whether this process's leases may still be spent: the last renewal succeeded less than half
    /// a lease's lifetime ago. While the database is unreachable, this is how long the process
    /// carries on serving from what it holds.
    pub fn carrying(&self) -> bool {
        Instant::now() < self.lock().valid_until
    }

    /// Test seam: plays a process whose last renewal was long ago (its leases may not be spent).
    pub fn lapse(&self) {
        self.lock().valid_until = Instant::now();
    }

    /// Test seam: plays a process whose wall clock is `ms` off (positive: ahead).
    pub fn skew_clock(&self, ms: i64) {
        self.skew_ms.store(ms, Ordering::Relaxed);
    }

    /// This process's wall clock (unix ms) as the lease code reads it: only to tell how far it is
    /// from the database's (expiry never reads it).
    fn wall_ms(&self) -> i64 {
        now_ms().saturating_add(self.skew_ms.load(Ordering::Relaxed))
    }

    /// How far this process's clock was from the database's at the last renewal (ms, positive:
    /// ahead).
    pub fn clock_offset_ms(&self) -> i64 {
        self.clock_offset_ms.load(Ordering::Relaxed)
    }

    /// What this process may still promise from the user's lease, in memory.
    pub fn available(&self, user_id: i64) -> i64 {
        self.lock().users.get(&user_id).map_or(0, |lease| lease.available)
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a few counters updated in place; a panic elsewhere cannot leave it torn.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Promises `amount` of the user's balance to a request: from the lease in memory, or from a
    /// new lease when it runs short. `InsufficientBalance` when the unreserved balance cannot
    /// cover it either.
    pub async fn admit(&self, db: &Db, user_id: i64, amount: i64) -> Result<(), BillingError> {
        let taking = {
            let mut inner = self.lock();
            if inner.try_admit(user_id, amount) {
                return Ok(());
            }
            inner.users.entry(user_id).or_insert_with(|| UserLease::new(Instant::now())).taking.clone()
        };
        let _turn = taking.lock().await;
        if self.lock().try_admit(user_id, amount) {
            return Ok(());
        }
        if Instant::now() >= self.lock().valid_until {
            self.renew(db).await?;
        }
        // Requests of the same user admitted from memory meanwhile may take what this take
        // counted on: then take again (a few times at most; each take reserves at least `need`).
        for _ in 0..3 {
            // Only what the lease in memory lacks: a remainder too small for this request is
            // used, not stranded (with 0.15 left in 0.10 requests, the second takes 0.05 more).
            let need = amount.saturating_sub(self.available(user_id)).max(1);
            let taken = self.take(db, user_id, amount, need).await?;
            let mut inner = self.lock();
            let lease = inner.users.entry(user_id).or_insert_with(|| UserLease::new(Instant::now()));
            lease.available += taken;
            lease.takes += 1;
            if inner.try_admit(user_id, amount) {
                return Ok(());
            }
        }
        Err(BillingError::InsufficientBalance)
    }

    /// One lease of at least `need` (sized for requests of `amount`), committed.
    async fn take(&self, db: &Db, user_id: i64, amount: i64, need: i64) -> Result<i64, BillingError> {
        let mut conn = db.writer().acquire().await?;
        let mut tx = conn.begin().await?;
        let size = |free: i64| amount.saturating_mul(HOLDS_PER_LEASE).max(free / 4);
        let taken = match leases::take(&mut tx, user_id, &self.holder, need, size, millis(LEASE_TTL)).await {
            Ok(leases::Taken::Reserved(taken)) => taken,
            Ok(leases::Taken::Short) => return Err(BillingError::InsufficientBalance),
            Ok(leases::Taken::HeldElsewhere) => return Err(BillingError::HeldElsewhere),
            Ok(leases::Taken::InDebt) => return Err(BillingError::InDebt),
            Err(sqlx::Error::RowNotFound) => return Err(BillingError::NoSuchUser),
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        Ok(taken)
    }

    /// Puts back an amount drained or planned for a charge that the database refused (a failed
    /// give-back or an abandoned charge): the database still reserves it for this process. If the
    /// refusal was only reported (the commit went through), the next renewal drops it again.
    pub fn restore(&self, user_id: i64, amount: i64) {
        if amount > 0 {
            self.lock().users.entry(user_id).or_insert_with(|| UserLease::new(Instant::now())).available += amount;
        }
    }

    /// Takes back a promise that will not be charged (the request was refused after all).
    pub fn cancel(&self, user_id: i64, amount: i64) {
        if let Some(lease) = self.lock().users.get_mut(&user_id) {
            lease.held -= amount;
            lease.available += amount;
        }
    }

    /// Ends a promise of `held` at `cost`: what is not charged becomes available again; a cost
    /// beyond the promise takes what the lease has left, then goes beyond it.
    pub fn plan_charge(&self, user_id: i64, held: i64, cost: i64) -> ChargePlan {
        let mut inner = self.lock();
        let Some(lease) = inner.users.get_mut(&user_id) else {
            return ChargePlan { from_lease: 0, beyond: cost };
        };
        lease.held -= held;
        ChargePlan::ending(&mut lease.available, held, cost)
    }

    /// The unpromised part of every lease unused for `idle`, to give back: `(user, amount)`.
    pub fn drain_idle(&self, idle: Duration) -> Vec<(i64, i64)> {
        let now = Instant::now();
        self.drain(|lease| lease.held == 0 && now.duration_since(lease.last_used) >= idle)
    }

    /// The unpromised part of the user's lease, to give back (before an operator's debit).
    pub fn drain_user(&self, user_id: i64) -> i64 {
        let mut inner = self.lock();
        inner.users.get_mut(&user_id).map(|lease| std::mem::take(&mut lease.available)).unwrap_or(0)
    }

    /// The unpromised part of every lease (at shutdown).
    pub fn drain_all(&self) -> Vec<(i64, i64)> {
        self.drain(|_| true)
    }

    fn drain(&self, pick: impl Fn(&UserLease) -> bool) -> Vec<(i64, i64)> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        inner.users.retain(|&user_id, lease| {
            if pick(lease) && lease.available > 0 {
                out.push((user_id, std::mem::take(&mut lease.available)));
            }
            // Forget empty entries nobody is taking a lease for.
            lease.available > 0 || lease.held != 0 || Arc::strong_count(&lease.taking) > 1
        });
        out
    }

    /// Extends this process's leases; on success they stay usable for half their lifetime. Memory
    /// is reconciled with what the database says this process still holds: a lease ended
    /// elsewhere (another process's sweeper) stops being spendable here at once.
    pub async fn renew(&self, db: &Db) -> Result<(), sqlx::Error> {
        let started = Instant::now();
        let takes: HashMap<i64, u64> = self.lock().users.iter().map(|(&user, lease)| (user, lease.takes)).collect();
        let renewal = {
            let mut conn = db.writer().acquire().await?;
            leases::renew(&mut conn, &self.holder, millis(LEASE_TTL)).await?
        };
        self.note_clock(renewal.now);
        let in_db: HashMap<i64, i64> = renewal.leases.into_iter().collect();
        let mut inner = self.lock();
        for (user_id, lease) in &mut inner.users {
            // A lease taken since the rows were read is not in them.
            if takes.get(user_id) != Some(&lease.takes) {
                continue;
            }
            // The row holds what memory may promise plus what is promised (and charges on their
            // way to the database), so memory never holds more than the row minus the promises.
            let reserved = in_db.get(user_id).copied().unwrap_or(0);
            let at_most = (reserved - lease.held).max(0);
            if lease.available > at_most {
                tracing::warn!(
                    user_id,
                    in_memory = lease.available,
                    in_database = reserved,
                    "balance lease ended or shrunk elsewhere; no longer promising it"
                );
                lease.available = at_most;
            }
        }
        inner.valid_until = inner.valid_until.max(started + LEASE_TTL / 2);
        Ok(())
    }

    /// Records how far this process's clock is from the database's, warning when it is far off:
    /// leases do not mind (the database's clock decides), but timestamps this process writes do.
    fn note_clock(&self, db_now: i64) {
        let offset = self.wall_ms().saturating_sub(db_now);
        self.clock_offset_ms.store(offset, Ordering::Relaxed);
        if offset.abs() > CLOCK_WARN_MS {
            tracing::warn!(offset_ms = offset, "this process's clock is off the database's; check its time sync");
        }
    }
}

impl Inner {
    fn try_admit(&mut self, user_id: i64, amount: i64) -> bool {
        let now = Instant::now();
        if now >= self.valid_until {
            return false;
        }
        match self.users.get_mut(&user_id) {
            Some(lease) if lease.available >= amount => {
                lease.available -= amount;
                lease.held += amount;
                lease.last_used = now;
                true
            }
            _ => false,
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// This process's name as a lease holder. The operator's `BURNCLOUD_INSTANCE_ID` when set: stable
/// across restarts, so a restart ends the leases its previous run left (and only those). Else the
/// host name, the port and an id made now: unique even among containers that share a host name
/// and port; a restart's old leases then end when they expire (at most [`LEASE_TTL`]).
pub fn holder_name(instance_id: Option<&str>, port: u16) -> String {
    if let Some(id) = instance_id {
        return id.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{port}:{}", crate::domain::token::random_alphanumeric(8).to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_its_instance_id_or_unique_per_start() {
        assert_eq!(holder_name(Some("pod-7"), 8080), "pod-7");
        let (first, second) = (holder_name(None, 8080), holder_name(None, 8080));
        assert_ne!(first, second, "two starts on one host and port are two holders");
        assert!(first.contains(":8080:") && first.len() > ":8080:".len() + 8, "{first}");
    }

    fn with_lease(available: i64) -> Leases {
        let leases = Leases::new("test".into());
        leases.lock().users.insert(1, UserLease { available, ..UserLease::new(Instant::now()) });
        leases
    }

    #[test]
    fn admission_takes_from_the_lease_and_a_charge_returns_the_rest() {
        let leases = with_lease(100);
        assert!(leases.lock().try_admit(1, 60));
        assert!(!leases.lock().try_admit(1, 60), "only 40 left");
        assert_eq!(leases.plan_charge(1, 60, 25), ChargePlan { from_lease: 25, beyond: 0 });
        assert_eq!(leases.lock().users[&1].available, 75);
        assert_eq!(leases.lock().users[&1].held, 0);
    }

    #[test]
    fn a_cost_beyond_the_hold_takes_the_lease_then_goes_beyond() {
        let leases = with_lease(100);
        assert!(leases.lock().try_admit(1, 60));
        assert_eq!(leases.plan_charge(1, 60, 130), ChargePlan { from_lease: 100, beyond: 30 });
        assert_eq!(leases.lock().users[&1].available, 0);
    }

    #[test]
    fn cancel_makes_the_promise_available_again() {
        let leases = with_lease(100);
        assert!(leases.lock().try_admit(1, 60));
        leases.cancel(1, 60);
        let inner = leases.lock();
        assert_eq!((inner.users[&1].available, inner.users[&1].held), (100, 0));
    }

    #[test]
    fn draining_gives_back_only_what_is_not_promised_and_forgets_empty_leases() {
        let leases = with_lease(100);
        assert!(leases.lock().try_admit(1, 30));
        assert_eq!(leases.drain_idle(Duration::ZERO), Vec::<(i64, i64)>::new(), "a request is in flight");
        assert_eq!(leases.drain_all(), vec![(1, 70)]);
        assert_eq!(leases.plan_charge(1, 30, 30), ChargePlan { from_lease: 30, beyond: 0 });
        assert_eq!(leases.drain_idle(Duration::ZERO), Vec::<(i64, i64)>::new());
        assert!(leases.lock().users.is_empty());
    }

    #[test]
    fn an_expired_lease_admits_nothing() {
        let leases = with_lease(100);
        leases.lock().valid_until = Instant::now();
        assert!(!leases.lock().try_admit(1, 1));
    }
}

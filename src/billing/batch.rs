//! The gateway's billing: holds promised from balance and budget leases in memory, and group
//! commit for everything that must reach the database.
//!
//! One writer task takes every operation queued while the previous transaction ran and applies
//! them together: one lease charge per user and per budget lease, one spend update per key for the
//! whole batch, and multi-row inserts for the ledger and the request log. A hold reaches the
//! database only to take a lease (see [`super::lease`] and [`super::budget_lease`]), in a
//! transaction of its own. If a batch fails as a whole, its operations are
//! retried one at a time, so one bad operation cannot fail the others; when the writer is gone
//! (shutdown), operations apply directly, one transaction each.
//!
//! Retrying is safe because every settlement carries a unique key, written with its request log
//! row (unique) and its ledger rows (unique idempotency keys) in the transaction that charges it:
//! a retry first looks its keys up and skips the settlements already committed, answering with
//! what they charged. So a COMMIT that went through but whose acknowledgement was lost (the
//! connection died) never charges twice; and should a retry race the first commit, the unique
//! keys make it fail and roll back whole.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::Acquire;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::budget_lease::{Ask, BudgetLeases, Refusal};
use super::lease::{ChargePlan, Leases};
use super::{BillingError, Hold, HoldRequest};
use crate::db::Db;
use crate::db::budget_leases::{self, Account};
use crate::db::leases;
use crate::db::ledger::{self, Entry, Kind};
use crate::db::request_logs::{self, RequestLog};

/// The most operations one transaction takes.
const MAX_BATCH: usize = 512;
/// The most requests admitted and not yet settled. Settlements commit after the answer; when the
/// writer falls behind a sustained load, new requests wait here instead of the queue (and memory)
/// growing without bound. The gateway's admission caps stay within it (config checks that).
const MAX_UNSETTLED: usize = crate::config::MAX_CONCURRENT_REQUESTS;

type Reply<T> = oneshot::Sender<Result<T, BillingError>>;

/// Charge a settled request and write its log row.
struct Charge {
    hold: Hold,
    plan: ChargePlan,
    /// How the cost is counted on the key's and on the user's budget leases.
    budgets: BudgetPlans,
    log: RequestLog,
    /// Whether an earlier attempt may have committed it (a retry after an error, which may have
    /// been a lost acknowledgement): only then is its settle key looked up before it is applied.
    /// A first attempt cannot be in the database yet, so the common case reads nothing.
    retry: bool,
    reply: Reply<i64>,
}

impl Charge {
    /// The key's budget (`key`) or the user's this charge counts on: the lease's account and
    /// window, and the charge's part from the lease and beyond it.
    fn budget(&self, key: bool) -> Option<(Account, i64, ChargePlan)> {
        let (key_ask, user_ask) = self.hold.budget_asks(0);
        let (ask, plan) = if key { (key_ask, self.budgets.key) } else { (user_ask, self.budgets.user) };
        let ask = ask?;
        Some((ask.account, ask.window, plan?))
    }
}

/// Give the unpromised part of a lease back to the user's balance.
struct GiveBack {
    user_id: i64,
    amount: i64,
    reply: Reply<()>,
}

/// A charge's part of each budget: from this process's lease, and beyond it.
#[derive(Clone, Copy, Debug, Default)]
struct BudgetPlans {
    key: Option<ChargePlan>,
    user: Option<ChargePlan>,
}

enum Op {
    Charge(Box<Charge>),
    GiveBack(GiveBack),
}

/// Test seam: faults the writer injects into its own commits.
#[derive(Debug, Default)]
struct Faults {
    /// How many more commits of settlements report a failure after they committed, as a
    /// connection lost before COMMIT's acknowledgement does.
    lose_acks: AtomicU32,
    /// How many were reported so far.
    lost_acks: AtomicU32,
}

impl Faults {
    /// True when this commit's acknowledgement is to be "lost".
    fn lose_ack(&self) -> bool {
        let armed = self.lose_acks.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if armed {
            self.lost_acks.fetch_add(1, Ordering::SeqCst);
        }
        armed
    }
}

/// The handle requests use.
#[derive(Debug)]
pub struct Batcher {
    tx: mpsc::Sender<Op>,
    db: Db,
    leases: Leases,
    budgets: BudgetLeases,
    unsettled: Semaphore,
    faults: Arc<Faults>,
}

impl Batcher {
    /// Starts the writer task; it drains its queue and ends when `stop` is cancelled.
    pub fn start(db: Db, leases: Leases, stop: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16 * 1024);
        let faults = Arc::new(Faults::default());
        // Its handle is returned and joined at shutdown, after the last settlement is queued.
        #[allow(clippy::disallowed_methods)]
        let task = tokio::spawn(run(db.clone(), leases.holder().to_string(), rx, stop, faults.clone()));
        let budgets = BudgetLeases::new(leases.holder().to_string());
        (Self { tx, db, leases, budgets, unsettled: Semaphore::new(MAX_UNSETTLED), faults }, task)
    }

    /// Test seam: the next `n` commits of settlements report a failure although they committed
    /// (as when the connection dies right after COMMIT), so the writer retries them.
    pub fn lose_commit_acks(&self, n: u32) {
        self.faults.lose_acks.store(n, Ordering::SeqCst);
    }

    /// How many commit acknowledgements `lose_commit_acks` made the writer lose so far.
    pub fn lost_commit_acks(&self) -> u32 {
        self.faults.lost_acks.load(Ordering::SeqCst)
    }

    /// What the user could spend now: this process's unpromised lease and the unreserved
    /// balance (one database read: only requests that ask for `billing.cap_output_by_balance`
    /// pay it). `InDebt` while the user owes a debt.
    pub async fn spendable(&self, user_id: i64) -> Result<i64, BillingError> {
        match ledger::unreserved(self.db.pool(), user_id).await? {
            Some(Ok(free)) => Ok(free.saturating_add(self.leases.available(user_id))),
            Some(Err(_debt)) => Err(BillingError::InDebt),
            None => Err(BillingError::NoSuchUser),
        }
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    pub fn budgets(&self) -> &BudgetLeases {
        &self.budgets
    }

    /// Renews this process's balance and budget leases.
    pub async fn renew_leases(&self) -> Result<(), sqlx::Error> {
        self.leases.renew(&self.db).await?;
        self.budgets.renew(&self.db).await
    }

    /// Promises `amount` of the user's balance to a request and, when the key has a spend limit or
    /// a budget and when the user has a budget, reserves it on those too: each in memory, from a
    /// lease.
    pub async fn hold(&self, request: HoldRequest) -> Result<Hold, BillingError> {
        let HoldRequest { user_id, key_id, amount, key_limited, key_terms, budget_window, user_budget } = request;
        let hold = Hold { user_id, key_id, amount: amount.max(0), key_limited, budget_window, user_budget };
        // Given back when the hold is settled (`settle` runs exactly once per hold) or refused.
        self.unsettled.acquire().await.map_err(|_| BillingError::WriterGone)?.forget();
        let admitted = self.admit(&hold, key_terms).await;
        if admitted.is_err() {
            self.unsettled.add_permits(1);
        }
        admitted.map(|()| hold)
    }

    async fn admit(&self, hold: &Hold, key_terms: i64) -> Result<(), BillingError> {
        if hold.amount == 0 {
            return Ok(());
        }
        self.leases.admit(&self.db, hold.user_id, hold.amount).await?;
        let (key, user) = hold.budget_asks(key_terms);
        if let Some(ask) = key
            && let Err(refusal) = self.budgets.admit(&self.db, ask).await
        {
            self.leases.cancel(hold.user_id, hold.amount);
            return Err(refused(refusal, true));
        }
        if let Some(ask) = user
            && let Err(refusal) = self.budgets.admit(&self.db, ask).await
        {
            if let Some(key) = key {
                self.budgets.cancel(key.account, key.window, key.amount);
            }
            self.leases.cancel(hold.user_id, hold.amount);
            return Err(refused(refusal, false));
        }
        Ok(())
    }

    /// Charges a hold at `cost` (what is left of the hold returns to the lease; a cost beyond it
    /// takes at most what the user has) and writes the request log with the cost charged, which
    /// is returned. Retried a few times on database errors; the log row records the outcome.
    pub async fn settle(&self, hold: Hold, cost: i64, log: &mut RequestLog) -> Result<i64, BillingError> {
        let settled = self.charge(hold, cost, log).await;
        self.unsettled.add_permits(1);
        settled
    }

    async fn charge(&self, hold: Hold, cost: i64, log: &mut RequestLog) -> Result<i64, BillingError> {
        let cost = cost.max(0);
        // One key for every attempt: the attempts after a lost acknowledgement find it committed.
        log.settle_key = Some(format!("settle:{}", crate::domain::token::random_alphanumeric(24)));
        let plan = if hold.amount == 0 && cost == 0 {
            ChargePlan { from_lease: 0, beyond: 0 }
        } else {
            self.leases.plan_charge(hold.user_id, hold.amount, cost)
        };
        let (key, user) = hold.budget_asks(0);
        let plan_budget = |ask: Option<Ask>| ask.map(|a| self.budgets.plan_charge(a.account, a.window, a.amount, cost));
        let budgets = BudgetPlans { key: plan_budget(key), user: plan_budget(user) };
        let mut last = BillingError::WriterGone;
        for attempt in 1..=5u32 {
            let retry = attempt > 1;
            let charge = |reply| {
                Op::Charge(Box::new(Charge { hold: Hold { ..hold }, plan, budgets, log: log.clone(), retry, reply }))
            };
            match self.submit(charge).await {
                Ok(charged) => {
                    if charged < cost {
                        // A shortfall became debt, and the settlement ended every lease on the
                        // user's balance: what memory still offers must not be promised.
                        self.leases.drain_user(hold.user_id);
                    }
                    log.cost = charged;
                    return Ok(charged);
                }
                Err(e) => {
                    tracing::error!(request_id = %log.request_id, attempt, error = %e, "settlement failed; retrying");
                    last = e;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
            }
        }
        // Not charged: the lease rows still reserve what the charge was to take from them.
        self.leases.restore(hold.user_id, plan.from_lease);
        for (ask, plan) in [(key, budgets.key), (user, budgets.user)] {
            if let (Some(ask), Some(plan)) = (ask, plan) {
                self.budgets.restore(ask.account, ask.window, plan.from_lease);
            }
        }
        Err(last)
    }

    /// Gives this process's unpromised reservation of the user's balance back, so an operator's
    /// debit can take all of the balance.
    pub async fn give_back_lease(&self, user_id: i64) -> Result<(), BillingError> {
        self.budgets.give_back_user(&self.db, user_id).await;
        let amount = self.leases.drain_user(user_id);
        self.give_back(user_id, amount).await
    }

    /// Gives back the leases unused for `idle`.
    pub async fn give_back_idle(&self, idle: Duration) {
        self.budgets.give_back_idle(&self.db, idle).await;
        for (user_id, amount) in self.leases.drain_idle(idle) {
            if let Err(e) = self.give_back(user_id, amount).await {
                tracing::warn!(user_id, error = %e, "could not give a lease back; it stays in memory");
            }
        }
    }

    /// Gives back every lease (at shutdown, once no request is in flight).
    pub async fn give_back_all(&self) {
        self.give_back_idle(Duration::ZERO).await;
        self.budgets.give_back_everything(&self.db).await;
        for (user_id, amount) in self.leases.drain_all() {
            if let Err(e) = self.give_back(user_id, amount).await {
                tracing::warn!(user_id, error = %e, "could not give a lease back; it ends when it expires");
            }
        }
    }

    /// Gives `amount`, already drained from memory, back to the database; when the database
    /// refuses, it returns to memory (the row still reserves it for this process, and renewals
    /// keep it alive: forgotten, it would stay reserved for as long as the process lives).
    async fn give_back(&self, user_id: i64, amount: i64) -> Result<(), BillingError> {
        if amount == 0 {
            return Ok(());
        }
        let given = self.submit(|reply| Op::GiveBack(GiveBack { user_id, amount, reply })).await;
        if given.is_err() {
            self.leases.restore(user_id, amount);
        }
        given
    }

    /// Queues an operation for the writer and waits for its outcome; applies it directly when the
    /// writer is gone (stopped, or lost mid-batch, which rolled its transaction back).
    async fn submit<T>(&self, op: impl Fn(Reply<T>) -> Op) -> Result<T, BillingError> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(op(reply)).await.is_ok()
            && let Ok(outcome) = answer.await
        {
            return outcome;
        }
        let (reply, answer) = oneshot::channel();
        apply(&self.db, self.leases.holder(), vec![op(reply)], &self.faults).await;
        answer.await.unwrap_or(Err(BillingError::WriterGone))
    }
}

async fn run(db: Db, holder: String, mut rx: mpsc::Receiver<Op>, stop: CancellationToken, faults: Arc<Faults>) {
    loop {
        let first = tokio::select! {
            op = rx.recv() => op,
            () = stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        apply(&db, &holder, batch, &faults).await;
    }
    // Stopping: refuse new work (senders fall back to the direct path) and finish what is queued.
    rx.close();
    let mut rest = Vec::new();
    while let Some(op) = rx.recv().await {
        rest.push(op);
    }
    if !rest.is_empty() {
        apply(&db, &holder, rest, &faults).await;
    }
}

async fn apply(db: &Db, holder: &str, batch: Vec<Op>, faults: &Faults) {
    let mut charges = Vec::new();
    let mut give_backs = Vec::new();
    for op in batch {
        match op {
            Op::Charge(c) => charges.push(*c),
            Op::GiveBack(g) => give_backs.push(g),
        }
    }
    if charges.is_empty() && give_backs.is_empty() {
        return;
    }
    match apply_books(db, holder, &mut charges, &give_backs, faults).await {
        Ok(charged) => {
            for (op, charged) in charges.into_iter().zip(charged) {
                let _ = op.reply.send(Ok(charged));
            }
            for op in give_backs {
                let _ = op.reply.send(Ok(()));
            }
        }
        Err(e) if charges.len() + give_backs.len() == 1 => {
            // Nothing to separate: the caller retries (a charge) or keeps the amount (a give-back).
            if let Some(op) = charges.pop() {
                let _ = op.reply.send(Err(e.into()));
            } else if let Some(op) = give_backs.pop() {
                let _ = op.reply.send(Err(e.into()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "group commit of charges failed; applying one at a time");
            for mut op in charges {
                // The group's commit may have gone through with only its acknowledgement lost.
                op.retry = true;
                let result = apply_books(db, holder, std::slice::from_mut(&mut op), &[], faults).await;
                let _ = op.reply.send(result.map(|c| c.first().copied().unwrap_or(0)).map_err(Into::into));
            }
            for op in give_backs {
                let result = apply_books(db, holder, &mut [], std::slice::from_ref(&op), faults).await;
                let _ = op.reply.send(result.map(|_| ()).map_err(Into::into));
            }
        }
    }
}

/// Groups indexes by a key, keeping arrival order inside each group.
fn group_by<K: Ord>(indexes: impl Iterator<Item = usize>, key: impl Fn(usize) -> K) -> BTreeMap<K, Vec<usize>> {
    let mut groups: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for i in indexes {
        groups.entry(key(i)).or_default().push(i);
    }
    groups
}

/// Charges settled requests (per user at once, from the lease; beyond it from the unreserved
/// balance), moves their keys' spend, gives leases back, and writes the ledger and log rows, in
/// one transaction. Returns what each request was charged. Retried settlements whose key is
/// already in the database (committed by an earlier attempt) change nothing and return what they
/// charged.
async fn apply_books(
    db: &Db,
    holder: &str,
    charges: &mut [Charge],
    give_backs: &[GiveBack],
    faults: &Faults,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut conn = db.writer().acquire().await?;
    let mut tx = conn.begin().await?;
    let mut charged = vec![0i64; charges.len()];
    let keys: Vec<&str> = charges.iter().filter(|c| c.retry).filter_map(|c| c.log.settle_key.as_deref()).collect();
    let done = request_logs::settled(&mut tx, &keys).await?;
    let mut fresh = Vec::with_capacity(charges.len());
    for (i, c) in charges.iter().enumerate() {
        match c.log.settle_key.as_ref().and_then(|k| done.get(k)) {
            Some(&cost) => charged[i] = cost,
            None => fresh.push(i),
        }
    }
    if fresh.len() < charges.len() {
        tracing::info!(already = charges.len() - fresh.len(), "settlements committed by an earlier attempt skipped");
    }

    // Budget leases first (the lease rows before the owners' rows, as every writer takes them):
    // what a charge counts beyond its leases, or from a lease swept meanwhile, moves the counts.
    let (key_beyond, user_beyond) = shrink_budget_leases(&mut tx, holder, charges, &fresh).await?;

    // user, amount, balance after, charge index, from the lease (or beyond it)
    let mut entries: Vec<(i64, i64, i64, usize, bool)> = Vec::new();
    let mut beyond: Vec<i64> = charges.iter().map(|c| c.plan.beyond).collect();
    let from_lease = fresh.iter().copied().filter(|&i| charges[i].plan.from_lease > 0);
    for (user, idxs) in group_by(from_lease, |i| charges[i].hold.user_id) {
        let total: i64 = idxs.iter().map(|&i| charges[i].plan.from_lease).sum();
        match leases::charge(&mut tx, user, holder, total).await? {
            Some(balance) => {
                let mut after = balance + total;
                for &i in &idxs {
                    after -= charges[i].plan.from_lease;
                    charged[i] += charges[i].plan.from_lease;
                    entries.push((user, -charges[i].plan.from_lease, after, i, true));
                }
            }
            None => {
                // The lease ended under us (it expired and another process ended it): charge
                // what the user has.
                tracing::warn!(user, "lease gone at settlement; charging the unreserved balance");
                for &i in &idxs {
                    beyond[i] += charges[i].plan.from_lease;
                }
            }
        }
    }
    // user, shortfall, balance after, charge index
    let mut debts: Vec<(i64, i64, i64, usize)> = Vec::new();
    for &i in &fresh {
        if beyond[i] > 0 {
            let user = charges[i].hold.user_id;
            // What the unreserved balance holds, then what leases reserved on it (they end, so
            // no process promises that money again); the rest is debt.
            let (taken, after) = super::take_back(&mut tx, user, beyond[i]).await?;
            if taken > 0 {
                charged[i] += taken;
                entries.push((user, -taken, after, i, false));
            }
            if taken < beyond[i] {
                ledger::add_debt(&mut tx, user, beyond[i] - taken).await?;
                debts.push((user, beyond[i] - taken, after, i));
            }
        }
    }
    for (key, idxs) in group_by(fresh.iter().copied(), |i| charges[i].hold.key_id) {
        // A key without limits counts what was charged; a limited one what its leases did not.
        let counted = |i: usize| if charges[i].hold.key_limited { key_beyond[i] } else { charged[i] };
        let mut by_window: BTreeMap<i64, i64> = BTreeMap::new();
        for &i in &idxs {
            *by_window.entry(charges[i].hold.budget_window).or_default() += counted(i);
        }
        let delta: i64 = by_window.values().sum();
        let by_window: Vec<(i64, i64)> = by_window.into_iter().collect();
        ledger::key_adjust_spent(&mut tx, key, delta, &by_window, true).await?;
    }
    let budgeted = fresh.iter().copied().filter(|&i| user_beyond[i] != 0);
    let user_window = |i: usize| charges[i].budget(false).map(|(account, window, _)| (account, window));
    for (line, idxs) in group_by(budgeted, user_window) {
        let Some((Account::User(user), window)) = line else { continue };
        let delta: i64 = idxs.iter().map(|&i| user_beyond[i]).sum();
        ledger::user_budget_adjust(&mut tx, user, window, delta).await?;
    }
    for g in give_backs {
        leases::give_back(&mut tx, g.user_id, holder, g.amount).await?;
    }

    // Each ledger row carries its settlement's key (the part beyond the lease, a second row,
    // a derived one), so the ledger alone also shows that no settlement was written twice.
    let row_keys: Vec<Option<String>> = entries
        .iter()
        .map(|&(.., i, from_lease)| {
            let key = charges[i].log.settle_key.as_deref()?;
            Some(if from_lease { key.to_string() } else { format!("{key}:beyond") })
        })
        .collect();
    let debt_keys: Vec<Option<String>> =
        debts.iter().map(|&(.., i)| charges[i].log.settle_key.as_deref().map(|key| format!("{key}:debt"))).collect();
    let debt_notes: Vec<String> = debts
        .iter()
        .map(|&(_, short, ..)| format!("Cost beyond the balance, owed: {}", crate::domain::money::Money(short)))
        .collect();
    let mut rows: Vec<Entry<'_>> = entries
        .iter()
        .zip(&row_keys)
        .map(|(&(user_id, amount, balance_after, i, _), key)| Entry {
            user_id,
            kind: Kind::Settle,
            amount,
            balance_after,
            reference: Some(charges[i].log.request_id.as_str()),
            note: None,
            idempotency_key: key.as_deref(),
        })
        .collect();
    // A debt row moves no money (amount 0: the ledger still sums to the balance); the amount
    // owed is in `users.debt` and the row's note.
    rows.extend(debts.iter().zip(&debt_keys).zip(&debt_notes).map(|((&(user_id, _, balance_after, i), key), note)| {
        Entry {
            user_id,
            kind: Kind::Debt,
            amount: 0,
            balance_after,
            reference: Some(charges[i].log.request_id.as_str()),
            note: Some(note.as_str()),
            idempotency_key: key.as_deref(),
        }
    }));
    ledger::insert_many(&mut tx, &rows).await?;
    for (op, cost) in charges.iter_mut().zip(&charged) {
        op.log.cost = *cost;
    }
    let logs: Vec<&RequestLog> = fresh.iter().map(|&i| &charges[i].log).collect();
    request_logs::insert_many(&mut tx, &logs).await?;
    tx.commit().await?;
    if !fresh.is_empty() && faults.lose_ack() {
        return Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault: the COMMIT acknowledgement was lost",
        )));
    }
    Ok(charged)
}

/// Charges each fresh settlement's budget part to this process's budget leases (one row update
/// per lease for the batch). What each charge counts beyond its key's and its user's leases:
/// its plan's part beyond them, and its part from a lease whose row no longer holds it (expired
/// and swept, so the count lost it).
async fn shrink_budget_leases(
    conn: &mut sqlx::AnyConnection,
    holder: &str,
    charges: &[Charge],
    fresh: &[usize],
) -> Result<(Vec<i64>, Vec<i64>), sqlx::Error> {
    let mut beyond = [Vec::new(), Vec::new()];
    for (side, key) in [true, false].into_iter().enumerate() {
        let budget = |i: usize| charges[i].budget(key);
        beyond[side] = (0..charges.len()).map(|i| budget(i).map_or(0, |(.., plan)| plan.beyond)).collect();
        let from_lease = |i: usize| budget(i).map_or(0, |(.., plan)| plan.from_lease);
        let leased = fresh.iter().copied().filter(|&i| from_lease(i) > 0);
        let line = |i: usize| budget(i).map(|(account, window, _)| (account, window));
        for (line, idxs) in group_by(leased, line) {
            let Some((account, window)) = line else { continue };
            let total: i64 = idxs.iter().map(|&i| from_lease(i)).sum();
            if budget_leases::shrink(conn, account, window, holder, total).await? {
                continue;
            }
            tracing::warn!(?account, "budget lease gone at settlement; counting the charge on the budget");
            for &i in &idxs {
                beyond[side][i] += from_lease(i);
            }
        }
    }
    let [key_beyond, user_beyond] = beyond;
    Ok((key_beyond, user_beyond))
}

/// A budget's refusal as the caller sees it (`key`: the key's budget, else the user's).
fn refused(refusal: Refusal, key: bool) -> BillingError {
    match refusal {
        Refusal::Short if key => BillingError::KeyLimitReached,
        Refusal::Short => BillingError::UserBudgetSpent,
        Refusal::HeldElsewhere => BillingError::BudgetHeldElsewhere { key },
        Refusal::Db(e) => BillingError::Db(e),
    }
}

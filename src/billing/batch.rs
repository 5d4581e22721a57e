//! Group commit for the gateway's holds and settlements.
//!
//! One writer task takes every hold and settlement queued while the previous transaction ran and
//! applies them in one transaction: one conditional debit per user and one spend update per key
//! for the whole batch (falling back to one statement per request when a sum is not covered), and
//! multi-row inserts for the ledger and the request log. The guarantees are those of
//! [`super::hold`] and [`super::settle`], which remain the one-at-a-time path: each hold is granted
//! only if the balance and the key limit cover it, a balance never goes below zero, every change
//! has its ledger row in the same transaction. If a batch fails as a whole, its operations are
//! retried one at a time, so one bad operation cannot fail the others.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{BillingError, Hold, HoldRequest};
use crate::db::Db;
use crate::db::ledger::{self, Entry, Kind};
use crate::db::request_logs::{self, RequestLog};

/// The most operations one transaction takes.
const MAX_BATCH: usize = 512;

struct HoldOp {
    user_id: i64,
    key_id: i64,
    amount: i64,
    key_limited: bool,
    reference: String,
    reply: oneshot::Sender<Result<(), BillingError>>,
}

struct SettleOp {
    hold: Hold,
    cost: i64,
    log: RequestLog,
    reply: oneshot::Sender<Result<i64, BillingError>>,
}

enum Op {
    Hold(HoldOp),
    Settle(Box<SettleOp>),
}

/// The handle requests use; cheap to share.
#[derive(Debug)]
pub struct Batcher {
    tx: mpsc::Sender<Op>,
}

impl Batcher {
    /// Starts the writer task; it drains its queue and ends when `stop` is cancelled.
    pub fn start(db: Db, stop: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16 * 1024);
        let task = tokio::spawn(run(db, rx, stop));
        (Self { tx }, task)
    }

    /// Like [`super::hold`], through the group commit.
    pub async fn hold(&self, db: &Db, request: HoldRequest<'_>) -> Result<Hold, BillingError> {
        let HoldRequest { user_id, key_id, amount, key_limited, reference } = request;
        let amount = amount.max(0);
        if amount == 0 {
            return Ok(Hold { user_id, key_id, amount, key_limited });
        }
        let (reply, answer) = oneshot::channel();
        let op = HoldOp { user_id, key_id, amount, key_limited, reference: reference.to_string(), reply };
        if self.tx.send(Op::Hold(op)).await.is_err() {
            return super::hold(db, request).await;
        }
        match answer.await {
            Ok(result) => result.map(|()| Hold { user_id, key_id, amount, key_limited }),
            // The writer went away mid-batch: its transaction rolled back, so do it directly.
            Err(_) => super::hold(db, request).await,
        }
    }

    /// Like [`super::settle`], through the group commit.
    pub async fn settle(&self, db: &Db, hold: Hold, cost: i64, log: &mut RequestLog) -> Result<i64, BillingError> {
        let (reply, answer) = oneshot::channel();
        let retry = Hold { ..hold };
        let op = SettleOp { hold, cost, log: log.clone(), reply };
        if let Err(mpsc::error::SendError(Op::Settle(op))) = self.tx.send(Op::Settle(Box::new(op))).await {
            return super::settle(db, op.hold, cost, log).await;
        }
        match answer.await {
            Ok(Ok(charged)) => {
                log.cost = charged;
                Ok(charged)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => super::settle(db, retry, cost, log).await,
        }
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Op>, stop: CancellationToken) {
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
        apply(&db, batch).await;
    }
    // Stopping: refuse new work (senders fall back to the direct path) and finish what is queued.
    rx.close();
    let mut rest = Vec::new();
    while let Some(op) = rx.recv().await {
        rest.push(op);
    }
    if !rest.is_empty() {
        apply(&db, rest).await;
    }
}

async fn apply(db: &Db, batch: Vec<Op>) {
    let mut holds = Vec::new();
    let mut settles = Vec::new();
    for op in batch {
        match op {
            Op::Hold(h) => holds.push(h),
            Op::Settle(s) => settles.push(*s),
        }
    }
    // Holds commit on their own, first: a request waits for its hold before calling upstream,
    // while settlements (and their log rows) only delay the books.
    if !holds.is_empty() {
        apply_holds(db, holds).await;
    }
    if !settles.is_empty() {
        apply_settles(db, settles).await;
    }
}

async fn apply_holds(db: &Db, holds: Vec<HoldOp>) {
    match apply_together(db, &holds, &mut []).await {
        Ok((results, _)) => {
            for (op, result) in holds.into_iter().zip(results) {
                let _ = op.reply.send(result);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "group commit of holds failed; applying one at a time");
            for op in holds {
                let request = HoldRequest {
                    user_id: op.user_id,
                    key_id: op.key_id,
                    amount: op.amount,
                    key_limited: op.key_limited,
                    reference: &op.reference,
                };
                let result = super::hold(db, request).await.map(|_| ());
                let _ = op.reply.send(result);
            }
        }
    }
}

async fn apply_settles(db: &Db, mut settles: Vec<SettleOp>) {
    match apply_together(db, &[], &mut settles).await {
        Ok((_, charged)) => {
            for (op, charged) in settles.into_iter().zip(charged) {
                let _ = op.reply.send(Ok(charged));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "group commit of settlements failed; applying one at a time");
            for mut op in settles {
                let result = super::settle(db, op.hold, op.cost, &mut op.log).await;
                let _ = op.reply.send(result);
            }
        }
    }
}

/// Groups indexes by a key, keeping arrival order inside each group.
fn group_by(indexes: impl Iterator<Item = usize>, key: impl Fn(usize) -> i64) -> BTreeMap<i64, Vec<usize>> {
    let mut groups: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for i in indexes {
        groups.entry(key(i)).or_default().push(i);
    }
    groups
}

type Outcome = (Vec<Result<(), BillingError>>, Vec<i64>);

async fn apply_together(db: &Db, holds: &[HoldOp], settles: &mut [SettleOp]) -> Result<Outcome, sqlx::Error> {
    let mut tx = db.writer().begin().await?;
    let mut entries: Vec<(i64, Kind, i64, i64, usize, bool)> = Vec::new(); // user, kind, amount, balance after, op index, is hold

    // Holds. Keys first: a hold whose key is over its limit never touches the balance.
    let mut results: Vec<Result<(), BillingError>> = holds.iter().map(|_| Ok(())).collect();
    let limited = (0..holds.len()).filter(|&i| holds[i].key_limited);
    for (key, idxs) in group_by(limited, |i| holds[i].key_id) {
        let total: i64 = idxs.iter().map(|&i| holds[i].amount).sum();
        if !ledger::key_spend_within_limit(&mut tx, key, total).await? {
            for &i in &idxs {
                if !ledger::key_spend_within_limit(&mut tx, key, holds[i].amount).await? {
                    results[i] = Err(BillingError::KeyLimitReached);
                }
            }
        }
    }
    let passed = (0..holds.len()).filter(|&i| results[i].is_ok());
    for (user, idxs) in group_by(passed, |i| holds[i].user_id) {
        let total: i64 = idxs.iter().map(|&i| holds[i].amount).sum();
        if let Some(balance) = ledger::debit_if_covered(&mut tx, user, total).await? {
            let mut after = balance + total;
            for &i in &idxs {
                after -= holds[i].amount;
                entries.push((user, Kind::Hold, -holds[i].amount, after, i, true));
            }
            continue;
        }
        for &i in &idxs {
            match ledger::debit_if_covered(&mut tx, user, holds[i].amount).await? {
                Some(after) => entries.push((user, Kind::Hold, -holds[i].amount, after, i, true)),
                None => {
                    results[i] = Err(BillingError::InsufficientBalance);
                    if holds[i].key_limited {
                        // Undo the key spend this hold took above.
                        ledger::key_adjust_spent(&mut tx, holds[i].key_id, -holds[i].amount).await?;
                    }
                }
            }
        }
    }

    // Settlements: release or charge the difference between hold and cost, per user at once
    // when every cost is within its hold (the usual case), else one at a time.
    let mut charged: Vec<i64> = settles.iter().map(|s| s.cost.max(0)).collect();
    for (user, idxs) in group_by(0..settles.len(), |i| settles[i].hold.user_id) {
        let within = idxs.iter().all(|&i| charged[i] <= settles[i].hold.amount);
        if within {
            let release: i64 = idxs.iter().map(|&i| settles[i].hold.amount - charged[i]).sum();
            if release > 0 {
                let Some(balance) = ledger::credit(&mut tx, user, release).await? else { continue };
                let mut after = balance - release;
                for &i in &idxs {
                    let delta = settles[i].hold.amount - charged[i];
                    if delta > 0 {
                        after += delta;
                        entries.push((user, Kind::Settle, delta, after, i, false));
                    }
                }
            }
            continue;
        }
        for &i in &idxs {
            let delta = settles[i].hold.amount - charged[i];
            if delta > 0 {
                if let Some(after) = ledger::credit(&mut tx, user, delta).await? {
                    entries.push((user, Kind::Settle, delta, after, i, false));
                }
            } else if delta < 0 {
                let (taken, after) = ledger::debit_up_to(&mut tx, user, -delta).await?;
                if taken > 0 {
                    entries.push((user, Kind::Settle, -taken, after, i, false));
                }
                charged[i] = settles[i].hold.amount + taken;
            }
        }
    }
    for (key, idxs) in group_by(0..settles.len(), |i| settles[i].hold.key_id) {
        let delta: i64 = idxs.iter().map(|&i| settles[i].hold.key_delta(charged[i])).sum();
        ledger::key_adjust_spent(&mut tx, key, delta).await?;
    }

    let rows: Vec<Entry<'_>> = entries
        .iter()
        .map(|&(user_id, kind, amount, balance_after, i, is_hold)| Entry {
            user_id,
            kind,
            amount,
            balance_after,
            reference: Some(if is_hold { holds[i].reference.as_str() } else { settles[i].log.request_id.as_str() }),
            note: None,
            idempotency_key: None,
        })
        .collect();
    ledger::insert_many(&mut tx, &rows).await?;
    for (op, cost) in settles.iter_mut().zip(&charged) {
        op.log.cost = *cost;
    }
    let logs: Vec<&RequestLog> = settles.iter().map(|s| &s.log).collect();
    request_logs::insert_many(&mut tx, &logs).await?;
    tx.commit().await?;
    Ok((results, charged))
}

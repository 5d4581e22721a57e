//! Billing: the only code that moves money. Every change runs in one database transaction
//! together with its ledger row, and every debit is a conditional UPDATE, so a balance never
//! goes below zero and the ledger always sums to the balance.
//!
//! Gateway requests go through [`hold`] (reserve an estimate on the user's balance and the key's
//! limit before calling upstream) and [`settle`] (charge the exact cost, release the rest, and
//! write the request log). This small interface is the seam for a faster implementation later
//! (batched settlement, balance leases) without touching the relay.

pub mod batch;

use sqlx::Acquire;

use crate::db::Db;
use crate::db::ledger::{self, Entry, Kind};
use crate::db::request_logs::{self, RequestLog};

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("the balance does not cover this request")]
    InsufficientBalance,
    #[error("the key's spend limit is reached")]
    KeyLimitReached,
    #[error("no such user")]
    NoSuchUser,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// An amount reserved for one request; settle it exactly once.
#[derive(Debug)]
#[must_use = "a hold must be settled"]
pub struct Hold {
    pub user_id: i64,
    pub key_id: i64,
    pub amount: i64,
    /// The key has a spend limit, so the hold was reserved on the key too. Keys without a limit
    /// are not touched until settlement (one write less per request).
    pub key_limited: bool,
}

impl Hold {
    /// How much a settlement at `charged` moves the key's spend.
    pub(crate) fn key_delta(&self, charged: i64) -> i64 {
        if self.key_limited { charged - self.amount } else { charged }
    }
}

/// What to reserve, for whom.
#[derive(Clone, Copy, Debug)]
pub struct HoldRequest<'a> {
    pub user_id: i64,
    pub key_id: i64,
    pub amount: i64,
    /// The key has a spend limit to check and reserve on.
    pub key_limited: bool,
    /// The request id, for the ledger row.
    pub reference: &'a str,
}

/// Reserves `amount` on the user's balance (and the key's spend limit, if it has one), with a
/// ledger row.
/// A zero amount reserves nothing and touches no table.
pub async fn hold(db: &Db, request: HoldRequest<'_>) -> Result<Hold, BillingError> {
    let HoldRequest { user_id, key_id, amount, key_limited, reference } = request;
    let hold = Hold { user_id, key_id, amount: amount.max(0), key_limited };
    if hold.amount == 0 {
        return Ok(hold);
    }
    // Key before user, the order the group commit locks them in, so the two never deadlock.
    let mut tx = db.writer().begin().await?;
    if key_limited && !ledger::key_spend_within_limit(&mut tx, key_id, hold.amount).await? {
        tx.rollback().await?;
        return Err(BillingError::KeyLimitReached);
    }
    let Some(balance) = ledger::debit_if_covered(&mut tx, user_id, hold.amount).await? else {
        tx.rollback().await?;
        return Err(BillingError::InsufficientBalance);
    };
    ledger::insert(
        &mut tx,
        &Entry {
            user_id,
            kind: Kind::Hold,
            amount: -hold.amount,
            balance_after: balance,
            reference: Some(reference),
            note: None,
            idempotency_key: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(hold)
}

/// Settles a hold at `cost`: releases what was over-reserved, or charges the rest up to what the
/// balance holds (never below zero), and writes the request log in the same transaction.
/// `log.cost` is set to what was actually charged, which is returned.
pub async fn settle(db: &Db, hold: Hold, cost: i64, log: &mut RequestLog) -> Result<i64, BillingError> {
    let cost = cost.max(0);
    let mut conn = db.writer().acquire().await?;
    let mut tx = conn.begin().await?;
    let delta = hold.amount - cost;
    let charged = if delta > 0 {
        let balance = ledger::credit(&mut tx, hold.user_id, delta).await?.ok_or(BillingError::NoSuchUser)?;
        ledger::insert(&mut tx, &settle_entry(&hold, delta, balance, &log.request_id)).await?;
        cost
    } else if delta < 0 {
        let (taken, balance) = ledger::debit_up_to(&mut tx, hold.user_id, -delta).await?;
        if taken > 0 {
            ledger::insert(&mut tx, &settle_entry(&hold, -taken, balance, &log.request_id)).await?;
        }
        hold.amount + taken
    } else {
        cost
    };
    ledger::key_adjust_spent(&mut tx, hold.key_id, hold.key_delta(charged)).await?;
    log.cost = charged;
    request_logs::insert(&mut tx, log).await?;
    tx.commit().await?;
    Ok(charged)
}

fn settle_entry<'a>(hold: &Hold, amount: i64, balance_after: i64, reference: &'a str) -> Entry<'a> {
    Entry {
        user_id: hold.user_id,
        kind: Kind::Settle,
        amount,
        balance_after,
        reference: Some(reference),
        note: None,
        idempotency_key: None,
    }
}

/// An operator's credit (positive) or debit (negative) with a note. A debit larger than the
/// balance is refused. With an idempotency key, a repeat of the same operation changes nothing
/// and returns `Ok(None)`.
pub async fn adjust(
    db: &Db,
    user_id: i64,
    amount: i64,
    kind: Kind,
    note: Option<&str>,
    idempotency_key: Option<&str>,
) -> Result<Option<i64>, BillingError> {
    let mut tx = db.writer().begin().await?;
    let balance = if amount >= 0 {
        ledger::credit(&mut tx, user_id, amount).await?.ok_or(BillingError::NoSuchUser)?
    } else {
        match ledger::debit_if_covered(&mut tx, user_id, -amount).await? {
            Some(balance) => balance,
            None => {
                tx.rollback().await?;
                return match ledger::balance(db.writer(), user_id).await? {
                    Some(_) => Err(BillingError::InsufficientBalance),
                    None => Err(BillingError::NoSuchUser),
                };
            }
        }
    };
    let entry = Entry { user_id, kind, amount, balance_after: balance, reference: None, note, idempotency_key };
    match ledger::insert(&mut tx, &entry).await {
        Ok(()) => {}
        Err(e) if crate::db::is_unique_violation(&e, "ledger_idempotency_key_key", "ledger.idempotency_key") => {
            tx.rollback().await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(Some(balance))
}

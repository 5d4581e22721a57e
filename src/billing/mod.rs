//! Billing: the only code that moves money. Every change runs in one database transaction
//! together with its ledger row, and every debit is a conditional UPDATE, so a balance never
//! goes below zero and the ledger always sums to the balance.
//!
//! Gateway requests go through the [`batch::Batcher`]: `hold` promises an estimate of the request's
//! cost from the user's balance (through a [balance lease](lease), in memory) and reserves it on
//! the key's spend limit when the key has one; `settle` charges the exact cost, from the lease,
//! with its ledger row and the request log, in a group-committed transaction.

pub mod batch;
pub mod budget_lease;
pub mod codes;
pub mod lease;

use crate::db::budget_leases::Account;
use crate::db::ledger::{self, Entry, Kind};
use crate::db::{Db, leases};

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("the balance does not cover this request")]
    InsufficientBalance,
    /// What is missing is reserved by other replicas' leases: ask them to give back what they
    /// do not need ([`crate::billing::Batcher::give_back_lease`]) and try again.
    #[error("the balance is reserved by other replicas")]
    HeldElsewhere,
    /// What is missing of the key's budget (`key`) or the user's is reserved by other replicas'
    /// budget leases: asked back the same way.
    #[error("the budget is reserved by other replicas")]
    BudgetHeldElsewhere { key: bool },
    #[error("the account owes an unpaid balance")]
    InDebt,
    #[error("the key's spend limit is reached")]
    KeyLimitReached,
    /// The user's budget for this period (their own or their group's) cannot take the hold.
    #[error("the user's budget for this period is spent")]
    UserBudgetSpent,
    #[error("no such user")]
    NoSuchUser,
    #[error("the billing writer stopped")]
    WriterGone,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// An amount promised to one request; settle it exactly once.
#[derive(Debug)]
#[must_use = "a hold must be settled"]
pub struct Hold {
    pub user_id: i64,
    pub key_id: i64,
    pub amount: i64,
    /// The key has a spend limit or a budget, so the hold was reserved on the key too. Keys
    /// without one are not touched until settlement (one write less per request).
    pub key_limited: bool,
    /// The start (unix ms) of the budget window the hold counts in; 0 for a key without a budget.
    pub budget_window: i64,
    /// The user's budget the hold was reserved on, when the user has one.
    pub user_budget: Option<UserBudget>,
}

/// A user's budget as a hold reserves on it: the window it counts in and the amount it allows
/// (the user's own budget, else their group's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserBudget {
    /// The window's start (unix ms).
    pub window: i64,
    pub limit: i64,
    /// A fingerprint of the budget ([`crate::domain::budget::Budget::terms`]).
    pub terms: i64,
}

impl Hold {
    /// What the hold asks of the key's budget (when the key is limited) and of the user's (when
    /// they have one); `key_terms` fingerprints the key's limits.
    pub(crate) fn budget_asks(&self, key_terms: i64) -> (Option<budget_lease::Ask>, Option<budget_lease::Ask>) {
        let ask = |account, window, limit, terms| budget_lease::Ask {
            account,
            user_id: self.user_id,
            window,
            limit,
            terms,
            amount: self.amount,
        };
        let key = self.key_limited.then(|| ask(Account::Key(self.key_id), self.budget_window, 0, key_terms));
        let user = self.user_budget.map(|b| ask(Account::User(self.user_id), b.window, b.limit, b.terms));
        (key, user)
    }
}

/// What to reserve, for whom.
#[derive(Clone, Copy, Debug)]
pub struct HoldRequest {
    pub user_id: i64,
    pub key_id: i64,
    pub amount: i64,
    /// The key has a spend limit or a budget to check and reserve on.
    pub key_limited: bool,
    /// A fingerprint of the key's spend limit and budget: a budget lease taken under other limits
    /// is not used (an operator's change holds on the next request).
    pub key_terms: i64,
    /// For a key with a budget, the start (unix ms) of the window the hold counts in; else 0.
    pub budget_window: i64,
    /// The user's budget to check and reserve on, when the user has one.
    pub user_budget: Option<UserBudget>,
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
    // A credit pays the user's debt first (in `ledger::insert`): answer with what is left.
    let balance = if amount > 0 { ledger::balance(&mut *tx, user_id).await?.unwrap_or(balance) } else { balance };
    tx.commit().await?;
    Ok(Some(balance))
}

/// Takes back up to `amount` of credit (a refund, a dispute), never below zero: first from the
/// unreserved balance, then — when that is short — from what gateway processes reserved on it
/// (their leases end, so the money cannot be spent afterwards). `(taken, new balance)`; the
/// caller writes one ledger row for `taken` in the same transaction.
pub async fn take_back(conn: &mut sqlx::AnyConnection, user_id: i64, amount: i64) -> Result<(i64, i64), sqlx::Error> {
    let (taken, balance) = ledger::debit_up_to(conn, user_id, amount).await?;
    if taken >= amount || leases::end_for_user(conn, user_id).await? == 0 {
        return Ok((taken, balance));
    }
    let (more, balance) = ledger::debit_up_to(conn, user_id, amount - taken).await?;
    Ok((taken + more, balance))
}

/// Why a code could not be redeemed (one message for all: codes must not be probed).
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("This code is not valid, has expired or was already used.")]
    Invalid,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Redeems a code for `user_id`: claims it (`… WHERE status = 'unused'`, so exactly one of any
/// number of concurrent attempts wins) and credits its amount with a ledger row, in one
/// transaction. Returns `(amount, new balance)`.
pub async fn redeem(db: &Db, user_id: i64, code: &str) -> Result<(i64, i64), RedeemError> {
    let now = crate::domain::time::now_ms();
    let mut tx = db.writer().begin().await?;
    let Some((id, amount)) = crate::db::codes::claim(&mut tx, user_id, code, now).await? else {
        tx.rollback().await?;
        return Err(RedeemError::Invalid);
    };
    let Some(balance) = ledger::credit(&mut tx, user_id, amount).await? else {
        tx.rollback().await?;
        return Err(RedeemError::Invalid);
    };
    let reference = format!("code:{id}");
    let entry = Entry {
        user_id,
        kind: Kind::Redemption,
        amount,
        balance_after: balance,
        reference: Some(&reference),
        note: None,
        idempotency_key: None,
    };
    ledger::insert(&mut tx, &entry).await?;
    // A credit pays the user's debt first (in `ledger::insert`): answer with what is left.
    let balance = ledger::balance(&mut *tx, user_id).await?.unwrap_or(balance);
    tx.commit().await?;
    Ok((amount, balance))
}

//! The money side of redemption codes and of resellers' transfers: a reseller's codes are paid
//! from their balance in the same transaction that inserts them, a voided unused code refunds
//! what was paid for it exactly once, and a transfer debits one user and credits another in one
//! transaction. Every debit is the conditional `ledger::debit_if_covered`, so concurrent
//! requests can never overdraw.
//!
//! Ledger kinds: a code purchase and both sides of a transfer are `adjustment` rows whose
//! `reference` says what they are (`codes:<batch ref>`, `transfer:<ref>`) and whose note is
//! readable by the user; a void's refund is a `refund` row (`code:<id>` or `codes-void:<n>`).
//! The kinds CHECK constraint is left as it is (changing it needs a table rebuild on SQLite).

use std::collections::BTreeMap;

use super::BillingError;
use crate::db::Db;
use crate::db::codes::{self, NewCode, Voided};
use crate::db::ledger::{self, Entry, Kind};

/// Inserts `codes`; when `payer` is set, first debits them `sum(paid)` with one ledger row
/// (`reference`, `note`), all in one transaction. The payer's new balance, if any.
pub async fn issue(
    db: &Db,
    payer: Option<i64>,
    codes: &[NewCode<'_>],
    reference: &str,
    note: &str,
) -> Result<Option<i64>, BillingError> {
    let total =
        codes.iter().try_fold(0i64, |sum, c| sum.checked_add(c.paid)).ok_or(BillingError::InsufficientBalance)?;
    let mut tx = db.writer().begin().await?;
    let mut balance = None;
    if let Some(payer) = payer.filter(|_| total > 0) {
        let Some(after) = ledger::debit_if_covered(&mut tx, payer, total).await? else {
            tx.rollback().await?;
            return Err(BillingError::InsufficientBalance);
        };
        let entry = Entry {
            user_id: payer,
            kind: Kind::Adjustment,
            amount: -total,
            balance_after: after,
            reference: Some(reference),
            note: Some(note),
            idempotency_key: None,
        };
        ledger::insert(&mut tx, &entry).await?;
        balance = Some(after);
    }
    codes::insert_many(&mut tx, codes).await?;
    tx.commit().await?;
    Ok(balance)
}

/// Voids unused codes (one by `id`, or a whole `batch`) of `owner` (or anyone's) and refunds
/// each code's payer what they paid, one `refund` row per payer, in one transaction.
pub async fn void(
    db: &Db,
    owner: Option<i64>,
    id: Option<i64>,
    batch: Option<&str>,
) -> Result<Vec<Voided>, BillingError> {
    let mut tx = db.writer().begin().await?;
    let voided = codes::void(&mut tx, owner, id, batch).await?;
    let mut refunds: BTreeMap<i64, (i64, Vec<i64>)> = BTreeMap::new();
    for code in voided.iter().filter(|c| c.paid > 0) {
        if let Some(payer) = code.created_by {
            let due = refunds.entry(payer).or_default();
            due.0 += code.paid;
            due.1.push(code.id);
        }
    }
    for (payer, (amount, ids)) in refunds {
        // The payer account was deleted: the code is still voided, nobody to refund.
        let Some(after) = ledger::credit(&mut tx, payer, amount).await? else { continue };
        let reference =
            if let [id] = ids.as_slice() { format!("code:{id}") } else { format!("codes-void:{}", ids.len()) };
        let note = format!("Refund of {} voided code(s)", ids.len());
        let entry = Entry {
            user_id: payer,
            kind: Kind::Refund,
            amount,
            balance_after: after,
            reference: Some(&reference),
            note: Some(&note),
            idempotency_key: None,
        };
        ledger::insert(&mut tx, &entry).await?;
    }
    tx.commit().await?;
    Ok(voided)
}

/// Both sides of a transfer: the notes each user reads in their ledger.
pub struct Transfer<'a> {
    pub from: i64,
    pub to: i64,
    pub amount: i64,
    pub reference: &'a str,
    pub note_from: &'a str,
    pub note_to: &'a str,
}

/// Debits `from` and credits `to`, with a ledger row each, in one transaction: both happen or
/// neither. The sender's new balance.
pub async fn transfer(db: &Db, t: &Transfer<'_>) -> Result<i64, BillingError> {
    let mut tx = db.writer().begin().await?;
    let Some(from_after) = ledger::debit_if_covered(&mut tx, t.from, t.amount).await? else {
        tx.rollback().await?;
        return Err(BillingError::InsufficientBalance);
    };
    let Some(to_after) = ledger::credit(&mut tx, t.to, t.amount).await? else {
        tx.rollback().await?;
        return Err(BillingError::NoSuchUser);
    };
    let entries = [
        Entry {
            user_id: t.from,
            kind: Kind::Adjustment,
            amount: -t.amount,
            balance_after: from_after,
            reference: Some(t.reference),
            note: Some(t.note_from),
            idempotency_key: None,
        },
        Entry {
            user_id: t.to,
            kind: Kind::Adjustment,
            amount: t.amount,
            balance_after: to_after,
            reference: Some(t.reference),
            note: Some(t.note_to),
            idempotency_key: None,
        },
    ];
    ledger::insert_many(&mut tx, &entries).await?;
    tx.commit().await?;
    Ok(from_after)
}

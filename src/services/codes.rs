//! Redemption codes and resellers' money operations, shared by `/admin/codes`,
//! `/console/reseller`, `/api/admin/codes` and `/api/reseller/*`: validate the input, call
//! `billing::codes` (which owns the transactions) and write the audit row. An operator's codes
//! are free; a reseller's are paid from their balance. A reseller only ever reaches their own
//! codes (`owner` scopes every query), so another reseller's code id is "not found".

use serde::Deserialize;
use serde_json::json;

use crate::billing::{self, BillingError};
use crate::db::codes::{self as db_codes, CodeRow, Filter, NewCode};
use crate::db::users::{self, Role};
use crate::domain::email::Email;
use crate::domain::money::Money;
use crate::domain::time::{DAY_MS, now_ms, parse_utc_day, utc_day};
use crate::domain::token;
use crate::services::audit::{self, Actor};
use crate::state::AppState;

/// The most codes one request generates, and the most a listing shows.
pub const MAX_COUNT: i64 = 500;
pub const LIST_LIMIT: i64 = 500;
const EXPORT_LIMIT: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CodesError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such code")]
    NotFound,
    #[error("This code is not unused any more, so it cannot be voided.")]
    NotUnused,
    #[error("Your balance does not cover this.")]
    InsufficientBalance,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for CodesError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<BillingError> for CodesError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::InsufficientBalance => Self::InsufficientBalance,
            BillingError::NoSuchUser => Self::Invalid("There is no account with that email.".into()),
            e => Self::Internal(e.to_string()),
        }
    }
}

/// Who generates or manages codes: an operator (everyone's codes, free) or a reseller (their
/// own, paid).
#[derive(Clone, Copy, Debug)]
pub enum Owner {
    Operator,
    Reseller(i64),
}

impl Owner {
    fn scope(self) -> Option<i64> {
        match self {
            Owner::Operator => None,
            Owner::Reseller(id) => Some(id),
        }
    }
}

/// What to generate, as typed (console form or JSON).
#[derive(Debug, Default, Deserialize)]
pub struct GenerateInput {
    /// The batch name.
    #[serde(default)]
    pub name: String,
    /// The value of each code, a decimal like `"10.00"`.
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub count: i64,
    #[serde(default)]
    pub prefix: String,
    /// `YYYY-MM-DD`, the last UTC day the codes work (blank: never expire).
    #[serde(default)]
    pub expires: String,
}

/// Codes just generated (shown in full to their creator).
#[derive(Debug, serde::Serialize)]
pub struct Generated {
    pub batch_name: String,
    #[serde(serialize_with = "crate::domain::money::as_decimal")]
    pub amount: i64,
    pub codes: Vec<String>,
    pub expires_at: Option<i64>,
    /// What the reseller paid (0 for an operator).
    #[serde(serialize_with = "crate::domain::money::as_decimal")]
    pub paid: i64,
    /// The reseller's balance afterwards.
    #[serde(serialize_with = "crate::domain::money::as_optional_decimal")]
    pub balance: Option<i64>,
}

struct Checked {
    name: String,
    amount: i64,
    count: i64,
    prefix: String,
    expires_at: Option<i64>,
}

fn check(input: &GenerateInput) -> Result<Checked, CodesError> {
    let invalid = |m: &str| CodesError::Invalid(m.to_string());
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(invalid("Name: 1 to 64 characters, to find the batch again."));
    }
    let amount = Money::parse(&input.amount).map_err(|_| invalid("Value: an amount like 10.00."))?.nanos();
    if amount <= 0 || amount > 1_000_000 * crate::domain::money::NANOS_PER_UNIT {
        return Err(invalid("Value: more than 0 and at most 1000000."));
    }
    if !(1..=MAX_COUNT).contains(&input.count) {
        return Err(CodesError::Invalid(format!("Count: from 1 to {MAX_COUNT}.")));
    }
    let prefix = input.prefix.trim().to_string();
    if prefix.len() > 16 || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(invalid("Prefix: up to 16 letters, digits, - or _."));
    }
    let expires_at = match input.expires.trim() {
        "" => None,
        day => {
            let start = parse_utc_day(day).ok_or_else(|| invalid("Expires: a date like 2026-12-31."))?;
            let end = start + DAY_MS;
            if end <= now_ms() {
                return Err(invalid("Expires: that day is over; choose today or a later day."));
            }
            Some(end)
        }
    };
    Ok(Checked { name, amount, count: input.count, prefix, expires_at })
}

/// Generates codes. A reseller pays `value × count` from their balance in the same transaction
/// (refused whole when the balance does not cover it).
pub async fn generate(
    state: &AppState,
    actor: &Actor,
    owner: Owner,
    input: &GenerateInput,
) -> Result<Generated, CodesError> {
    let c = check(input)?;
    let paid = match owner {
        Owner::Operator => 0,
        Owner::Reseller(_) => c.amount,
    };
    let total = paid.checked_mul(c.count).ok_or(CodesError::InsufficientBalance)?;
    let now = now_ms();
    let texts: Vec<String> = (0..c.count).map(|_| token::redemption_code(&c.prefix)).collect();
    let rows: Vec<NewCode> = texts
        .iter()
        .map(|code| NewCode {
            code,
            batch_name: &c.name,
            amount: c.amount,
            paid,
            created_by: owner.scope().or(actor.user_id),
            expires_at: c.expires_at,
            created_at: now,
        })
        .collect();
    let reference = format!("codes:{}", token::random_alphanumeric(12));
    let note = format!("{} redemption code(s) of {} ({})", c.count, Money(c.amount), c.name);
    let balance = billing::codes::issue(state.db(), owner.scope(), &rows, &reference, &note).await?;
    let details = json!({
        "batch": c.name, "count": c.count, "amount": c.amount, "prefix": c.prefix,
        "expires_at": c.expires_at, "paid": total,
    });
    audit::record(state, actor, "codes.generate", ("code_batch", &c.name), details).await;
    Ok(Generated { batch_name: c.name, amount: c.amount, codes: texts, expires_at: c.expires_at, paid: total, balance })
}

/// The filter from query parameters: `status` (unused, used, disabled or voided, expired; blank
/// for all) and `batch` (exact name; blank for all).
pub fn filter(owner: Owner, status: &str, batch: &str) -> Result<Filter, CodesError> {
    let status = match status.trim() {
        "" | "all" => None,
        s => Some(
            db_codes::StatusFilter::parse(s)
                .ok_or_else(|| CodesError::Invalid("Status: unused, used, disabled or expired.".into()))?,
        ),
    };
    let batch = Some(batch.trim().to_string()).filter(|b| !b.is_empty());
    Ok(Filter { owner: owner.scope(), status, batch })
}

/// Codes matching `filter` (newest first, at most [`LIST_LIMIT`]); a reseller sees the
/// redeemers' emails masked.
pub async fn list(state: &AppState, owner: Owner, filter: &Filter) -> Result<Vec<CodeRow>, CodesError> {
    let rows = db_codes::list(state.db().pool(), filter, now_ms(), LIST_LIMIT).await?;
    Ok(mask(owner, rows))
}

fn mask(owner: Owner, mut rows: Vec<CodeRow>) -> Vec<CodeRow> {
    if let Owner::Reseller(_) = owner {
        for row in &mut rows {
            row.redeemed_by_email = row.redeemed_by_email.as_deref().map(crate::domain::email::mask_email);
        }
    }
    rows
}

/// The batch names of `owner`'s codes (everyone's for an operator).
pub async fn batches(state: &AppState, owner: Owner) -> Result<Vec<String>, CodesError> {
    Ok(db_codes::batches(state.db().pool(), owner.scope()).await?)
}

/// The codes matching `filter` as CSV (an audit row records the export: it reveals codes).
pub async fn export_csv(state: &AppState, actor: &Actor, owner: Owner, filter: &Filter) -> Result<String, CodesError> {
    let rows = mask(owner, db_codes::list(state.db().pool(), filter, now_ms(), EXPORT_LIMIT).await?);
    let mut out = String::from("id,code,batch,value,status,redeemed_by,redeemed_at,expires_at,created_at\r\n");
    let day = |t: Option<i64>| t.map(utc_time).unwrap_or_default();
    for r in &rows {
        let fields = [
            r.id.to_string(),
            r.code.clone(),
            r.batch_name.clone(),
            Money(r.amount).to_string(),
            r.status.clone(),
            r.redeemed_by_email.clone().unwrap_or_default(),
            day(r.redeemed_at),
            day(r.expires_at),
            utc_time(r.created_at),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    let details = json!({
        "status": filter.status.map(|s| s.as_str()), "batch": filter.batch, "rows": rows.len(),
    });
    audit::record(state, actor, "codes.export", ("code_batch", filter.batch.as_deref().unwrap_or("*")), details).await;
    Ok(out)
}

fn utc_time(ms: i64) -> String {
    let day = utc_day(ms);
    let in_day = ms.rem_euclid(DAY_MS) / 1000;
    format!("{day} {:02}:{:02}:{:02}", in_day / 3600, in_day / 60 % 60, in_day % 60)
}

/// One CSV field: quoted when needed, and a leading `= + - @` defused so a spreadsheet never
/// runs a batch name as a formula.
pub(crate) fn csv_field(value: &str) -> String {
    let value =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_string() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

/// What a void did.
#[derive(Debug, serde::Serialize)]
pub struct VoidResult {
    pub voided: usize,
    /// Refunded to the codes' payers (resellers).
    #[serde(serialize_with = "crate::domain::money::as_decimal")]
    pub refunded: i64,
}

/// Voids one unused code; a reseller's is refunded to them, exactly once.
pub async fn void_one(state: &AppState, actor: &Actor, owner: Owner, id: i64) -> Result<VoidResult, CodesError> {
    let voided = billing::codes::void(state.db(), owner.scope(), Some(id), None).await?;
    if voided.is_empty() {
        return if db_codes::exists(state.db().writer(), owner.scope(), id).await? {
            Err(CodesError::NotUnused)
        } else {
            Err(CodesError::NotFound)
        };
    }
    let refunded = voided.iter().map(|c| c.paid).sum();
    audit::record(state, actor, "code.void", ("code", &id.to_string()), json!({ "refunded": refunded })).await;
    Ok(VoidResult { voided: voided.len(), refunded })
}

/// Voids every unused code of a batch (of `owner`'s codes); refunds as [`void_one`].
pub async fn void_batch(state: &AppState, actor: &Actor, owner: Owner, batch: &str) -> Result<VoidResult, CodesError> {
    let batch = batch.trim();
    if batch.is_empty() {
        return Err(CodesError::Invalid("Batch: choose the batch to void.".into()));
    }
    let voided = billing::codes::void(state.db(), owner.scope(), None, Some(batch)).await?;
    let refunded = voided.iter().map(|c| c.paid).sum();
    let details = json!({ "voided": voided.len(), "refunded": refunded });
    audit::record(state, actor, "codes.void_batch", ("code_batch", batch), details).await;
    Ok(VoidResult { voided: voided.len(), refunded })
}

/// A transfer request, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct TransferInput {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub amount: String,
}

/// Moves `amount` from the reseller to the account with `email` (debit and credit in one
/// transaction); the reseller's new balance.
pub async fn transfer(state: &AppState, actor: &Actor, from: i64, input: &TransferInput) -> Result<i64, CodesError> {
    let email = Email::parse(input.email.trim())
        .map_err(|_| CodesError::Invalid("Email: the address of the account to credit.".into()))?;
    let amount = Money::parse(&input.amount)
        .ok()
        .map(Money::nanos)
        .filter(|a| *a > 0)
        .ok_or_else(|| CodesError::Invalid("Amount: more than 0, like 10.00.".into()))?;
    let to = users::id_by_email(state.db().pool(), &email)
        .await?
        .ok_or_else(|| CodesError::Invalid("There is no account with that email.".into()))?;
    if to == from {
        return Err(CodesError::Invalid("You cannot transfer to yourself.".into()));
    }
    let sender = users::summary(state.db().pool(), from).await?.ok_or(CodesError::NotFound)?;
    if Role::parse(&sender.role) != Some(Role::Reseller) {
        return Err(CodesError::Invalid("Only resellers transfer balance.".into()));
    }
    let masked_to = crate::domain::email::mask_email(email.as_str());
    let reference = format!("transfer:{}", token::random_alphanumeric(12));
    let note_from = format!("Transfer to {masked_to}");
    let note_to = format!("Transfer from {}", crate::domain::email::mask_email(&sender.email));
    let transfer =
        billing::codes::Transfer { from, to, amount, reference: &reference, note_from: &note_from, note_to: &note_to };
    let balance = billing::codes::transfer(state.db(), &transfer).await?;
    audit::record(
        state,
        actor,
        "balance.transfer",
        ("user", &to.to_string()),
        json!({ "amount": amount, "to": masked_to }),
    )
    .await;
    Ok(balance)
}

/// One invitee of a reseller, email masked.
#[derive(Debug, serde::Serialize)]
pub struct Invitee {
    pub email: String,
    pub joined_at: i64,
    /// The reward this signup earned the reseller (0 until the invitee confirms their email).
    #[serde(serialize_with = "crate::domain::money::as_decimal")]
    pub reward: i64,
    pub rewarded: bool,
}

/// The reseller's invitees and the total of rewards paid.
pub async fn invitees(state: &AppState, user_id: i64) -> Result<(Vec<Invitee>, i64), CodesError> {
    let rows = crate::db::invitations::invitees_with_rewards(state.db().pool(), user_id).await?;
    let earned = crate::db::invitations::earned(state.db().pool(), user_id).await?;
    let invitees = rows
        .into_iter()
        .map(|(email, joined_at, reward, rewarded_at)| Invitee {
            email: crate::domain::email::mask_email(&email),
            joined_at,
            reward: if rewarded_at.is_some() { reward } else { 0 },
            rewarded: rewarded_at.is_some(),
        })
        .collect();
    Ok((invitees, earned))
}

/// Redeems `code` for the user: the amount credited and the new balance.
pub async fn redeem(state: &AppState, user_id: i64, code: &str) -> Result<(i64, i64), crate::billing::RedeemError> {
    crate::billing::redeem(state.db(), user_id, code).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
    }

    #[test]
    fn input_is_checked() {
        let ok = GenerateInput { name: "Promo".into(), amount: "5".into(), count: 3, ..Default::default() };
        assert!(check(&ok).is_ok());
        let bad = |f: fn(&mut GenerateInput)| {
            let mut i = GenerateInput { name: "Promo".into(), amount: "5".into(), count: 3, ..Default::default() };
            f(&mut i);
            check(&i).is_err()
        };
        assert!(bad(|i| i.name = " ".into()));
        assert!(bad(|i| i.amount = "0".into()));
        assert!(bad(|i| i.amount = "abc".into()));
        assert!(bad(|i| i.count = 0));
        assert!(bad(|i| i.count = MAX_COUNT + 1));
        assert!(bad(|i| i.prefix = "no spaces".into()));
        assert!(bad(|i| i.expires = "2001-01-01".into()));
    }
}

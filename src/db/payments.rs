//! Queries on `payments` and `webhook_events`. The state changes are conditional single-statement
//! UPDATEs (`… WHERE status = 'pending'`), so of any number of concurrent deliveries exactly one
//! moves a payment; `services::payments` runs them inside the transaction that moves the
//! balance. Nothing here touches a balance.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::domain::time::now_ms;

/// A payment as the history pages and the webhook see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Payment {
    pub id: i64,
    pub user_id: i64,
    pub email: String,
    pub session_id: Option<String>,
    pub payment_intent: Option<String>,
    /// Site-currency nano-units credited when paid.
    #[serde(serialize_with = "crate::domain::money::as_decimal")]
    pub credit: i64,
    /// Minor units of `currency` charged.
    pub charge: i64,
    pub currency: String,
    pub status: String,
    /// Minor units refunded so far.
    pub refunded: i64,
    #[serde(serialize_with = "crate::domain::money::as_decimal")]
    pub unrecovered_credit: i64,
    pub failure_reason: Option<String>,
    /// A Stripe dispute of the charge: `open`, `won` or `lost`.
    pub dispute_status: Option<String>,
    /// Minor units disputed.
    pub disputed_amount: i64,
    #[serde(skip)]
    pub checkout_url: Option<String>,
    pub created_at: i64,
    pub paid_at: Option<i64>,
}

const COLUMNS: &str = "p.id, p.user_id, u.email, p.provider_session_id, p.provider_payment_id, p.credit_amount, \
     p.charge_amount, p.charge_currency, p.status, p.refunded_amount, p.unrecovered_credit, p.failure_reason, \
     p.checkout_url, p.created_at, p.paid_at, p.dispute_status, p.disputed_amount";

fn decode(r: &AnyRow) -> Result<Payment, sqlx::Error> {
    Ok(Payment {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        email: r.try_get("email")?,
        session_id: r.try_get("provider_session_id")?,
        payment_intent: r.try_get("provider_payment_id")?,
        credit: r.try_get("credit_amount")?,
        charge: r.try_get("charge_amount")?,
        currency: r.try_get("charge_currency")?,
        status: r.try_get("status")?,
        refunded: r.try_get("refunded_amount")?,
        unrecovered_credit: r.try_get("unrecovered_credit")?,
        failure_reason: r.try_get("failure_reason")?,
        checkout_url: r.try_get("checkout_url")?,
        created_at: r.try_get("created_at")?,
        paid_at: r.try_get("paid_at")?,
        dispute_status: r.try_get("dispute_status")?,
        disputed_amount: r.try_get("disputed_amount")?,
    })
}

/// Writes a pending Stripe payment (before its Checkout Session exists); its id.
pub async fn insert_pending<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
    credit: i64,
    charge: i64,
    currency: &str,
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO payments (user_id, provider, credit_amount, charge_amount, charge_currency, status, created_at, updated_at) \
         VALUES ($1, 'stripe', $2, $3, $4, 'pending', $5, $5) RETURNING id",
    )
    .bind(user_id)
    .bind(credit)
    .bind(charge)
    .bind(currency)
    .bind(now)
    .fetch_one(db)
    .await?
    .try_get("id")
}

/// Stores the Checkout Session opened for a pending payment.
pub async fn set_session<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
    session_id: &str,
    url: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payments SET provider_session_id = $2, checkout_url = $3, updated_at = $4 \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(session_id)
    .bind(url)
    .bind(now_ms())
    .execute(db)
    .await
    .map(|_| ())
}

/// Moves a pending payment to `failed` or `expired` with a reason; false when it was not pending.
pub async fn end_pending<'e>(
    db: impl Executor<'e, Database = Any>,
    id: i64,
    status: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE payments SET status = $2, failure_reason = $3, checkout_url = NULL, updated_at = $4 \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get<'e>(db: impl Executor<'e, Database = Any>, id: i64) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM payments p JOIN users u ON u.id = p.user_id WHERE p.id = $1");
    sqlx::query(&sql).bind(id).fetch_optional(db).await?.as_ref().map(decode).transpose()
}

/// The Stripe payment whose PaymentIntent is `intent`.
pub async fn by_payment_intent<'e>(
    db: impl Executor<'e, Database = Any>,
    intent: &str,
) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payments p JOIN users u ON u.id = p.user_id \
         WHERE p.provider = 'stripe' AND p.provider_payment_id = $1"
    );
    sqlx::query(&sql).bind(intent).fetch_optional(db).await?.as_ref().map(decode).transpose()
}

/// What a listing shows: one user's payments, or everyone's filtered by email and status.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub user_id: Option<i64>,
    /// A part of the payer's email.
    pub email: Option<String>,
    pub status: Option<String>,
    /// Only payments with a smaller id (the next page).
    pub before: Option<i64>,
}

/// Payments matching `filter`, newest first.
pub async fn list<'e>(
    db: impl Executor<'e, Database = Any>,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<Payment>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM payments p JOIN users u ON u.id = p.user_id \
         WHERE ($1 IS NULL OR p.user_id = $1) AND ($2 IS NULL OR LOWER(u.email) LIKE $2 ESCAPE '\\') \
         AND ($3 IS NULL OR p.status = $3) AND ($4 IS NULL OR p.id < $4) ORDER BY p.id DESC LIMIT $5"
    );
    let pattern = filter.email.as_deref().map(crate::db::all_logs::contains_pattern);
    let rows = sqlx::query(&sql)
        .bind(filter.user_id)
        .bind(pattern)
        .bind(filter.status.as_deref())
        .bind(filter.before)
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(decode).collect()
}

/// Records a webhook event's id; false when it was already recorded (a replay). Run inside the
/// transaction that acts on the event: the unique key is the exactly-once guarantee.
pub async fn record_event(conn: &mut AnyConnection, event_id: &str, kind: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, event_type, received_at) VALUES ('stripe', $1, $2, $3) \
         ON CONFLICT (provider, event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(kind)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a pending payment paid if the Checkout Session matches it exactly: `(user id, credit)`,
/// or `None` when no pending payment matches (already paid, another session, another amount).
pub async fn claim_paid(
    conn: &mut AnyConnection,
    id: i64,
    session_id: &str,
    charge: i64,
    currency: &str,
    payment_intent: Option<&str>,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE payments SET status = 'paid', paid_at = $6, updated_at = $6, checkout_url = NULL, \
         provider_payment_id = $5 \
         WHERE id = $1 AND status = 'pending' AND provider = 'stripe' AND provider_session_id = $2 \
         AND charge_amount = $3 AND charge_currency = $4 RETURNING user_id, credit_amount",
    )
    .bind(id)
    .bind(session_id)
    .bind(charge)
    .bind(currency)
    .bind(payment_intent)
    .bind(now)
    .fetch_optional(conn)
    .await?
    .map(|r| Ok((r.try_get("user_id")?, r.try_get("credit_amount")?)))
    .transpose()
}

/// Moves a paid payment's refunded total from `before` to `now` (conditional on `before`, so two
/// deliveries cannot both take it) and adds what could not be taken back.
pub async fn record_refund(
    conn: &mut AnyConnection,
    id: i64,
    before: i64,
    now: i64,
    fully: bool,
    unrecovered: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE payments SET refunded_amount = $3, status = $4, unrecovered_credit = unrecovered_credit + $5, \
         updated_at = $6 WHERE id = $1 AND refunded_amount = $2 AND status IN ('paid', 'partially_refunded')",
    )
    .bind(id)
    .bind(before)
    .bind(now)
    .bind(if fully { "refunded" } else { "partially_refunded" })
    .bind(unrecovered)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many of the user's payments created since `since` are still pending.
pub async fn pending_since<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
    since: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM payments WHERE user_id = $1 AND status = 'pending' AND created_at >= $2")
        .bind(user_id)
        .bind(since)
        .fetch_one(db)
        .await?
        .try_get("n")
}

/// Whether the user had a paid top-up before this one (the inviter's reward is for the first).
pub async fn paid_before(conn: &mut AnyConnection, user_id: i64, payment_id: i64) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM payments WHERE user_id = $1 AND id <> $2 \
         AND status IN ('paid', 'refunded', 'partially_refunded')",
    )
    .bind(user_id)
    .bind(payment_id)
    .fetch_one(conn)
    .await?
    .try_get("n")?;
    Ok(n > 0)
}

/// Records a dispute of a paid payment (one per charge), as `status` (`open`, or `won`/`lost` when
/// its close arrives first); false when the payment already has one or was never paid.
pub async fn open_dispute(
    conn: &mut AnyConnection,
    id: i64,
    dispute_id: &str,
    amount: i64,
    status: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE payments SET dispute_id = $2, disputed_amount = $3, dispute_status = $4, updated_at = $5 \
         WHERE id = $1 AND dispute_id IS NULL AND status IN ('paid', 'partially_refunded', 'refunded')",
    )
    .bind(id)
    .bind(dispute_id)
    .bind(amount)
    .bind(status)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a dispute took back: the credit taken, and what could not be (added to the payment's
/// unrecovered credit).
pub async fn record_dispute_take(
    conn: &mut AnyConnection,
    id: i64,
    taken: i64,
    unrecovered: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payments SET dispute_taken = $2, dispute_unrecovered = $3, \
         unrecovered_credit = unrecovered_credit + $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(taken)
    .bind(unrecovered)
    .bind(now_ms())
    .execute(conn)
    .await
    .map(|_| ())
}

/// Closes an open dispute as `won` or `lost`; `(credit taken, unrecovered)` when it was open,
/// `None` otherwise. A won dispute no longer counts its shortfall as unrecovered.
pub async fn close_dispute(
    conn: &mut AnyConnection,
    id: i64,
    dispute_id: &str,
    won: bool,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query(
        "UPDATE payments SET dispute_status = $3, updated_at = $4, \
         unrecovered_credit = CASE WHEN $3 = 'won' THEN unrecovered_credit - dispute_unrecovered \
                                   ELSE unrecovered_credit END \
         WHERE id = $1 AND dispute_id = $2 AND dispute_status = 'open' \
         RETURNING CAST(dispute_taken AS BIGINT) AS taken, CAST(dispute_unrecovered AS BIGINT) AS unrecovered",
    )
    .bind(id)
    .bind(dispute_id)
    .bind(if won { "won" } else { "lost" })
    .bind(now_ms())
    .fetch_optional(conn)
    .await?
    .map(|r| Ok((r.try_get("taken")?, r.try_get("unrecovered")?)))
    .transpose()
}

/// The payment's dispute: `(dispute id, status)`, if it has one.
pub async fn dispute_of(conn: &mut AnyConnection, id: i64) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query("SELECT dispute_id, dispute_status FROM payments WHERE id = $1 AND dispute_id IS NOT NULL")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| Ok((r.try_get("dispute_id")?, r.try_get("dispute_status")?)))
        .transpose()
}

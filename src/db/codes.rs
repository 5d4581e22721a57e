//! Queries on `redemption_codes`: insert a batch, list with filters, void. Money moves in
//! `billing::codes`, which runs these inside its transactions; nothing here touches a
//! balance.

use sqlx::{Any, AnyConnection, Executor, Row};

/// The status filter of a listing. `Expired` is not stored: it is an unused code past its expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Unused,
    Used,
    Disabled,
    Expired,
}

impl StatusFilter {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unused" => Some(Self::Unused),
            "used" => Some(Self::Used),
            "disabled" | "voided" => Some(Self::Disabled),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unused => "unused",
            Self::Used => "used",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
        }
    }
}

/// One new code.
pub struct NewCode<'a> {
    pub code: &'a str,
    pub batch_name: &'a str,
    pub amount: i64,
    pub paid: i64,
    pub created_by: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

/// Inserts the codes (a unique violation on `code` fails the whole transaction).
pub async fn insert_many(conn: &mut AnyConnection, codes: &[NewCode<'_>]) -> Result<(), sqlx::Error> {
    for (chunk, values) in crate::db::insert_chunks(conn, codes, 7) {
        let sql = format!(
            "INSERT INTO redemption_codes (code, batch_name, amount, paid, created_by, expires_at, created_at) \
             VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for c in chunk {
            query = query
                .bind(c.code)
                .bind(c.batch_name)
                .bind(c.amount)
                .bind(c.paid)
                .bind(c.created_by)
                .bind(c.expires_at)
                .bind(c.created_at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A code as listed, with its redeemer's email (unmasked: callers mask it for resellers).
#[derive(Clone, Debug, serde::Serialize)]
pub struct CodeRow {
    pub id: i64,
    pub code: String,
    pub batch_name: String,
    #[serde(serialize_with = "crate::domain::money::as_decimal")]
    pub amount: i64,
    #[serde(serialize_with = "crate::domain::money::as_decimal")]
    pub paid: i64,
    /// `unused`, `used`, `disabled` or `expired` (an unused code past its expiry).
    pub status: String,
    pub created_by: Option<i64>,
    pub redeemed_by_email: Option<String>,
    pub redeemed_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

/// Which codes to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this creator's codes (a reseller's own); `None`: everyone's.
    pub owner: Option<i64>,
    pub status: Option<StatusFilter>,
    /// Exact batch name.
    pub batch: Option<String>,
}

const SELECT: &str = "SELECT c.id, c.code, c.batch_name, c.amount, c.paid, c.status, c.created_by, u.email, \
     c.redeemed_at, c.expires_at, c.created_at FROM redemption_codes c LEFT JOIN users u ON u.id = c.redeemed_by";

/// Codes matching `filter`, newest first, at most `limit`.
pub async fn list<'e>(
    db: impl Executor<'e, Database = Any>,
    filter: &Filter,
    now: i64,
    limit: i64,
) -> Result<Vec<CodeRow>, sqlx::Error> {
    // Every condition is always present and switched off by a NULL parameter, so the statement
    // text never changes (one prepared statement, no SQL built from input).
    let status = filter.status.map(StatusFilter::as_str);
    let sql = format!(
        "{SELECT} WHERE ($1 IS NULL OR c.created_by = $1) AND ($2 IS NULL OR c.batch_name = $2) AND ( \
           $3 IS NULL \
           OR ($3 = 'unused' AND c.status = 'unused' AND (c.expires_at IS NULL OR c.expires_at > $4)) \
           OR ($3 = 'expired' AND c.status = 'unused' AND c.expires_at IS NOT NULL AND c.expires_at <= $4) \
           OR ($3 IN ('used', 'disabled') AND c.status = $3)) \
         ORDER BY c.id DESC LIMIT $5"
    );
    let rows = sqlx::query(&sql)
        .bind(filter.owner)
        .bind(filter.batch.as_deref())
        .bind(status)
        .bind(now)
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(|r| row(r, now)).collect()
}

fn row(r: &sqlx::any::AnyRow, now: i64) -> Result<CodeRow, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let expires_at: Option<i64> = r.try_get("expires_at")?;
    let status =
        if status == "unused" && expires_at.is_some_and(|t| t <= now) { "expired".to_string() } else { status };
    Ok(CodeRow {
        id: r.try_get("id")?,
        code: r.try_get("code")?,
        batch_name: r.try_get("batch_name")?,
        amount: r.try_get("amount")?,
        paid: r.try_get("paid")?,
        status,
        created_by: r.try_get("created_by")?,
        redeemed_by_email: r.try_get("email")?,
        redeemed_at: r.try_get("redeemed_at")?,
        expires_at,
        created_at: r.try_get("created_at")?,
    })
}

/// The batch names in use (of one owner, or everyone's), for the filter's choices.
pub async fn batches<'e>(
    db: impl Executor<'e, Database = Any>,
    owner: Option<i64>,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT batch_name, MAX(id) AS last FROM redemption_codes WHERE ($1 IS NULL OR created_by = $1) \
         GROUP BY batch_name ORDER BY last DESC LIMIT 200",
    )
    .bind(owner)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| r.try_get("batch_name")).collect()
}

/// A voided code: who paid for it and how much (to refund).
pub struct Voided {
    pub id: i64,
    pub paid: i64,
    pub created_by: Option<i64>,
}

/// Voids unused codes — the one with `id`, or every unused one of `batch` — of `owner` (or
/// anyone's). A single conditional UPDATE, so a code is voided (and refunded) exactly once
/// whatever races with it, and a used code is never voided.
pub async fn void(
    conn: &mut AnyConnection,
    owner: Option<i64>,
    id: Option<i64>,
    batch: Option<&str>,
) -> Result<Vec<Voided>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE redemption_codes SET status = 'disabled' \
         WHERE status = 'unused' AND ($1 IS NULL OR created_by = $1) AND ($2 IS NULL OR id = $2) \
         AND ($3 IS NULL OR batch_name = $3) RETURNING id, paid, created_by",
    )
    .bind(owner)
    .bind(id)
    .bind(batch)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok(Voided { id: r.try_get("id")?, paid: r.try_get("paid")?, created_by: r.try_get("created_by")? }))
        .collect()
}

/// Whether a code with `id` exists for `owner` (or at all), to tell "not yours / no such code"
/// (404) from "not unused any more" (409).
pub async fn exists<'e>(
    db: impl Executor<'e, Database = Any>,
    owner: Option<i64>,
    id: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 FROM redemption_codes WHERE id = $1 AND ($2 IS NULL OR created_by = $2)")
        .bind(id)
        .bind(owner)
        .fetch_optional(db)
        .await?
        .is_some())
}

/// Claims an unused, unexpired code for `user_id` at `now` (`… WHERE status = 'unused'`, so
/// exactly one of any number of concurrent claims wins); `(code id, amount)` when this call won.
/// The caller credits the amount in the same transaction.
pub async fn claim(
    conn: &mut AnyConnection,
    user_id: i64,
    code: &str,
    now: i64,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query(
        "UPDATE redemption_codes SET status = 'used', redeemed_by = $1, redeemed_at = $2 \
         WHERE code = $3 AND status = 'unused' AND (expires_at IS NULL OR expires_at > $2) RETURNING id, amount",
    )
    .bind(user_id)
    .bind(now)
    .bind(code)
    .fetch_optional(conn)
    .await?
    .map(|r| Ok((r.try_get("id")?, r.try_get("amount")?)))
    .transpose()
}

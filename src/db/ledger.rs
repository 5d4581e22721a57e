//! The money statements: balance changes and ledger rows. Callers (the billing module) run them
//! inside one transaction so a balance never changes without its ledger row. Every debit is a
//! conditional single-statement UPDATE, atomic on both engines, so races cannot overdraw.

use sqlx::{AnyConnection, Executor, Row};

use crate::domain::time::now_ms;

/// The kinds of ledger rows (`ledger.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Topup,
    Redemption,
    InvitationReward,
    WelcomeCredit,
    Hold,
    Settle,
    Refund,
    Adjustment,
    /// A shortfall recorded as debt (amount 0: the money never existed; `users.debt` holds it).
    Debt,
    /// Debt paid from a credit (amount negative, written right after the credit's own row).
    DebtPaid,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Topup => "topup",
            Kind::Redemption => "redemption",
            Kind::InvitationReward => "invitation_reward",
            Kind::WelcomeCredit => "welcome_credit",
            Kind::Hold => "hold",
            Kind::Settle => "settle",
            Kind::Refund => "refund",
            Kind::Adjustment => "adjustment",
            Kind::Debt => "debt",
            Kind::DebtPaid => "debt_paid",
        }
    }
}

/// One ledger row to write.
pub struct Entry<'a> {
    pub user_id: i64,
    pub kind: Kind,
    pub amount: i64,
    pub balance_after: i64,
    pub reference: Option<&'a str>,
    pub note: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

pub async fn insert(conn: &mut AnyConnection, e: &Entry<'_>) -> Result<(), sqlx::Error> {
    insert_many(conn, std::slice::from_ref(e)).await
}

/// Inserts many rows in few statements (group commit). A credit (a row with a positive amount)
/// first pays its user's debt, if any, in the same transaction: every way money comes in (top-up,
/// redemption, operator's credit, reward, refund of codes, a won dispute) writes its row here,
/// so none can forget to.
pub async fn insert_many(conn: &mut AnyConnection, entries: &[Entry<'_>]) -> Result<(), sqlx::Error> {
    insert_rows(conn, entries).await?;
    let mut credited: Vec<i64> = entries.iter().filter(|e| e.amount > 0).map(|e| e.user_id).collect();
    credited.sort_unstable();
    credited.dedup();
    for user_id in credited {
        pay_debt(conn, user_id).await?;
    }
    Ok(())
}

async fn insert_rows(conn: &mut AnyConnection, entries: &[Entry<'_>]) -> Result<(), sqlx::Error> {
    let now = now_ms();
    for (chunk, values) in crate::db::insert_chunks(conn, entries, 8) {
        let sql = format!(
            "INSERT INTO ledger (user_id, kind, amount, balance_after, reference, note, idempotency_key, created_at) \
             VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for e in chunk {
            query = query
                .bind(e.user_id)
                .bind(e.kind.as_str())
                .bind(e.amount)
                .bind(e.balance_after)
                .bind(e.reference)
                .bind(e.note)
                .bind(e.idempotency_key)
                .bind(now);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Debits `amount` only if the unreserved balance (not leased to a gateway process, see
/// [`super::leases`]) covers it; the new balance, or `None` when it does not.
pub async fn debit_if_covered(conn: &mut AnyConnection, user_id: i64, amount: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("UPDATE users SET balance = balance - $1 WHERE id = $2 AND balance - leased >= $1 RETURNING balance")
        .bind(amount)
        .bind(user_id)
        .fetch_optional(conn)
        .await?
        .map(|r| r.try_get("balance"))
        .transpose()
}

/// Credits `amount` (≥ 0); the new balance, or `None` when the user does not exist.
pub async fn credit(conn: &mut AnyConnection, user_id: i64, amount: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("UPDATE users SET balance = balance + $1 WHERE id = $2 RETURNING balance")
        .bind(amount)
        .bind(user_id)
        .fetch_optional(conn)
        .await?
        .map(|r| r.try_get("balance"))
        .transpose()
}

/// Debits as much of `amount` as the unreserved balance holds (never below zero):
/// `(taken, new balance)`.
pub async fn debit_up_to(conn: &mut AnyConnection, user_id: i64, amount: i64) -> Result<(i64, i64), sqlx::Error> {
    if let Some(balance) = debit_if_covered(conn, user_id, amount).await? {
        return Ok((amount, balance));
    }
    // Not covered: take what is there. Retried because a concurrent debit may move the balance.
    for _ in 0..5 {
        let free: i64 = sqlx::query("SELECT balance - leased AS free_balance FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&mut *conn)
            .await?
            .try_get("free_balance")?;
        let take = free.clamp(0, amount);
        if let Some(balance) = debit_if_covered(conn, user_id, take).await? {
            return Ok((take, balance));
        }
    }
    let current: i64 = sqlx::query("SELECT balance FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get("balance")?;
    Ok((0, current))
}

/// Why an account is flagged while it owes a debt; cleared with the debt (an operator's flag
/// set for another reason stays).
pub const DEBT_FLAG: &str = "Unpaid balance: a request cost more than the balance could pay (debt).";

/// Records a shortfall as debt (`users.debt`) and flags the account unless it already is. The
/// caller writes the `debt` ledger row (amount 0) in the same transaction.
pub async fn add_debt(conn: &mut AnyConnection, user_id: i64, amount: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET debt = debt + $1, flag = COALESCE(flag, $2), updated_at = $3 WHERE id = $4")
        .bind(amount)
        .bind(DEBT_FLAG)
        .bind(now_ms())
        .bind(user_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Pays as much of the user's debt as the unreserved balance holds, with a `debt_paid` row
/// (amount negative); clears the debt flag once the debt is paid in full. What was paid.
pub async fn pay_debt(conn: &mut AnyConnection, user_id: i64) -> Result<i64, sqlx::Error> {
    // Retried because a concurrent debit may move the balance between the read and the update.
    for _ in 0..5 {
        let Some(row) =
            sqlx::query("SELECT debt, balance - leased AS free_balance FROM users WHERE id = $1 AND debt > 0")
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await?
        else {
            return Ok(0);
        };
        let (debt, free): (i64, i64) = (row.try_get("debt")?, row.try_get("free_balance")?);
        let pay = free.clamp(0, debt);
        if pay == 0 {
            return Ok(0);
        }
        let paid = sqlx::query(
            "UPDATE users SET balance = balance - $1, debt = debt - $1, \
               flag = CASE WHEN debt = $1 AND flag = $3 THEN NULL ELSE flag END \
             WHERE id = $2 AND debt >= $1 AND balance - leased >= $1 RETURNING balance",
        )
        .bind(pay)
        .bind(user_id)
        .bind(DEBT_FLAG)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = paid else { continue };
        let balance_after: i64 = row.try_get("balance")?;
        let entry = Entry {
            user_id,
            kind: Kind::DebtPaid,
            amount: -pay,
            balance_after,
            reference: None,
            note: Some("Unpaid balance settled from this credit"),
            idempotency_key: None,
        };
        insert_rows(conn, std::slice::from_ref(&entry)).await?;
        return Ok(pay);
    }
    Ok(0)
}

/// The user's unreserved balance (not leased to any gateway process): `None` for an unknown
/// user, `Some(Err(debt))` while the user owes a debt.
pub async fn unreserved<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    user_id: i64,
) -> Result<Option<Result<i64, i64>>, sqlx::Error> {
    let row = sqlx::query("SELECT balance - leased AS free_balance, debt FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        let (free, debt): (i64, i64) = (r.try_get("free_balance")?, r.try_get("debt")?);
        Ok(if debt > 0 { Err(debt) } else { Ok(free.max(0)) })
    })
    .transpose()
}

/// What the user owes (0 when nothing).
pub async fn debt<'e>(db: impl Executor<'e, Database = sqlx::Any>, user_id: i64) -> Result<i64, sqlx::Error> {
    Ok(sqlx::query("SELECT debt FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await?
        .map(|r| r.try_get("debt"))
        .transpose()?
        .unwrap_or(0))
}

/// Adds `amount` to a key's spend if it stays within the key's limit and, for a key with a
/// budget, within what is left of the budget in the window starting at `window` (unix ms); false
/// when it would not. A later window starts the budget's count again; a hold computed for an
/// earlier window than the stored one (a replica's clock behind) counts in the stored one.
pub async fn key_spend_within_limit(
    conn: &mut AnyConnection,
    key_id: i64,
    amount: i64,
    window: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api_keys SET spent = spent + $1, \
           budget_spent = CASE WHEN budget IS NULL THEN budget_spent \
             WHEN budget_window >= $3 THEN budget_spent + $1 ELSE $1 END, \
           budget_window = CASE WHEN budget IS NULL OR budget_window >= $3 THEN budget_window ELSE $3 END \
         WHERE id = $2 AND (spend_limit IS NULL OR spent + $1 <= spend_limit) \
           AND (budget IS NULL OR (CASE WHEN budget_window >= $3 THEN budget_spent ELSE 0 END) + $1 <= budget)",
    )
    .bind(amount)
    .bind(key_id)
    .bind(window)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves a key's spend by `delta`, clamped to `[0, spend_limit]`, and stamps its last use when
/// `used` (a settlement, not a lease's return). Of `by_window` (window start, delta), the budget's
/// count takes the delta of the window it counts (clamped to `[0, budget]`); deltas of windows
/// that have passed change nothing.
pub async fn key_adjust_spent(
    conn: &mut AnyConnection,
    key_id: i64,
    delta: i64,
    by_window: &[(i64, i64)],
    used: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = CASE WHEN $4 = 1 THEN $3 ELSE last_used_at END, spent = CASE \
           WHEN spent + $1 < 0 THEN 0 \
           WHEN spend_limit IS NOT NULL AND spent + $1 > spend_limit THEN spend_limit \
           ELSE spent + $1 END \
         WHERE id = $2",
    )
    .bind(delta)
    .bind(key_id)
    .bind(now_ms())
    .bind(i64::from(used))
    .execute(&mut *conn)
    .await?;
    for &(window, delta) in by_window.iter().filter(|(window, delta)| *window > 0 && *delta != 0) {
        sqlx::query(
            "UPDATE api_keys SET budget_spent = CASE \
               WHEN budget_spent + $1 < 0 THEN 0 \
               WHEN budget_spent + $1 > budget THEN budget \
               ELSE budget_spent + $1 END \
             WHERE id = $2 AND budget IS NOT NULL AND budget_window = $3",
        )
        .bind(delta)
        .bind(key_id)
        .bind(window)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Adds `amount` to a user's budget count if it stays within `limit` (the user's budget or their
/// group's) in the window starting at `window` (unix ms); false when it would not. A later window
/// starts the count again; an earlier one (a replica's clock behind) counts in the stored one.
pub async fn user_budget_within(
    conn: &mut AnyConnection,
    user_id: i64,
    amount: i64,
    window: i64,
    limit: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET \
           budget_spent = CASE WHEN budget_window >= $3 THEN budget_spent + $1 ELSE $1 END, \
           budget_window = CASE WHEN budget_window >= $3 THEN budget_window ELSE $3 END \
         WHERE id = $2 AND (CASE WHEN budget_window >= $3 THEN budget_spent ELSE 0 END) + $1 <= $4",
    )
    .bind(amount)
    .bind(user_id)
    .bind(window)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves a user's budget count by `delta` (never below 0) if it still counts the window starting
/// at `window`: a settlement's true-up (a window that has passed is left alone).
pub async fn user_budget_adjust(
    conn: &mut AnyConnection,
    user_id: i64,
    window: i64,
    delta: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET budget_spent = CASE WHEN budget_spent + $1 < 0 THEN 0 ELSE budget_spent + $1 END \
         WHERE id = $2 AND budget_window = $3",
    )
    .bind(delta)
    .bind(user_id)
    .bind(window)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn balance<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    user_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT balance FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await?
        .map(|r| r.try_get("balance"))
        .transpose()
}

/// Users whose ledger does not sum to their balance, or whose balance is negative:
/// `(user id, balance, ledger sum)`. Empty when the books are right.
pub async fn inconsistent_users<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
) -> Result<Vec<(i64, i64, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT u.id, u.balance, \
         COALESCE((SELECT CAST(SUM(l.amount) AS BIGINT) FROM ledger l WHERE l.user_id = u.id), 0) AS ledger_sum FROM users u",
    )
    .fetch_all(db)
    .await?;
    let mut bad = Vec::new();
    for r in rows {
        let (id, balance): (i64, i64) = (r.try_get("id")?, r.try_get("balance")?);
        let total: i64 = r.try_get("ledger_sum")?;
        if balance < 0 || balance != total {
            bad.push((id, balance, total));
        }
    }
    Ok(bad)
}

/// The ledger row that claimed an idempotency key: what it did, for comparing a repeated
/// request with the first one and answering it the same way.
pub struct Claim {
    pub user_id: i64,
    pub amount: i64,
    pub note: Option<String>,
    pub balance_after: i64,
}

pub async fn claim<'e>(db: impl Executor<'e, Database = sqlx::Any>, key: &str) -> Result<Option<Claim>, sqlx::Error> {
    let row = sqlx::query("SELECT user_id, amount, note, balance_after FROM ledger WHERE idempotency_key = $1")
        .bind(key)
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        Ok(Claim {
            user_id: r.try_get("user_id")?,
            amount: r.try_get("amount")?,
            note: r.try_get("note")?,
            balance_after: r.try_get("balance_after")?,
        })
    })
    .transpose()
}

/// The row that claimed an idempotency key: `(user, amount, reference)`.
pub async fn keyed<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    key: &str,
) -> Result<Option<(i64, i64, Option<String>)>, sqlx::Error> {
    sqlx::query("SELECT user_id, amount, reference FROM ledger WHERE idempotency_key = $1")
        .bind(key)
        .fetch_optional(db)
        .await?
        .map(|r| Ok((r.try_get("user_id")?, r.try_get("amount")?, r.try_get("reference")?)))
        .transpose()
}

/// A ledger row as its user sees it.
pub struct LedgerRow {
    pub created_at: i64,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub note: Option<String>,
}

/// The user's ledger rows other than per-request charges, newest first.
pub async fn history<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    limit: i64,
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT created_at, kind, amount, balance_after, note FROM ledger \
         WHERE user_id = $1 AND kind <> 'settle' AND kind <> 'hold' ORDER BY id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LedgerRow {
                created_at: r.try_get("created_at")?,
                kind: r.try_get("kind")?,
                amount: r.try_get("amount")?,
                balance_after: r.try_get("balance_after")?,
                note: r.try_get("note")?,
            })
        })
        .collect()
}

/// The user's request charges per UTC day since `since_ms`: `(day number, total charged)`,
/// newest first.
pub async fn charges_per_day<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    since_ms: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT created_at / 86400000 AS day, CAST(SUM(amount) AS BIGINT) AS day_sum FROM ledger \
         WHERE user_id = $1 AND kind = 'settle' AND created_at >= $2 GROUP BY created_at / 86400000 ORDER BY day DESC",
    )
    .bind(user_id)
    .bind(since_ms)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("day")?, r.try_get("day_sum")?))).collect()
}

/// A ledger row as an auditor sees it: every kind, with its id and reference.
pub struct FullRow {
    pub id: i64,
    pub created_at: i64,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub reference: Option<String>,
    pub note: Option<String>,
}

fn full_row(r: &sqlx::any::AnyRow) -> Result<FullRow, sqlx::Error> {
    Ok(FullRow {
        id: r.try_get("id")?,
        created_at: r.try_get("created_at")?,
        kind: r.try_get("kind")?,
        amount: r.try_get("amount")?,
        balance_after: r.try_get("balance_after")?,
        reference: r.try_get("reference")?,
        note: r.try_get("note")?,
    })
}

/// One page of the user's whole ledger (per-request settlements included), newest first: the
/// rows with an id below `before` (all when `None`). Keyset paging, so a page costs the same at
/// any depth and rows written meanwhile never shift a page.
pub async fn page<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<FullRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, created_at, kind, amount, balance_after, reference, note FROM ledger \
         WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(user_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(full_row).collect()
}

/// The sum of the user's ledger rows written before `before_ms`: the balance at that instant
/// as the ledger tells it.
pub async fn sum_before<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    before_ms: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS total FROM ledger WHERE user_id = $1 AND created_at < $2",
    )
    .bind(user_id)
    .bind(before_ms)
    .fetch_one(db)
    .await?
    .try_get("total")
}

/// A ledger row on a statement: the row and, for a per-request settlement, the model asked for.
pub struct StatementRow {
    pub row: FullRow,
    pub model: Option<String>,
}

/// Where a statement's reading stands: the time and id of the last row read.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatementCursor {
    pub created_at: i64,
    pub id: i64,
}

/// The user's ledger rows written in `[from_ms, to_ms)` after `cursor`, in time order (ties by
/// id), at most `limit`: a statement reads a month in such chunks. Keyset on `(created_at, id)`
/// so each chunk starts in the `(user_id, created_at)` index where the last one ended.
pub async fn statement_rows<'e>(
    db: impl Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    (from_ms, to_ms): (i64, i64),
    cursor: Option<StatementCursor>,
    limit: i64,
) -> Result<Vec<StatementRow>, sqlx::Error> {
    let after = cursor.unwrap_or(StatementCursor { created_at: from_ms, id: 0 });
    // A subquery, not a join: a request id names one log row, but nothing in the schema says so.
    let rows = sqlx::query(
        "SELECT l.id, l.created_at, l.kind, l.amount, l.balance_after, l.reference, l.note, \
           CASE WHEN l.kind = 'settle' THEN (SELECT MAX(r.requested_model) FROM request_logs r \
             WHERE r.request_id = l.reference AND r.user_id = l.user_id) END AS model \
         FROM ledger l WHERE l.user_id = $1 AND l.created_at >= $2 AND l.created_at < $3 \
           AND l.created_at >= $4 AND (l.created_at > $4 OR l.id > $5) \
         ORDER BY l.created_at, l.id LIMIT $6",
    )
    .bind(user_id)
    .bind(from_ms)
    .bind(to_ms)
    .bind(after.created_at)
    .bind(after.id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok(StatementRow { row: full_row(r)?, model: r.try_get("model")? })).collect()
}

/// A user whose books are wrong: what `burncloud audit` reports.
#[derive(Debug)]
pub struct Offender {
    pub user_id: i64,
    pub email: String,
    pub balance: i64,
    pub ledger_sum: i64,
    /// What the user's rows in `balance_leases` hold.
    pub leased: i64,
}

/// Every user whose ledger does not sum to the balance, whose leases hold more than the balance,
/// or whose balance is negative, by id; and how many users there are. The check is one
/// statement, so it reads one consistent snapshot on both engines while the gateway writes.
pub async fn audit(pool: &sqlx::AnyPool) -> Result<(Vec<Offender>, i64), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT u.id, u.email, u.balance, COALESCE(l.total, 0) AS ledger_sum, COALESCE(b.held, 0) AS leased_sum FROM users u \
         LEFT JOIN (SELECT user_id, CAST(SUM(amount) AS BIGINT) AS total FROM ledger GROUP BY user_id) l \
           ON l.user_id = u.id \
         LEFT JOIN (SELECT user_id, CAST(SUM(amount) AS BIGINT) AS held FROM balance_leases GROUP BY user_id) b \
           ON b.user_id = u.id \
         WHERE u.balance < 0 OR u.balance <> COALESCE(l.total, 0) OR COALESCE(b.held, 0) > u.balance \
         ORDER BY u.id",
    )
    .fetch_all(pool)
    .await?;
    let offenders = rows
        .iter()
        .map(|r| {
            Ok(Offender {
                user_id: r.try_get("id")?,
                email: r.try_get("email")?,
                balance: r.try_get("balance")?,
                ledger_sum: r.try_get("ledger_sum")?,
                leased: r.try_get("leased_sum")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let users: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(pool).await?.try_get("n")?;
    Ok((offenders, users))
}

//! Budget leases in the database. A lease reserves part of what a key's spend limit and budget,
//! or a user's budget, still allows, for one gateway process (the *holder*), which admits requests
//! against it in memory. Taking one counts it in the owner's `spent` / `budget_spent` with the same
//! conditional update a single hold's reservation makes, so every other process's reservations see
//! it; the row holds what is reserved and not yet charged. A charge shrinks the row (the count
//! already has it); a give-back, or the sweep of a row whose holder stopped renewing it, takes the
//! row's amount off the count again. So a process killed with a lease in hand leaves it counted
//! only until the row expires.
//!
//! Lock order, as for balance leases: the lease row first, then the owner's row.

use sqlx::{AnyConnection, Row};

use super::ledger;

/// Whose budget a lease reserves on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    /// An API key: its lifetime spend limit and its budget per period.
    Key(i64),
    /// A user: their budget per period (their own or their group's).
    User(i64),
}

impl Account {
    fn owner(self) -> &'static str {
        match self {
            Self::Key(_) => "key",
            Self::User(_) => "user",
        }
    }

    fn id(self) -> i64 {
        match self {
            Self::Key(id) | Self::User(id) => id,
        }
    }

    fn from_row(owner: &str, id: i64) -> Option<Self> {
        match owner {
            "key" => Some(Self::Key(id)),
            "user" => Some(Self::User(id)),
            _ => None,
        }
    }
}

/// What [`take`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// This much is reserved for the holder.
    Reserved(i64),
    /// The budget's room is below what was needed.
    Short,
    /// Short, but other holders' leases reserve enough that, given back, it would fit.
    HeldElsewhere,
}

/// SQL for what the holders' leases of an owner reserve, in one window (`Some`) or in all:
/// `id` and `window` are column expressions of the enclosing query. Readers that show a count
/// subtract it, so they show what was charged, not what processes reserved ahead.
pub fn leased_sql(owner: &str, id: &str, window: Option<&str>) -> String {
    let in_window = window.map(|w| format!(" AND bl.budget_window = {w}")).unwrap_or_default();
    format!(
        "COALESCE((SELECT CAST(SUM(bl.amount) AS BIGINT) FROM budget_leases bl \
         WHERE bl.owner = '{owner}' AND bl.owner_id = {id}{in_window}), 0)"
    )
}

/// What the holders' leases of `account` reserve in `window`: the part of its count not yet charged.
pub async fn leased<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    account: Account,
    window: i64,
) -> Result<i64, sqlx::Error> {
    let sum: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(amount) AS BIGINT) FROM budget_leases WHERE owner = $1 AND owner_id = $2 AND budget_window = $3",
    )
    .bind(account.owner())
    .bind(account.id())
    .bind(window)
    .fetch_one(db)
    .await?;
    Ok(sum.unwrap_or(0))
}

/// What the owner still allows in `window` (a user's `limit` is their budget; a key's limits are
/// in its row). `None` for an owner that is gone.
async fn room(conn: &mut AnyConnection, account: Account, window: i64, limit: i64) -> Result<Option<i64>, sqlx::Error> {
    let in_window = |stored: i64, spent: i64| if stored >= window { spent } else { 0 };
    Ok(match account {
        Account::Key(id) => {
            let row = sqlx::query(
                "SELECT spent, spend_limit, budget, budget_window, budget_spent FROM api_keys WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let spend_limit: Option<i64> = row.try_get("spend_limit")?;
            let budget: Option<i64> = row.try_get("budget")?;
            let spent: i64 = row.try_get("spent")?;
            let counted = in_window(row.try_get("budget_window")?, row.try_get("budget_spent")?);
            let by_limit = spend_limit.map_or(i64::MAX, |l| l.saturating_sub(spent));
            let by_budget = budget.map_or(i64::MAX, |b| b.saturating_sub(counted));
            Some(by_limit.min(by_budget))
        }
        Account::User(id) => {
            let row = sqlx::query("SELECT budget_window, budget_spent FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else { return Ok(None) };
            Some(limit.saturating_sub(in_window(row.try_get("budget_window")?, row.try_get("budget_spent")?)))
        }
    })
}

/// Counts `amount` on the owner if it fits: the same conditional update a hold's reservation
/// makes.
async fn reserve(
    conn: &mut AnyConnection,
    account: Account,
    window: i64,
    limit: i64,
    amount: i64,
) -> Result<bool, sqlx::Error> {
    match account {
        Account::Key(id) => ledger::key_spend_within_limit(conn, id, amount, window).await,
        Account::User(id) => ledger::user_budget_within(conn, id, amount, window, limit).await,
    }
}

/// Takes `amount` off the owner's count again, clamped at 0 (in a window that has passed, only a
/// key's lifetime spend moves).
async fn uncount(conn: &mut AnyConnection, account: Account, window: i64, amount: i64) -> Result<(), sqlx::Error> {
    match account {
        Account::Key(id) => ledger::key_adjust_spent(conn, id, -amount, &[(window, -amount)], false).await,
        Account::User(id) => ledger::user_budget_adjust(conn, id, window, -amount).await,
    }
}

/// Reserves up to `size(room)` (at least `need`) of what the owner allows in `window` for
/// `holder`, for `ttl_ms` by the database's clock.
#[allow(clippy::too_many_arguments)]
pub async fn take(
    conn: &mut AnyConnection,
    account: Account,
    window: i64,
    limit: i64,
    holder: &str,
    need: i64,
    size: impl Fn(i64) -> i64,
    ttl_ms: i64,
) -> Result<Taken, sqlx::Error> {
    let upsert = format!(
        "INSERT INTO budget_leases (owner, owner_id, budget_window, holder, amount, expires_at) \
         VALUES ($1, $2, $3, $4, $5, {} + $6) \
         ON CONFLICT (owner, owner_id, budget_window, holder) DO UPDATE \
         SET amount = budget_leases.amount + excluded.amount, expires_at = excluded.expires_at",
        super::leases::clock(conn)
    );
    // The holder's own row before the owner's (see the module's lock order).
    sqlx::query(
        "UPDATE budget_leases SET amount = amount \
         WHERE owner = $1 AND owner_id = $2 AND budget_window = $3 AND holder = $4",
    )
    .bind(account.owner())
    .bind(account.id())
    .bind(window)
    .bind(holder)
    .execute(&mut *conn)
    .await?;
    for _ in 0..5 {
        let Some(room) = room(conn, account, window, limit).await? else { return Ok(Taken::Short) };
        if room < need {
            let elsewhere: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(SUM(amount) AS BIGINT) FROM budget_leases \
                 WHERE owner = $1 AND owner_id = $2 AND budget_window = $3 AND holder <> $4",
            )
            .bind(account.owner())
            .bind(account.id())
            .bind(window)
            .bind(holder)
            .fetch_one(&mut *conn)
            .await?;
            let elsewhere = elsewhere.unwrap_or(0);
            return Ok(if elsewhere > 0 && room.max(0).saturating_add(elsewhere) >= need {
                Taken::HeldElsewhere
            } else {
                Taken::Short
            });
        }
        let amount = size(room).clamp(need, room);
        if !reserve(conn, account, window, limit, amount).await? {
            // A concurrent reservation moved the count (Postgres): look again.
            continue;
        }
        sqlx::query(&upsert)
            .bind(account.owner())
            .bind(account.id())
            .bind(window)
            .bind(holder)
            .bind(amount)
            .bind(ttl_ms)
            .execute(&mut *conn)
            .await?;
        return Ok(Taken::Reserved(amount));
    }
    Ok(Taken::Short)
}

/// Takes `amount` off the holder's lease row (a charge from it); false when the row does not hold
/// that much (it expired and was swept: the count no longer has it).
pub async fn shrink(
    conn: &mut AnyConnection,
    account: Account,
    window: i64,
    holder: &str,
    amount: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE budget_leases SET amount = amount - $1 \
         WHERE owner = $2 AND owner_id = $3 AND budget_window = $4 AND holder = $5 AND amount >= $1",
    )
    .bind(amount)
    .bind(account.owner())
    .bind(account.id())
    .bind(window)
    .bind(holder)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives `amount` of the holder's lease back: off the row, then off the owner's count.
pub async fn give_back(
    conn: &mut AnyConnection,
    account: Account,
    window: i64,
    holder: &str,
    amount: i64,
) -> Result<(), sqlx::Error> {
    if amount > 0 && shrink(conn, account, window, holder, amount).await? {
        uncount(conn, account, window, amount).await?;
    }
    Ok(())
}

/// What a renewal found: the holder's leases as `(account, window, amount)`.
pub async fn renew(
    conn: &mut AnyConnection,
    holder: &str,
    ttl_ms: i64,
) -> Result<Vec<(Account, i64, i64)>, sqlx::Error> {
    sqlx::query("DELETE FROM budget_leases WHERE holder = $1 AND amount = 0").bind(holder).execute(&mut *conn).await?;
    let sql = format!(
        "UPDATE budget_leases SET expires_at = {} + $1 WHERE holder = $2 \
         RETURNING owner, owner_id, budget_window, CAST(amount AS BIGINT) AS lent",
        super::leases::clock(conn)
    );
    let rows = sqlx::query(&sql).bind(ttl_ms).bind(holder).fetch_all(&mut *conn).await?;
    let mut leases = Vec::with_capacity(rows.len());
    for r in &rows {
        let owner: String = r.try_get("owner")?;
        if let Some(account) = Account::from_row(&owner, r.try_get("owner_id")?) {
            leases.push((account, r.try_get("budget_window")?, r.try_get("lent")?));
        }
    }
    Ok(leases)
}

/// Ends the leases that expired by the database's clock, or all of `holder`'s when given (a
/// restart of that holder): their reservations come off the owners' counts. The number ended.
pub async fn end_stale(conn: &mut AnyConnection, holder: Option<&str>) -> Result<usize, sqlx::Error> {
    let sql = format!(
        "DELETE FROM budget_leases WHERE expires_at < {} OR holder = $1 \
         RETURNING owner, owner_id, budget_window, CAST(amount AS BIGINT) AS lent",
        super::leases::clock(conn)
    );
    let rows = sqlx::query(&sql).bind(holder.unwrap_or("")).fetch_all(&mut *conn).await?;
    let mut ended = Vec::with_capacity(rows.len());
    for r in &rows {
        let owner: String = r.try_get("owner")?;
        if let Some(account) = Account::from_row(&owner, r.try_get("owner_id")?) {
            ended.push((account, r.try_get::<i64, _>("budget_window")?, r.try_get::<i64, _>("lent")?));
        }
    }
    // One order for every sweeper: keys, then users, each by id.
    ended.sort_unstable();
    for &(account, window, amount) in &ended {
        uncount(conn, account, window, amount).await?;
    }
    Ok(rows.len())
}

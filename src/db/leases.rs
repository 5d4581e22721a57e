//! Balance leases in the database. A lease reserves part of a user's balance for one gateway
//! process (the *holder*): `balance_leases` has a row per user and holder, and `users.leased` is
//! their sum, kept in the users row so the conditional debits of everybody else
//! (`balance - leased >= amount`) see it under the row lock on both engines. Leases move no money:
//! the balance changes, with its ledger row, only when a request's cost is charged.
//!
//! The holder row is the authority for what a process may still charge: a charge or return first
//! decrements it (`… AND amount >= $n`), and only then `users.leased`, so a lease that expired and
//! was swept by another process can never be spent twice.

use sqlx::{AnyConnection, Row};

/// The database's clock in unix ms, as SQL for `conn`'s engine. Leases expire by it, not by the
/// clock of the process that writes or sweeps them, so replicas whose clocks disagree still agree
/// on which leases are live.
pub(super) fn clock(conn: &AnyConnection) -> &'static str {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    } else {
        "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    }
}

/// The database's clock (unix ms).
pub async fn now_ms(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT {} AS now_ms", clock(conn));
    sqlx::query(&sql).fetch_one(conn).await?.try_get("now_ms")
}

/// What [`take`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// This much is reserved for the holder.
    Reserved(i64),
    /// The unreserved balance is below what was needed.
    Short,
    /// Short, but other holders' leases (other replicas) reserve enough that, given back, the
    /// balance would cover it: worth asking them.
    HeldElsewhere,
    /// The user owes a debt: nothing is lent on the balance until it is paid.
    InDebt,
}

/// Reserves up to `want` (at least `need`) of the user's unreserved balance for `holder`, for
/// `ttl_ms` by the database's clock; never while the user owes a debt (`users.debt > 0`), which
/// is how the gateway learns of a debt without reading the database per request: no lease, no
/// admission. `Err(RowNotFound)` for an unknown user.
pub async fn take(
    conn: &mut AnyConnection,
    user_id: i64,
    holder: &str,
    need: i64,
    size: impl Fn(i64) -> i64,
    ttl_ms: i64,
) -> Result<Taken, sqlx::Error> {
    let upsert = format!(
        "INSERT INTO balance_leases (user_id, holder, amount, expires_at) VALUES ($1, $2, $3, {} + $4) \
         ON CONFLICT (user_id, holder) DO UPDATE \
         SET amount = balance_leases.amount + excluded.amount, expires_at = excluded.expires_at",
        clock(conn)
    );
    // Lock order: the holder's own lease row before the users row, as charges and give-backs
    // (`shrink`, then `users`) and the sweepers take them; the other way round, a take and a
    // charge of the same user could deadlock (seen in the soak). A no-op update takes the lock
    // on both engines.
    sqlx::query("UPDATE balance_leases SET amount = amount WHERE user_id = $1 AND holder = $2")
        .bind(user_id)
        .bind(holder)
        .execute(&mut *conn)
        .await?;
    for _ in 0..5 {
        let row = sqlx::query("SELECT balance - leased AS free_balance, leased, debt FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&mut *conn)
            .await?;
        let (free, leased, debt): (i64, i64, i64) =
            (row.try_get("free_balance")?, row.try_get("leased")?, row.try_get("debt")?);
        if debt > 0 {
            return Ok(Taken::InDebt);
        }
        if free < need {
            let own: Option<i64> =
                sqlx::query_scalar("SELECT amount FROM balance_leases WHERE user_id = $1 AND holder = $2")
                    .bind(user_id)
                    .bind(holder)
                    .fetch_optional(&mut *conn)
                    .await?;
            let elsewhere = leased.saturating_sub(own.unwrap_or(0));
            return Ok(if free.saturating_add(elsewhere) >= need { Taken::HeldElsewhere } else { Taken::Short });
        }
        let amount = size(free).clamp(need, free);
        let reserved =
            sqlx::query("UPDATE users SET leased = leased + $1 WHERE id = $2 AND balance - leased >= $1 AND debt = 0")
                .bind(amount)
                .bind(user_id)
                .execute(&mut *conn)
                .await?;
        if reserved.rows_affected() == 0 {
            // A concurrent debit moved the balance (Postgres): look again.
            continue;
        }
        sqlx::query(&upsert).bind(user_id).bind(holder).bind(amount).bind(ttl_ms).execute(&mut *conn).await?;
        return Ok(Taken::Reserved(amount));
    }
    Ok(Taken::Short)
}

/// Takes `amount` off the holder's lease row; false when the row does not hold that much (it
/// expired and was swept).
async fn shrink(conn: &mut AnyConnection, user_id: i64, holder: &str, amount: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE balance_leases SET amount = amount - $1 WHERE user_id = $2 AND holder = $3 AND amount >= $1",
    )
    .bind(amount)
    .bind(user_id)
    .bind(holder)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Charges `amount` from the holder's lease: the balance and the reservation shrink together.
/// The new balance, or `None` when the lease no longer holds `amount`.
pub async fn charge(
    conn: &mut AnyConnection,
    user_id: i64,
    holder: &str,
    amount: i64,
) -> Result<Option<i64>, sqlx::Error> {
    if !shrink(conn, user_id, holder, amount).await? {
        return Ok(None);
    }
    let balance =
        sqlx::query("UPDATE users SET balance = balance - $1, leased = leased - $1 WHERE id = $2 RETURNING balance")
            .bind(amount)
            .bind(user_id)
            .fetch_one(conn)
            .await?
            .try_get("balance")?;
    Ok(Some(balance))
}

/// Gives `amount` of the holder's lease back to the user's unreserved balance.
pub async fn give_back(conn: &mut AnyConnection, user_id: i64, holder: &str, amount: i64) -> Result<(), sqlx::Error> {
    if shrink(conn, user_id, holder, amount).await? {
        sqlx::query("UPDATE users SET leased = leased - $1 WHERE id = $2")
            .bind(amount)
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM balance_leases WHERE user_id = $1 AND holder = $2 AND amount = 0")
            .bind(user_id)
            .bind(holder)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Ends every lease on the user's balance, whoever holds it (a refund or dispute must take back
/// credit a gateway process reserved); the amount returned to the unreserved balance. A holder
/// whose row is gone charges what the user has instead, and stops promising it at its next
/// renewal ([`renew`] no longer returns the user).
pub async fn end_for_user(conn: &mut AnyConnection, user_id: i64) -> Result<i64, sqlx::Error> {
    let rows = sqlx::query("DELETE FROM balance_leases WHERE user_id = $1 RETURNING CAST(amount AS BIGINT) AS lent")
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut ended = 0i64;
    for row in &rows {
        ended += row.try_get::<i64, _>("lent")?;
    }
    if !rows.is_empty() {
        sqlx::query("UPDATE users SET leased = 0 WHERE id = $1").bind(user_id).execute(conn).await?;
    }
    Ok(ended)
}

/// What a renewal found: the database's clock, and the holder's leases as `(user, amount)`.
pub struct Renewal {
    pub now: i64,
    pub leases: Vec<(i64, i64)>,
}

/// Extends every lease of `holder` to `ttl_ms` past the database's now, and returns them: a lease
/// missing from the answer was ended by someone else (it expired and was swept).
pub async fn renew(conn: &mut AnyConnection, holder: &str, ttl_ms: i64) -> Result<Renewal, sqlx::Error> {
    let now = now_ms(conn).await?;
    let rows = sqlx::query(
        "UPDATE balance_leases SET expires_at = $1 WHERE holder = $2 RETURNING user_id, CAST(amount AS BIGINT) AS lent",
    )
    .bind(now.saturating_add(ttl_ms))
    .bind(holder)
    .fetch_all(&mut *conn)
    .await?;
    let leases =
        rows.iter().map(|r| Ok((r.try_get("user_id")?, r.try_get("lent")?))).collect::<Result<_, sqlx::Error>>()?;
    Ok(Renewal { now, leases })
}

/// Ends the leases that expired by the database's clock (their holder crashed or lost the
/// database), or all of `holder`'s when given (a restart of that holder): their reservations
/// return to the users. The number of leases ended.
pub async fn end_stale(conn: &mut AnyConnection, holder: Option<&str>) -> Result<usize, sqlx::Error> {
    let sql = format!(
        "DELETE FROM balance_leases WHERE expires_at < {} OR holder = $1 RETURNING user_id, CAST(amount AS BIGINT) AS lent",
        clock(conn)
    );
    let rows = sqlx::query(&sql).bind(holder.unwrap_or("")).fetch_all(&mut *conn).await?;
    for row in &rows {
        let (user_id, amount): (i64, i64) = (row.try_get("user_id")?, row.try_get("lent")?);
        sqlx::query("UPDATE users SET leased = CASE WHEN leased < $1 THEN 0 ELSE leased - $1 END WHERE id = $2")
            .bind(amount)
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(rows.len())
}

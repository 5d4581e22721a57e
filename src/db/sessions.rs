//! Queries on `sessions` (console sessions: id, JSON data, expiry as unix seconds, owner). The
//! session store in `console::session_store` decides when to call them; nothing here knows about
//! tower-sessions or HTTP.

use sqlx::{Any, Executor, Row};

/// A session row as stored: the serialized data, the owner (`None` before login) and the expiry.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub data: &'a [u8],
    pub expiry: i64,
    pub user_id: Option<i64>,
}

/// Deletes sessions that expired before `now` (unix seconds); how many.
pub async fn delete_expired<'e>(db: impl Executor<'e, Database = Any>, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE expiry_date < $1").bind(now).execute(db).await?;
    Ok(done.rows_affected())
}

/// Deletes the user's sessions except the one with id `keep` (`""` keeps none); how many.
pub async fn delete_for_user<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
    keep: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
        .bind(user_id)
        .bind(keep)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// How many of the user's sessions expire after `now` (unix seconds).
pub async fn count_live_for_user<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: i64,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE user_id = $1 AND expiry_date > $2")
        .bind(user_id)
        .bind(now)
        .fetch_one(db)
        .await?
        .try_get("n")
}

/// Inserts a session unless its id is taken; whether it was inserted.
pub async fn insert_new<'e>(
    db: impl Executor<'e, Database = Any>,
    session: &NewSession<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO sessions (id, data, expiry_date, user_id) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(session.id)
    .bind(session.data)
    .bind(session.expiry)
    .bind(session.user_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes a session, replacing the row with the same id.
pub async fn upsert<'e>(db: impl Executor<'e, Database = Any>, session: &NewSession<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id, data, expiry_date, user_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date, \
         user_id = excluded.user_id",
    )
    .bind(session.id)
    .bind(session.data)
    .bind(session.expiry)
    .bind(session.user_id)
    .execute(db)
    .await?;
    Ok(())
}

/// The data and expiry of the session with this id, if it expires after `now` (unix seconds).
pub async fn load_live<'e>(
    db: impl Executor<'e, Database = Any>,
    id: &str,
    now: i64,
) -> Result<Option<(Vec<u8>, i64)>, sqlx::Error> {
    sqlx::query("SELECT data, expiry_date FROM sessions WHERE id = $1 AND expiry_date > $2")
        .bind(id)
        .bind(now)
        .fetch_optional(db)
        .await?
        .map(|r| Ok((r.try_get("data")?, r.try_get("expiry_date")?)))
        .transpose()
}

pub async fn delete<'e>(db: impl Executor<'e, Database = Any>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}

/// Ends the user's sessions, all or all but `keep` (a session id); how many.
pub async fn end_user_sessions(db: &super::Db, user_id: i64, keep: Option<&str>) -> Result<u64, sqlx::Error> {
    delete_for_user(db.writer(), user_id, keep.unwrap_or("")).await
}

/// How many live sessions the user has.
pub async fn count_user_sessions(db: &super::Db, user_id: i64) -> Result<i64, sqlx::Error> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    count_live_for_user(db.pool(), user_id, now).await
}

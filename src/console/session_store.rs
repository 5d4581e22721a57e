//! Console sessions in the app's own database (`sessions`: id, JSON data, expiry as unix
//! seconds), so they survive restarts and are shared by replicas. Expired rows are invisible to
//! `load` and swept periodically.

use async_trait::async_trait;
use sqlx::Row;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::db::Db;

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Db,
}

impl DbSessionStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Deletes expired sessions; how many.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let done =
            sqlx::query("DELETE FROM sessions WHERE expiry_date < $1").bind(now).execute(self.db.writer()).await?;
        Ok(done.rows_affected())
    }
}

/// The user the session is logged in as, if any (the console's `user_id` key).
fn owner(record: &Record) -> Option<i64> {
    record.data.get("user_id").and_then(serde_json::Value::as_i64)
}

/// Ends the user's sessions, all or all but `keep` (a session id); how many.
pub async fn end_user_sessions(db: &Db, user_id: i64, keep: Option<&str>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
        .bind(user_id)
        .bind(keep.unwrap_or(""))
        .execute(db.writer())
        .await?;
    Ok(done.rows_affected())
}

/// How many live sessions the user has.
pub async fn count_user_sessions(db: &Db, user_id: i64) -> Result<i64, sqlx::Error> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    sqlx::query("SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND expiry_date > $2")
        .bind(user_id)
        .bind(now)
        .fetch_one(db.pool())
        .await?
        .try_get(0)
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = serde_json::to_vec(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        // A new id until one is free (a collision of 128 random bits is not expected, but cheap to handle).
        for _ in 0..8 {
            let inserted = sqlx::query(
                "INSERT INTO sessions (id, data, expiry_date, user_id) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(record.id.to_string())
            .bind(data.clone())
            .bind(record.expiry_date.unix_timestamp())
            .bind(owner(record))
            .execute(self.db.writer())
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(backend("could not allocate a session id"))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_vec(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        sqlx::query(
            "INSERT INTO sessions (id, data, expiry_date, user_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date, \
             user_id = excluded.user_id",
        )
        .bind(record.id.to_string())
        .bind(data)
        .bind(record.expiry_date.unix_timestamp())
        .bind(owner(record))
        .execute(self.db.writer())
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let row = sqlx::query("SELECT data, expiry_date FROM sessions WHERE id = $1 AND expiry_date > $2")
            .bind(id.to_string())
            .bind(now)
            .fetch_optional(self.db.pool())
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let data: Vec<u8> = row.try_get(0).map_err(backend)?;
        let expiry: i64 = row.try_get(1).map_err(backend)?;
        Ok(Some(Record {
            id: *id,
            data: serde_json::from_slice(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?,
            expiry_date: time::OffsetDateTime::from_unix_timestamp(expiry).map_err(backend)?,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(self.db.writer())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

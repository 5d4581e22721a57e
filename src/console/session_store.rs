//! Console sessions in the app's own database (`sessions`: id, JSON data, expiry as unix
//! seconds), so they survive restarts and are shared by replicas. Expired rows are invisible to
//! `load` and swept periodically.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::db::Db;
use crate::db::sessions::{self, NewSession};

/// The session field holding the signed-in user's id.
pub(super) const USER_KEY: &str = "user_id";

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
        sessions::delete_expired(self.db.writer(), now).await
    }
}

/// The user the session is logged in as, if any (the console's `user_id` key).
fn owner(record: &Record) -> Option<i64> {
    record.data.get("user_id").and_then(serde_json::Value::as_i64)
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
            let id = record.id.to_string();
            let row = NewSession {
                id: &id,
                data: &data,
                expiry: record.expiry_date.unix_timestamp(),
                user_id: owner(record),
            };
            if sessions::insert_new(self.db.writer(), &row).await.map_err(backend)? {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(backend("could not allocate a session id"))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_vec(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let id = record.id.to_string();
        let row =
            NewSession { id: &id, data: &data, expiry: record.expiry_date.unix_timestamp(), user_id: owner(record) };
        sessions::upsert(self.db.writer(), &row).await.map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let row = sessions::load_live(self.db.pool(), &id.to_string(), now).await.map_err(backend)?;
        let Some((data, expiry)) = row else { return Ok(None) };
        Ok(Some(Record {
            id: *id,
            data: serde_json::from_slice(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?,
            expiry_date: time::OffsetDateTime::from_unix_timestamp(expiry).map_err(backend)?,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sessions::delete(self.db.writer(), &id.to_string()).await.map_err(backend)
    }
}

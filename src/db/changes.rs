//! Change notices between replicas sharing one Postgres database: `NOTIFY` on one channel after a
//! write that other replicas cache, and a dedicated `LISTEN` connection to hear them. SQLite runs
//! one process: nothing is sent, and there is nothing to listen to.

use sqlx::postgres::PgListener;

use super::Db;
use crate::config::Backend;

/// The one channel every replica listens on.
pub const CHANNEL: &str = "burncloud_changes";

/// Tells the other replicas (and this one) about a change. Delivered once the statement's
/// transaction commits: callers send it after their own commit.
pub async fn notify(db: &Db, payload: &str) -> Result<(), sqlx::Error> {
    if db.backend() != Backend::Postgres {
        return Ok(());
    }
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(db.pool()).await.map(|_| ())
}

/// A connection listening on [`CHANNEL`].
pub struct Listener(PgListener);

impl Listener {
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let mut listener = PgListener::connect(url).await?;
        // A lost connection is reported at once (`next` answers `None`), not after sqlx has
        // reconnected on its own: until then the caller would say it is listening while it is
        // not, and it must reload what it caches after any reconnect anyway.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok(Self(listener))
    }

    /// The next notice's payload; `None` when the connection was lost (notices sent meanwhile
    /// are gone: the caller reconnects and reloads what it caches).
    pub async fn next(&mut self) -> Result<Option<String>, sqlx::Error> {
        Ok(self.0.try_recv().await?.map(|notice| notice.payload().to_string()))
    }
}

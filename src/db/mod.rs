//! The database layer: one `sqlx::AnyPool` over Postgres or SQLite, the embedded migrations,
//! and one module of free functions per table group. All SQL lives under this module and is
//! written in the subset both engines share (`$n` placeholders, `RETURNING`, `ON CONFLICT`;
//! BIGINT for money, timestamps and flags). Nothing here knows about HTTP.
//!
//! Rows are read by column name, never by position, so reordering a `SELECT` cannot swap two
//! columns of the same type: give every computed column an alias (`COUNT(*) AS n`) and two
//! columns of the same name distinct ones (`k.status AS key_status`). Lowercase aliases only:
//! Postgres folds unquoted names to lowercase, SQLite keeps them as written. Statements with
//! optional conditions are assembled with [`sql_builder::SqlBuilder`], which numbers `$n` itself.

pub mod access_tokens;
pub mod all_logs;
pub mod api_keys;
pub mod audit;
pub mod budget_leases;
pub mod capabilities;
pub mod changes;
pub mod channel_keys;
pub mod channels;
pub mod codes;
pub mod email_tokens;
pub mod groups;
pub mod invitations;
pub mod leases;
pub mod ledger;
pub mod limits;
pub mod low_balance;
pub mod migrate;
pub mod monitoring;
pub mod payments;
pub mod prices;
pub mod request_logs;
pub mod sessions;
pub mod settings;
pub(crate) mod sql_builder;
pub mod users;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::config::{Backend, DatabaseUrl};

/// A query over the Any driver, for helpers that bind a shared group of columns.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// A connected, pooled database and which engine it is.
///
/// SQLite allows one writer at a time; letting several pooled connections race for the write lock
/// makes SQLite's busy handler sleep (milliseconds each time) and collapses throughput. So on
/// SQLite, writes go through [`Db::writer`], a pool of one connection that queues writers fairly
/// in the process, while reads use the larger pool. On Postgres both are the same pool.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    writer: AnyPool,
    backend: Backend,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot create the directory for the SQLite file {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("cannot connect to the {backend} database: {source}")]
    Connect { backend: &'static str, source: sqlx::Error },
}

impl Db {
    /// Opens a pool. For SQLite it creates the file's directory, switches the database to WAL
    /// and sets `synchronous=NORMAL`, foreign keys and a 5 s busy timeout on every connection.
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<Self, ConnectError> {
        install_default_drivers();
        let mut options =
            AnyPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(10));
        if url.backend == Backend::Sqlite {
            if let Some(dir) = url.sqlite_file().as_deref().and_then(|f| f.parent())
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|source| ConnectError::CreateDir { path: dir.display().to_string(), source })?;
            }
            if url.sqlite_file().is_none() {
                // Every connection to an in-memory database is a different database: keep one.
                options = options.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
            }
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Checkpoints run in the background (`checkpoint`), not inside a writer's commit.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 0;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let connect_error = |source| ConnectError::Connect { backend: url.backend.name(), source };
        let writer = if url.backend == Backend::Sqlite && url.sqlite_file().is_some() {
            Some(options.clone().max_connections(1).connect(url.url.expose()).await.map_err(connect_error)?)
        } else {
            None
        };
        let pool = options.connect(url.url.expose()).await.map_err(connect_error)?;
        let writer = writer.unwrap_or_else(|| pool.clone());
        Ok(Self { pool, writer, backend: url.backend })
    }

    /// For reads (and, on Postgres, everything).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For writes: the single SQLite writer, or the shared Postgres pool.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    /// SQLite: copies the write-ahead log into the database without blocking writers (PASSIVE),
    /// so commits never pay for a checkpoint. Called every second by the app. No-op on Postgres.
    pub async fn checkpoint(&self) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.pool).await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// True when the error is a unique-constraint violation on the named constraint (Postgres) or
/// on a column of it (SQLite names columns, not constraints, so `columns` is matched there).
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str, columns: &str) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    if !db.is_unique_violation() {
        return false;
    }
    match db.constraint() {
        Some(name) => name == constraint,
        None => db.message().contains(columns),
    }
}

/// Multi-row INSERTs for group commit: splits `rows` into chunks and writes the `VALUES` list of
/// each, `width` parameters a row.
///
/// Chunk sizes are powers of four up to 64 rows (16 on Postgres), so only a few statement shapes
/// exist and stay in the prepared-statement cache. Placeholders are `$n` on Postgres and `?` on
/// SQLite: SQLite looks a named parameter up in a list, so binding `$n` costs time growing with
/// the square of the parameter count, while `?` binds by position.
pub fn insert_chunks<'a, T>(conn: &sqlx::AnyConnection, rows: &'a [T], width: usize) -> Vec<(&'a [T], String)> {
    let sqlite = conn.backend_name().eq_ignore_ascii_case("sqlite");
    let max = if sqlite { 64 } else { 16 };
    let mut chunks = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let mut size = max;
        while size > rest.len() {
            size /= 4;
        }
        let (chunk, tail) = rest.split_at(size);
        let mut values = String::with_capacity(size * width * 4);
        for row in 0..size {
            values.push_str(if row == 0 { "(" } else { ", (" });
            for col in 0..width {
                if col > 0 {
                    values.push_str(", ");
                }
                if sqlite {
                    values.push('?');
                } else {
                    values.push_str(&format!("${}", row * width + col + 1));
                }
            }
            values.push(')');
        }
        chunks.push((chunk, values));
        rest = tail;
    }
    chunks
}

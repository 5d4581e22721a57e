//! The schema migrations, embedded in the binary at build time (see `build.rs`), one folder per
//! engine: `migrations/postgres` and `migrations/sqlite`, kept column-for-column in step.

use std::borrow::Cow;

use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};

use super::Db;
use crate::config::Backend;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// The migrator for one engine.
pub fn migrator(backend: Backend) -> Migrator {
    let files = match backend {
        Backend::Sqlite => embedded::SQLITE,
        Backend::Postgres => embedded::POSTGRES,
    };
    let migrations = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(*version, Cow::Borrowed(*description), MigrationType::Simple, Cow::Borrowed(*sql), false)
        })
        .collect::<Vec<_>>();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// Applies every pending migration. Safe to run from several replicas at once on Postgres
/// (sqlx takes an advisory lock).
pub async fn run(db: &Db) -> Result<(), MigrateError> {
    migrator(db.backend()).run(db.pool()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_engines_have_the_same_migration_versions() {
        let versions = |b| migrator(b).iter().map(|m| (m.version, m.description.to_string())).collect::<Vec<_>>();
        assert!(!versions(Backend::Sqlite).is_empty());
        assert_eq!(versions(Backend::Sqlite), versions(Backend::Postgres));
    }
}

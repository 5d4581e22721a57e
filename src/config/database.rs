//! `DATABASE_URL`: which engine it names, and the URL as the pool opens it (a SQLite file is
//! created when missing).

use std::path::PathBuf;

use url::Url;

use super::Secret;

/// Which database engine a `DATABASE_URL` points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A parsed database URL. The URL may hold a password, so it is a [`Secret`].
#[derive(Clone, Debug)]
pub struct DatabaseUrl {
    pub backend: Backend,
    pub url: Secret,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let parsed = Url::parse(raw).map_err(|e| format!("not a valid postgres URL ({e})"))?;
            if parsed.host_str().unwrap_or_default().is_empty() && !raw.contains("host=") {
                return Err("postgres URL has no host".into());
            }
            return Ok(Self { backend: Backend::Postgres, url: Secret::new(raw) });
        }
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("sqlite URL has no file path (example: sqlite://data/burncloud.db)".into());
            }
            // Create the file when missing unless the URL chooses a mode itself.
            let url = if raw.contains("mode=") {
                raw.to_string()
            } else if raw.contains('?') {
                format!("{raw}&mode=rwc")
            } else {
                format!("{raw}?mode=rwc")
            };
            return Ok(Self { backend: Backend::Sqlite, url: Secret::new(url) });
        }
        let scheme = raw.split_once(':').map(|(s, _)| s).unwrap_or(raw);
        Err(format!("unsupported database URL scheme {scheme:?} (expected postgres:// or sqlite://)"))
    }

    /// The SQLite database file, when this is a file-backed SQLite URL.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let rest = self.url.expose().strip_prefix("sqlite:")?;
        let path = rest.trim_start_matches("//").split('?').next()?;
        (path != ":memory:" && !self.url.expose().contains("mode=memory")).then(|| PathBuf::from(path))
    }
}

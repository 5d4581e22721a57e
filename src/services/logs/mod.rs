//! The usage-log filter as people type it — the console's filter form and `/api/me/logs`' query
//! string — and its parsing into `db::request_logs::LogFilter`. Blank fields mean "any"; dates
//! are UTC days, the "to" day included.

pub mod admin;

use serde::Deserialize;

use crate::db::request_logs::LogFilter;
use crate::domain::time::{DAY_MS, parse_utc_day};
use crate::state::AppState;

/// Rows per page, and the most a caller may ask for.
pub const PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

/// The filter as sent (every field optional; blanks mean "any").
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    pub model: String,
    /// A key id.
    #[serde(default)]
    pub key: String,
    /// `ok` (succeeded), `error` (failed) or blank.
    #[serde(default)]
    pub status: String,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    /// Rows older than this id (the next page).
    #[serde(default)]
    pub before: Option<i64>,
    /// Rows per page (the API; the console pages by [`PAGE`]).
    #[serde(default)]
    pub limit: Option<i64>,
}

impl LogQuery {
    /// The filter, or a message naming the field that is wrong.
    pub fn filter(&self) -> Result<LogFilter, String> {
        let day = |s: &str, name: &str| -> Result<Option<i64>, String> {
            if s.trim().is_empty() {
                return Ok(None);
            }
            parse_utc_day(s).map(Some).ok_or_else(|| format!("{name}: enter a date like 2026-11-27."))
        };
        let key = self.key.trim();
        Ok(LogFilter {
            model: Some(self.model.trim().to_string()).filter(|m| !m.is_empty()),
            key_id: if key.is_empty() { None } else { Some(key.parse().map_err(|_| "Key: a key id.".to_string())?) },
            failed: match self.status.trim() {
                "" => None,
                "error" => Some(true),
                "ok" => Some(false),
                _ => return Err("Status: ok or error.".into()),
            },
            from: day(&self.from, "From")?,
            // Inclusive of the whole "to" day.
            until: day(&self.to, "To")?.map(|ms| ms + DAY_MS),
            before_id: self.before,
        })
    }

    /// Rows per page: `limit` if given (1 to [`MAX_PAGE`]), else [`PAGE`].
    pub fn page_size(&self) -> Result<i64, String> {
        page_size(self.limit)
    }

    /// The filter as a query string, for "older" links and the CSV export.
    pub fn query_string(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("model", &self.model)
            .append_pair("key", &self.key)
            .append_pair("status", &self.status)
            .append_pair("from", &self.from)
            .append_pair("to", &self.to)
            .finish()
    }
}

/// Rows per page for a listing's `limit` parameter: 1 to [`MAX_PAGE`], else [`PAGE`].
pub fn page_size(limit: Option<i64>) -> Result<i64, String> {
    match limit {
        None => Ok(PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(format!("limit: 1 to {MAX_PAGE}.")),
    }
}

/// The user's request logs matching `filter`, newest first, at most `limit`: only ever this user's.
pub async fn for_user(
    state: &AppState,
    user_id: i64,
    filter: &LogFilter,
    limit: i64,
) -> Result<Vec<crate::db::request_logs::LogRow>, sqlx::Error> {
    crate::db::request_logs::list_for_user(state.db().pool(), user_id, filter, limit).await
}

/// The figures of a user's dashboard, read in one go.
pub struct UsageFigures {
    /// `(day, cost, requests)` per UTC day.
    pub daily: Vec<(i64, i64, i64)>,
    /// `(minute, requests)` per minute.
    pub per_minute: Vec<(i64, i64)>,
    /// `(model, input tokens, output tokens)`, the largest first.
    pub tokens_by_model: Vec<(String, i64, i64)>,
}

/// A user's usage: per day since `days_since_ms`, per minute since `minutes_since_ms`, and tokens
/// of the top `models` models since `tokens_since_ms`.
pub async fn usage_figures(
    state: &AppState,
    user_id: i64,
    days_since_ms: i64,
    minutes_since_ms: i64,
    tokens_since_ms: i64,
    models: i64,
) -> Result<UsageFigures, sqlx::Error> {
    use crate::db::request_logs;
    let pool = state.db().pool();
    Ok(UsageFigures {
        daily: request_logs::daily_totals(pool, user_id, days_since_ms).await?,
        per_minute: request_logs::requests_per_minute(pool, user_id, minutes_since_ms).await?,
        tokens_by_model: request_logs::tokens_by_model(pool, user_id, tokens_since_ms, models).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(f: impl FnOnce(&mut LogQuery)) -> LogQuery {
        let mut q = LogQuery::default();
        f(&mut q);
        q
    }

    #[test]
    fn blanks_mean_any_and_bad_fields_are_named() {
        let filter = LogQuery::default().filter().unwrap();
        assert!(filter.model.is_none() && filter.key_id.is_none() && filter.failed.is_none() && filter.from.is_none());
        let filter = query(|q| {
            q.to = "2026-11-27".into();
            q.status = "error".into();
            q.key = " 7 ".into();
        })
        .filter()
        .unwrap();
        assert_eq!(filter.until, Some(1_795_737_600_000 + DAY_MS));
        assert_eq!((filter.failed, filter.key_id), (Some(true), Some(7)));
        assert!(query(|q| q.from = "yesterday".into()).filter().unwrap_err().starts_with("From:"));
        assert!(query(|q| q.status = "maybe".into()).filter().unwrap_err().starts_with("Status:"));
        assert!(query(|q| q.key = "mine".into()).filter().unwrap_err().starts_with("Key:"));
        assert_eq!(LogQuery::default().page_size(), Ok(PAGE));
        assert!(query(|q| q.limit = Some(0)).page_size().is_err());
        assert!(query(|q| q.limit = Some(MAX_PAGE + 1)).page_size().is_err());
    }
}

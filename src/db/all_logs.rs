//! Queries on `request_logs` across every user, for operators (`/admin/logs`): the user console's
//! filters plus the user's email. Never used for a user's own view (that is `request_logs`).

use sqlx::{Any, Executor, Row};

use super::request_logs::{LOG_ROW_COLUMNS, LogFilter, LogRow, push_filter};
use super::sql_builder::SqlBuilder;

/// One row of the site's log: a user's row and whose it is.
#[derive(Clone, Debug)]
pub struct SiteLogRow {
    pub row: LogRow,
    pub user_id: i64,
    pub user_email: String,
    pub channel_id: Option<i64>,
    /// The channel's name for the model (after its model mapping).
    pub upstream_model: String,
}

/// `text` as a LIKE pattern matching it anywhere (its `%`, `_` and `\` taken literally).
pub fn contains_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{}%", escaped.to_lowercase())
}

/// Rows matching `filter` and, when given, a user whose email contains `email`; newest first.
pub async fn list<'e>(
    db: impl Executor<'e, Database = Any>,
    email: Option<&str>,
    filter: &LogFilter,
    limit: i64,
) -> Result<Vec<SiteLogRow>, sqlx::Error> {
    let mut b = SqlBuilder::new(format!(
        "SELECT {LOG_ROW_COLUMNS}, l.user_id, u.email, l.channel_id, l.upstream_model \
         FROM request_logs l JOIN users u ON u.id = l.user_id LEFT JOIN api_keys k ON k.id = l.api_key_id \
         WHERE 1 = 1"
    ));
    if let Some(email) = email {
        b.push(" AND LOWER(u.email) LIKE ").push_bind(contains_pattern(email)).push(" ESCAPE '\\'");
    }
    push_filter(&mut b, filter);
    b.push(" ORDER BY l.id DESC LIMIT ").push_bind(limit);
    let rows = b.build().fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            Ok(SiteLogRow {
                row: LogRow::decode(r)?,
                user_id: r.try_get("user_id")?,
                user_email: r.try_get("email")?,
                channel_id: r.try_get("channel_id")?,
                upstream_model: r.try_get("upstream_model")?,
            })
        })
        .collect()
}

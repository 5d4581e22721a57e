//! Queries on `request_logs` across every user, for operators (`/admin/logs`): the user console's
//! filters plus the user's email. Never used for a user's own view (that is `request_logs`).

use sqlx::{Any, Executor, Row};

use super::request_logs::{LOG_ROW_COLUMNS, LogFilter, LogRow, bind_filter, push_filter};

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
    let mut sql = format!(
        "SELECT {LOG_ROW_COLUMNS}, l.user_id, u.email, l.channel_id, l.upstream_model \
         FROM request_logs l JOIN users u ON u.id = l.user_id LEFT JOIN api_keys k ON k.id = l.api_key_id \
         WHERE 1 = 1"
    );
    let mut n = 0;
    if email.is_some() {
        n += 1;
        sql.push_str(&format!(" AND LOWER(u.email) LIKE ${n} ESCAPE '\\'"));
    }
    push_filter(&mut sql, &mut n, filter);
    n += 1;
    sql.push_str(&format!(" ORDER BY l.id DESC LIMIT ${n}"));
    let mut query = sqlx::query(&sql);
    if let Some(email) = email {
        query = query.bind(contains_pattern(email));
    }
    let rows = bind_filter(query, filter).bind(limit).fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            Ok(SiteLogRow {
                row: LogRow::decode(r)?,
                user_id: r.try_get(13)?,
                user_email: r.try_get(14)?,
                channel_id: r.try_get(15)?,
                upstream_model: r.try_get(16)?,
            })
        })
        .collect()
}

//! `/console/logs`: the user's own usage log — filter by time range, model, key and status,
//! page back through it, export it as CSV. Never another user's rows.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Layout;
use super::auth::CurrentUser;
use super::layout::format_time;
use crate::console::error::ConsoleError;
use crate::db::request_logs::LogRow;
use crate::domain::money::Money;
use crate::services::keys;
use crate::services::logs::{self, LogQuery, PAGE};
use crate::state::AppState;

const CSV_ROWS: i64 = 10_000;

/// One formatted row.
pub struct Row {
    pub time: String,
    pub key: String,
    pub model: String,
    pub tokens: String,
    pub cost: String,
    pub status: String,
    pub failed: bool,
    pub latency: String,
    pub stream: bool,
}

impl From<&LogRow> for Row {
    fn from(r: &LogRow) -> Self {
        Self {
            time: format_time(r.created_at),
            key: r.key_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "—".into()),
            model: r.model.clone(),
            tokens: format!("{} / {}", r.prompt_tokens, r.completion_tokens),
            cost: Money(r.cost).to_string(),
            status: match &r.error_class {
                Some(class) => format!("{} {class}", r.status_code),
                None => r.status_code.to_string(),
            },
            failed: r.status_code >= 400,
            latency: format!("{} ms", r.latency_ms),
            stream: r.is_stream,
        }
    }
}

pub struct KeyOption {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "logs.html")]
pub struct LogsPage {
    layout: Layout,
    query: LogQuery,
    keys: Vec<KeyOption>,
    rows: Vec<Row>,
    older: Option<String>,
    /// The first page with the same filters (shown when paging back).
    newest: String,
    csv: String,
    error: Option<String>,
}

/// `GET /console/logs`.
pub async fn page(State(state): State<AppState>, user: CurrentUser, Query(query): Query<LogQuery>) -> Response {
    let keys = match keys::listings(&state, user.id).await {
        Ok(keys) => keys
            .into_iter()
            .map(|k| KeyOption {
                selected: query.key == k.id.to_string(),
                id: k.id.to_string(),
                name: if k.name.is_empty() { k.prefix } else { k.name },
            })
            .collect(),
        Err(e) => return ConsoleError::internal("loading the usage log", e).into_response(),
    };
    let (rows, error) = match query.filter() {
        Ok(filter) => match logs::for_user(&state, user.id, &filter, PAGE).await {
            Ok(rows) => (rows, None),
            Err(e) => return ConsoleError::internal("loading the usage log", e).into_response(),
        },
        Err(message) => (Vec::new(), Some(user.layout.t(&message).to_string())),
    };
    let filters = query.query_string();
    let older = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| format!("/console/logs?{filters}&before={}", r.id)))
        .flatten();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = LogsPage {
        layout: user.layout.clone(),
        rows: rows.iter().map(Row::from).collect(),
        keys,
        older,
        newest: format!("/console/logs?{filters}"),
        csv: format!("/console/logs.csv?{filters}"),
        query,
        error,
    };
    (status, page).into_response()
}

/// `GET /console/logs.csv`: the filtered log (up to 10,000 rows) as CSV.
pub async fn csv(State(state): State<AppState>, user: CurrentUser, Query(query): Query<LogQuery>) -> Response {
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(message) => return (StatusCode::BAD_REQUEST, user.layout.t(&message).to_string()).into_response(),
    };
    let rows = match logs::for_user(&state, user.id, &filter, CSV_ROWS).await {
        Ok(rows) => rows,
        Err(e) => return ConsoleError::internal("loading the usage log", e).into_response(),
    };
    let mut out =
        String::from("time,key,model,endpoint,prompt_tokens,completion_tokens,cost,status,error,latency_ms,stream\n");
    for r in &rows {
        let fields = [
            format_time(r.created_at),
            r.key_name.clone().unwrap_or_default(),
            r.model.clone(),
            r.endpoint.clone(),
            r.prompt_tokens.to_string(),
            r.completion_tokens.to_string(),
            Money(r.cost).to_string(),
            r.status_code.to_string(),
            r.error_class.clone().unwrap_or_default(),
            r.latency_ms.to_string(),
            r.is_stream.to_string(),
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"usage.csv\""),
        ],
        out,
    )
        .into_response()
}

/// A CSV cell: quoted when needed, and never read as a formula by a spreadsheet.
pub(crate) fn csv_field(value: &str) -> String {
    let value =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_string() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_field("gpt-4o"), "gpt-4o");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    }
}

//! `/admin/logs`: every user's requests, with the user console's filters plus the user's email;
//! paged back by id, exported as CSV (`/admin/logs.csv`). Read-only.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AdminUser;
use crate::console::Layout;
use crate::console::error::ConsoleError;
use crate::console::layout::format_time;
use crate::console::logs::{Row, csv_field};
use crate::db::all_logs::SiteLogRow;
use crate::routes::Routes;
use crate::services::logs;
use crate::services::logs::admin::{LogsError, UserQuery};
use crate::services::logs::{LogQuery, PAGE};
use crate::state::AppState;

const CSV_ROWS: i64 = 10_000;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes.page_get("/admin/logs", page).page_get("/admin/logs.csv", csv)
}

/// One row: the user console's row and whose it is.
pub struct SiteRow {
    pub row: Row,
    pub user: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/logs.html")]
pub struct AdminLogsPage {
    layout: Layout,
    query: LogQuery,
    user: String,
    rows: Vec<SiteRow>,
    older: Option<String>,
    newest: String,
    csv: String,
    error: Option<String>,
}

fn filters(query: &LogQuery, user: &UserQuery) -> String {
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    pairs.append_pair("user", &user.user);
    format!("{}&{}", pairs.finish(), query.query_string())
}

/// `GET /admin/logs`.
pub async fn page(
    State(state): State<AppState>,
    admin: AdminUser,
    Query(query): Query<LogQuery>,
    Query(user): Query<UserQuery>,
) -> Response {
    let layout = admin.user.layout;
    let (rows, error) = match logs::admin::site_logs(&state, &query, &user, PAGE).await {
        Ok(rows) => (rows, None),
        Err(LogsError::Invalid(message)) => (Vec::new(), Some(layout.t(&message).to_string())),
        Err(LogsError::Db(e)) => return ConsoleError::internal("loading the site's request log", e).into_response(),
    };
    let filters = filters(&query, &user);
    let older = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| format!("/admin/logs?{filters}&before={}", r.row.id)))
        .flatten();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = AdminLogsPage {
        layout,
        rows: rows
            .iter()
            .map(|r: &SiteLogRow| SiteRow { row: Row::from(&r.row), user: r.user_email.clone() })
            .collect(),
        older,
        newest: format!("/admin/logs?{filters}"),
        csv: format!("/admin/logs.csv?{filters}"),
        query,
        user: user.user,
        error,
    };
    (status, page).into_response()
}

/// `GET /admin/logs.csv`: the filtered log (up to 10,000 rows).
pub async fn csv(
    State(state): State<AppState>,
    admin: AdminUser,
    Query(query): Query<LogQuery>,
    Query(user): Query<UserQuery>,
) -> Response {
    let rows = match logs::admin::site_logs(&state, &query, &user, CSV_ROWS).await {
        Ok(rows) => rows,
        Err(LogsError::Invalid(message)) => {
            return (StatusCode::BAD_REQUEST, admin.user.layout.t(&message).to_string()).into_response();
        }
        Err(LogsError::Db(e)) => return ConsoleError::internal("loading the site's request log", e).into_response(),
    };
    let mut out = String::from(
        "time,user,key,channel,model,endpoint,prompt_tokens,completion_tokens,cost,status,error,latency_ms,stream\n",
    );
    for r in &rows {
        let fields = [
            format_time(r.row.created_at),
            r.user_email.clone(),
            r.row.key_name.clone().unwrap_or_default(),
            r.channel_id.map(|c| c.to_string()).unwrap_or_default(),
            r.row.model.clone(),
            r.row.endpoint.clone(),
            r.row.prompt_tokens.to_string(),
            r.row.completion_tokens.to_string(),
            crate::domain::money::Money(r.row.cost).to_string(),
            r.row.status_code.to_string(),
            r.row.error_class.clone().unwrap_or_default(),
            r.row.latency_ms.to_string(),
            r.row.is_stream.to_string(),
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"requests.csv\""),
        ],
        out,
    )
        .into_response()
}

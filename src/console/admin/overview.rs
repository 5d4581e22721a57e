//! `/admin`: live monitoring of the whole site — requests per minute, tokens per second, spend,
//! error rate and p50/p95 latency, overall, per model and per channel, over the last hour, day or
//! week — with server-rendered SVG charts that htmx refreshes in place (`/admin/monitor`), and
//! each channel's health (enabled, automatically disabled with the reason, last test latency).
//! The figures come from `services::monitoring` (also behind `/metrics`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AdminUser;
use crate::console::Layout;
use crate::console::charts::{self, Column, Point};
use crate::console::error::ConsoleError;
use crate::console::htmx::vary;
use crate::domain::money::Money;
use crate::routes::Routes;
use crate::services::channels;
use crate::services::monitoring::{self, Figures, Range, Snapshot};
use crate::state::AppState;

/// The charts' drawing area, in SVG units.
const CHART_W: i64 = 600;
const CHART_H: i64 = 150;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes.page_get("/admin", page).page_get("/admin/monitor", monitor)
}

#[derive(Deserialize)]
pub struct RangeQuery {
    #[serde(default)]
    range: String,
}

/// One line of the per-model / per-channel tables, formatted.
pub struct LineView {
    pub label: String,
    pub requests: i64,
    pub tokens: i64,
    pub spend: String,
    pub error_rate: String,
    pub p50: String,
    pub p95: String,
}

fn ms(value: Option<i64>) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{v} ms"))
}

fn line(label: String, f: &Figures) -> LineView {
    LineView {
        label,
        requests: f.totals.requests,
        tokens: f.tokens(),
        spend: Money(f.totals.cost).to_string(),
        error_rate: format!("{:.1}%", f.error_rate() * 100.0),
        p50: ms(f.p50_ms),
        p95: ms(f.p95_ms),
    }
}

/// A per-model or per-channel table (texts translated in the template).
pub struct Table {
    pub title: &'static str,
    pub first: &'static str,
    pub id: &'static str,
    pub lines: Vec<LineView>,
}

/// A channel's health, at a glance.
pub struct Health {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub latency: Option<String>,
}

/// What the monitoring fragment shows.
pub struct Monitor {
    pub range: &'static str,
    pub requests_per_minute: String,
    pub tokens_per_second: String,
    pub requests: i64,
    pub spend: String,
    pub error_rate: String,
    pub p50: String,
    pub p95: String,
    pub requests_chart: Vec<Column>,
    pub tokens_chart: Vec<Column>,
    pub chart_w: i64,
    pub chart_h: i64,
    pub axis_y: i64,
    /// The per-model and per-channel tables: (title, first column's name, testid, lines).
    pub tables: Vec<Table>,
    pub health: Vec<Health>,
}

fn bucket_label(range: Range, start_ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(start_ms / 1000) else { return String::new() };
    match range {
        Range::Week => format!("{:02}-{:02}", u8::from(t.month()), t.day()),
        _ => format!("{:02}:{:02}", t.hour(), t.minute()),
    }
}

fn chart(
    snapshot: &Snapshot,
    layout: &Layout,
    value: impl Fn(&crate::db::monitoring::Totals) -> i64,
    unit: &str,
) -> Vec<Column> {
    let range = snapshot.range;
    let bucket = range.bucket_ms();
    let n = snapshot.buckets.len();
    // About six labels across the axis.
    let every = (n / 6).max(1);
    let points = snapshot
        .buckets
        .iter()
        .enumerate()
        .map(|(i, totals)| {
            let start = snapshot.since + i64::try_from(i).unwrap_or(0) * bucket;
            let label = bucket_label(range, start);
            let v = value(totals);
            Point {
                title: format!("{label} UTC: {v} {}", layout.t(unit)),
                label: if i % every == 0 { label } else { String::new() },
                value: v,
            }
        })
        .collect();
    charts::columns(points, CHART_W, CHART_H)
}

async fn load(state: &AppState, layout: &Layout, range: Range) -> Result<Monitor, Response> {
    let failed =
        |e: &dyn std::fmt::Display| ConsoleError::internal("loading the monitoring figures", e).into_response();
    let snapshot = monitoring::snapshot(state, range).await.map_err(|e| failed(&e))?;
    let list = channels::list(state).await.map_err(|e| failed(&e))?;
    let health = list
        .into_iter()
        .map(|c| Health {
            id: c.id,
            name: c.name,
            status: c.status,
            reason: c.disabled_reason,
            latency: c.test_latency_ms.map(|v| format!("{v} ms")),
        })
        .collect();
    let o = &snapshot.overall;
    Ok(Monitor {
        range: range.name(),
        requests_per_minute: format!("{:.2}", snapshot.requests_per_minute()),
        tokens_per_second: format!("{:.2}", snapshot.tokens_per_second()),
        requests: o.totals.requests,
        spend: Money(o.totals.cost).to_string(),
        error_rate: format!("{:.1}%", o.error_rate() * 100.0),
        p50: ms(o.p50_ms),
        p95: ms(o.p95_ms),
        requests_chart: chart(&snapshot, layout, |t| t.requests, "requests"),
        tokens_chart: chart(&snapshot, layout, |t| t.prompt_tokens + t.completion_tokens, "tokens"),
        chart_w: CHART_W,
        chart_h: CHART_H,
        axis_y: CHART_H - charts::AXIS_H,
        tables: vec![
            Table {
                title: "By model",
                first: "Model",
                id: "by-model",
                lines: snapshot.models.iter().map(|l| line(l.label.clone(), &l.figures)).collect(),
            },
            Table {
                title: "By channel",
                first: "Channel",
                id: "by-channel",
                lines: snapshot.channels.iter().map(|l| line(l.label.clone(), &l.figures)).collect(),
            },
        ],
        health,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/overview.html")]
pub struct OverviewPage {
    layout: Layout,
    monitor: Monitor,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/_monitor.html")]
pub struct MonitorFragment {
    layout: Layout,
    monitor: Monitor,
}

/// `GET /admin?range=hour|day|week`.
pub async fn page(State(state): State<AppState>, admin: AdminUser, Query(q): Query<RangeQuery>) -> Response {
    let layout = admin.user.layout;
    match load(&state, &layout, Range::parse(&q.range)).await {
        Ok(monitor) => OverviewPage { layout, monitor }.into_response(),
        Err(response) => response,
    }
}

/// `GET /admin/monitor?range=…`: the monitoring section alone (htmx refresh).
pub async fn monitor(State(state): State<AppState>, admin: AdminUser, Query(q): Query<RangeQuery>) -> Response {
    let layout = admin.user.layout;
    match load(&state, &layout, Range::parse(&q.range)).await {
        Ok(monitor) => vary(MonitorFragment { layout, monitor }.into_response()),
        Err(response) => response,
    }
}

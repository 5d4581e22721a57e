//! `/console`: balance, spend today / 7 days / 30 days, and spend per day over the last 14 days as
//! a server-rendered SVG chart; the numbers refresh in place via htmx (`/console/stats`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Layout;
use super::auth::CurrentUser;
use crate::db::request_logs;
use crate::domain::money::Money;
use crate::domain::time::now_ms;
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;
const CHART_DAYS: i64 = 14;
/// The chart's drawing area, in SVG units.
const CHART_W: i64 = 560;
const CHART_H: i64 = 160;

/// One bar of the chart.
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    pub label: String,
    pub title: String,
}

/// The numbers of the dashboard (also the htmx fragment).
pub struct Stats {
    pub balance: String,
    pub today: String,
    pub week: String,
    pub month: String,
    pub requests_today: i64,
    pub bars: Vec<Bar>,
    pub chart_w: i64,
    pub chart_h: i64,
}

async fn stats(state: &AppState, user: &CurrentUser) -> Result<Stats, sqlx::Error> {
    let today = now_ms().div_euclid(DAY_MS);
    let totals = request_logs::daily_totals(state.db().pool(), user.id, (today - 29) * DAY_MS).await?;
    let sum_since = |first_day: i64| totals.iter().filter(|(d, ..)| *d >= first_day).map(|(_, c, _)| c).sum::<i64>();
    let per_day: Vec<(i64, i64)> = (today - CHART_DAYS + 1..=today)
        .map(|day| (day, totals.iter().find(|(d, ..)| *d == day).map_or(0, |(_, c, _)| *c)))
        .collect();
    let max = per_day.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1);
    let slot = CHART_W / CHART_DAYS;
    let bars = per_day
        .iter()
        .enumerate()
        .map(|(i, (day, cost))| {
            let height = if *cost == 0 { 0 } else { (cost * (CHART_H - 20) / max).max(2) };
            let date = time::OffsetDateTime::from_unix_timestamp(day * 86_400).map(|t| t.date()).ok();
            let label = date.map(|d| format!("{:02}-{:02}", u8::from(d.month()), d.day())).unwrap_or_default();
            Bar {
                x: i64::try_from(i).unwrap_or(0) * slot + 4,
                y: CHART_H - 16 - height,
                width: slot - 8,
                height,
                title: format!("{label}: {}", Money(*cost)),
                label,
            }
        })
        .collect();
    Ok(Stats {
        balance: user.balance.clone(),
        today: Money(sum_since(today)).to_string(),
        week: Money(sum_since(today - 6)).to_string(),
        month: Money(sum_since(today - 29)).to_string(),
        requests_today: totals.iter().filter(|(d, ..)| *d == today).map(|(.., n)| n).sum(),
        bars,
        chart_w: CHART_W,
        chart_h: CHART_H,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "console.html")]
pub struct Dashboard {
    layout: Layout,
    email: String,
    stats: Stats,
}

#[derive(Template, WebTemplate)]
#[template(path = "stats.html")]
pub struct StatsFragment {
    stats: Stats,
}

/// `GET /console`.
pub async fn page(State(state): State<AppState>, user: CurrentUser) -> Response {
    match stats(&state, &user).await {
        Ok(stats) => Dashboard { layout: user.layout.clone(), email: user.email, stats }.into_response(),
        Err(e) => failed(&e),
    }
}

/// `GET /console/stats`: the numbers and chart alone, for htmx to swap in.
pub async fn fragment(State(state): State<AppState>, user: CurrentUser) -> Response {
    match stats(&state, &user).await {
        Ok(stats) => StatsFragment { stats }.into_response(),
        Err(e) => failed(&e),
    }
}

fn failed(e: &sqlx::Error) -> Response {
    tracing::error!(error = %e, "loading the dashboard failed");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

//! `/console`: balance, spend today / 7 days / 30 days, and three server-rendered SVG charts —
//! spend per day over 14 days, requests per minute over the last hour, tokens by model (input vs
//! output) over 7 days. The numbers are aggregated in SQL over the `(user_id, created_at)` index;
//! they refresh in place via htmx (`/console/stats`). Chart geometry lives in `charts`.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::Layout;
use super::auth::CurrentUser;
use super::charts::{self, Column, Point, Stacked};
use crate::console::error::ConsoleError;
use crate::domain::money::Money;
use crate::domain::time::{DAY_MS, now_ms};
use crate::services::logs;
use crate::state::AppState;

const MINUTE_MS: i64 = 60_000;
const CHART_DAYS: i64 = 14;
const CHART_MINUTES: i64 = 60;
/// Days of the tokens-by-model chart, and how many models it shows.
const TOKEN_DAYS: i64 = 7;
const TOKEN_MODELS: i64 = 10;
/// The charts' drawing areas, in SVG units.
const CHART_W: i64 = 560;
const CHART_H: i64 = 160;
const MINUTES_W: i64 = 600;
const TOKENS_W: i64 = 620;

/// The numbers of the dashboard (also the htmx fragment).
pub struct Stats {
    pub balance: String,
    pub today: String,
    pub week: String,
    pub month: String,
    pub requests_today: i64,
    /// Spend per day.
    pub bars: Vec<Column>,
    pub chart_w: i64,
    pub chart_h: i64,
    pub axis_y: i64,
    /// Requests per minute over the last hour, and their total.
    pub minutes: Vec<Column>,
    pub minutes_w: i64,
    pub requests_hour: i64,
    /// Input (first) and output (second) tokens per model over the last days.
    pub tokens: Stacked,
}

fn day_label(day: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(day * 86_400).map(|t| t.date()).ok();
    date.map(|d| format!("{:02}-{:02}", u8::from(d.month()), d.day())).unwrap_or_default()
}

fn minute_label(minute: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(minute * 60)
        .map(|t| format!("{:02}:{:02}", t.hour(), t.minute()))
        .unwrap_or_default()
}

async fn stats(state: &AppState, user: &CurrentUser) -> Result<Stats, sqlx::Error> {
    let now = now_ms();
    let today = now.div_euclid(DAY_MS);
    let this_minute = now.div_euclid(MINUTE_MS);
    let first_minute = this_minute - CHART_MINUTES + 1;
    let since = (today - TOKEN_DAYS + 1) * DAY_MS;
    let figures =
        logs::usage_figures(state, user.id, (today - 29) * DAY_MS, first_minute * MINUTE_MS, since, TOKEN_MODELS)
            .await?;
    let totals = figures.daily;
    let sum_since = |first_day: i64| totals.iter().filter(|(d, ..)| *d >= first_day).map(|(_, c, _)| c).sum::<i64>();
    let days = (today - CHART_DAYS + 1..=today).map(|day| {
        let cost = totals.iter().find(|(d, ..)| *d == day).map_or(0, |(_, c, _)| *c);
        let label = day_label(day);
        Point { title: format!("{label}: {}", Money(cost)), label, value: cost }
    });

    let per_minute = figures.per_minute;
    let minutes = (first_minute..=this_minute).map(|minute| {
        let n = per_minute.iter().find(|(m, _)| *m == minute).map_or(0, |(_, n)| *n);
        let label = minute_label(minute);
        Point {
            title: format!("{label} UTC: {n} {}", user.layout.t("requests")),
            label: if minute % 10 == 0 { label } else { String::new() },
            value: n,
        }
    });

    let models = figures.tokens_by_model;
    let tokens = models
        .into_iter()
        .map(|(model, input, output)| {
            let model = if model.is_empty() { "—".to_string() } else { model };
            let title = format!(
                "{model}: {input} {} / {output} {}",
                user.layout.t("input tokens"),
                user.layout.t("output tokens")
            );
            (model, title, input, output)
        })
        .collect();

    Ok(Stats {
        balance: user.balance.clone(),
        today: Money(sum_since(today)).to_string(),
        week: Money(sum_since(today - 6)).to_string(),
        month: Money(sum_since(today - 29)).to_string(),
        requests_today: totals.iter().filter(|(d, ..)| *d == today).map(|(.., n)| n).sum(),
        bars: charts::columns(days.collect(), CHART_W, CHART_H),
        chart_w: CHART_W,
        chart_h: CHART_H,
        axis_y: CHART_H - charts::AXIS_H,
        minutes: charts::columns(minutes.collect(), MINUTES_W, CHART_H),
        minutes_w: MINUTES_W,
        requests_hour: per_minute.iter().map(|(_, n)| n).sum(),
        tokens: charts::stacked(tokens, TOKENS_W),
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "console.html")]
pub struct Dashboard {
    layout: Layout,
    email: String,
    stats: Stats,
    /// Operators are told when the site sends no mail (signups are then not verified).
    mail_off: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "stats.html")]
pub struct StatsFragment {
    layout: Layout,
    stats: Stats,
}

/// `GET /console`.
pub async fn page(State(state): State<AppState>, user: CurrentUser) -> Response {
    match stats(&state, &user).await {
        Ok(stats) => {
            let mail_off = matches!(user.role.as_str(), "root" | "admin") && !state.mailer().is_configured();
            Dashboard { layout: user.layout.clone(), email: user.email, stats, mail_off }.into_response()
        }
        Err(e) => ConsoleError::internal("loading the dashboard", e).into_response(),
    }
}

/// `GET /console/stats`: the numbers and charts alone, for htmx to swap in.
pub async fn fragment(State(state): State<AppState>, user: CurrentUser) -> Response {
    match stats(&state, &user).await {
        Ok(stats) => StatsFragment { layout: user.layout.clone(), stats }.into_response(),
        Err(e) => ConsoleError::internal("loading the dashboard", e).into_response(),
    }
}

//! `/console/billing`: balance, redeeming a code, and the ledger — top-ups, redemptions, rewards,
//! adjustments and refunds one by one, request charges summed per day — and the monthly
//! statement download (`/console/billing/statement.csv`, every row of a UTC month).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Layout;
use super::auth::{ClientAddr, CurrentUser};
use super::layout::format_time;
use crate::billing::RedeemError;
use crate::console::error::ConsoleError;
use crate::domain::money::Money;
use crate::domain::time::{now_ms, utc_month};
use crate::services::attempts;
use crate::services::codes;
use crate::services::statement::{self, Month};
use crate::state::AppState;

pub struct HistoryRow {
    pub time: String,
    pub what: String,
    pub amount: String,
    pub credit: bool,
    pub balance_after: String,
}

pub struct ChargeDay {
    pub day: String,
    pub amount: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "billing.html")]
pub struct BillingPage {
    layout: Layout,
    balance: String,
    /// What the user owes (a request cost beyond the balance), when anything.
    debt: Option<String>,
    history: Vec<HistoryRow>,
    charges: Vec<ChargeDay>,
    message: Option<String>,
    error: Option<&'static str>,
    /// The statement picker's month (`YYYY-MM`): the current UTC month, or the one refused.
    month: String,
    statement_error: Option<&'static str>,
}

/// What the page shows besides the ledger: the outcome of a form.
#[derive(Default)]
struct Outcome {
    message: Option<String>,
    error: Option<&'static str>,
    month: Option<String>,
    statement_error: Option<&'static str>,
}

/// A ledger row's kind, in the viewer's language.
fn describe(layout: &Layout, kind: &str) -> &'static str {
    match kind {
        "topup" => layout.t("Top-up"),
        "redemption" => layout.t("Redeemed code"),
        "invitation_reward" => layout.t("Invitation reward"),
        "welcome_credit" => layout.t("Welcome credit"),
        "refund" => layout.t("Refund"),
        "adjustment" => layout.t("Adjustment"),
        "debt" => layout.t("Debt"),
        "debt_paid" => layout.t("Debt paid"),
        _ => layout.t("Other"),
    }
}

async fn render(state: &AppState, user: &CurrentUser, balance: String, outcome: Outcome) -> Response {
    let history = match statement::recent(state, user.id, 100).await {
        Ok(rows) => rows,
        Err(e) => return ConsoleError::internal("the billing page", e).into_response(),
    };
    let since = (now_ms().div_euclid(86_400_000) - 29) * 86_400_000;
    let charges = match statement::charges_per_day(state, user.id, since).await {
        Ok(rows) => rows,
        Err(e) => return ConsoleError::internal("the billing page", e).into_response(),
    };
    let debt = match statement::debt(state, user.id).await {
        Ok(debt) => (debt > 0).then(|| Money(debt).to_string()),
        Err(e) => return ConsoleError::internal("the billing page", e).into_response(),
    };
    let page = BillingPage {
        layout: user.layout.clone(),
        balance,
        debt,
        history: history
            .into_iter()
            .map(|r| HistoryRow {
                time: format_time(r.created_at),
                what: match r.note.filter(|n| !n.is_empty()) {
                    Some(note) => format!("{} — {note}", describe(&user.layout, &r.kind)),
                    None => describe(&user.layout, &r.kind).to_string(),
                },
                credit: r.amount >= 0,
                amount: Money(r.amount).to_string(),
                balance_after: Money(r.balance_after).to_string(),
            })
            .collect(),
        charges: charges
            .into_iter()
            .map(|(day, amount)| ChargeDay {
                day: format_time(day * 86_400_000).chars().take(10).collect(),
                amount: Money(-amount).to_string(),
            })
            .collect(),
        message: outcome.message,
        error: outcome.error,
        month: outcome.month.unwrap_or_else(|| utc_month(now_ms())),
        statement_error: outcome.statement_error,
    };
    let refused = page.error.is_some() || page.statement_error.is_some();
    let status = if refused { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    (status, page).into_response()
}

/// `GET /console/billing`.
pub async fn page(State(state): State<AppState>, user: CurrentUser) -> Response {
    let balance = user.balance.clone();
    render(&state, &user, balance, Outcome::default()).await
}

#[derive(Deserialize)]
pub struct RedeemForm {
    #[serde(default)]
    code: String,
}

/// `POST /console/billing/redeem`: claims a code for the user (exactly once, whatever races).
/// Failed attempts count towards the same throttle as logins, so codes cannot be guessed fast.
pub async fn redeem(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    user: CurrentUser,
    Form(form): Form<RedeemForm>,
) -> Response {
    // The slot is taken before the code is tried (so concurrent guesses cannot all pass) and
    // given back when the code was good.
    let account = user.id.to_string();
    if attempts::attempt(&state, ip, "redeem", Some(&account)).await.is_err() {
        let balance = user.balance.clone();
        let error = user.layout.t("Too many attempts. Try again later.");
        return render(&state, &user, balance, Outcome { error: Some(error), ..Outcome::default() }).await;
    }
    let code = form.code.trim();
    match codes::redeem(&state, user.id, code).await {
        Ok((amount, balance)) => {
            attempts::succeeded(&state, ip, "redeem", &account).await;
            let message = user
                .layout
                .t("Redeemed: {amount} added to your balance.")
                .replace("{amount}", &Money(amount).to_string());
            let outcome = Outcome { message: Some(message), ..Outcome::default() };
            render(&state, &user, Money(balance).to_string(), outcome).await
        }
        Err(RedeemError::Invalid) => {
            let balance = user.balance.clone();
            // RedeemError::Invalid's text, in the viewer's language.
            let error = user.layout.t("This code is not valid, has expired or was already used.");
            render(&state, &user, balance, Outcome { error: Some(error), ..Outcome::default() }).await
        }
        Err(RedeemError::Db(e)) => ConsoleError::internal("the billing page", e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct StatementQuery {
    #[serde(default)]
    month: String,
}

/// `GET /console/billing/statement.csv?month=YYYY-MM`: the signed-in user's statement for a UTC
/// month (see `services::statement`). A month that is not `YYYY-MM` gets the billing page back
/// with the reason next to the picker (400).
pub async fn statement(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<StatementQuery>,
) -> Response {
    let month = match Month::parse(&query.month) {
        Ok(month) => month,
        Err(_) => {
            let balance = user.balance.clone();
            // Shown back as typed (escaped by the template), capped so the page stays small.
            let typed: String = query.month.chars().take(20).collect();
            let outcome = Outcome {
                month: Some(typed),
                statement_error: Some(user.layout.t("Choose a month as YYYY-MM, for example 2026-11.")),
                ..Outcome::default()
            };
            return render(&state, &user, balance, outcome).await;
        }
    };
    let disposition = format!("attachment; filename=\"{}\"", month.file_name());
    match statement::csv(&state, user.id, month).await {
        Ok(chunks) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            Body::from_stream(chunks),
        )
            .into_response(),
        Err(e) => ConsoleError::internal("the billing page", e).into_response(),
    }
}

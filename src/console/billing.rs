//! `/console/billing`: balance, redeeming a code, and the ledger — top-ups, redemptions, rewards,
//! adjustments and refunds one by one, request charges summed per day.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Layout;
use super::auth::{ClientAddr, CurrentUser};
use super::keys::format_time;
use crate::billing::{self, RedeemError};
use crate::db::ledger;
use crate::domain::money::Money;
use crate::domain::time::now_ms;
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
    history: Vec<HistoryRow>,
    charges: Vec<ChargeDay>,
    message: Option<String>,
    error: Option<&'static str>,
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
        _ => layout.t("Other"),
    }
}

async fn render(
    state: &AppState,
    user: &CurrentUser,
    balance: String,
    message: Option<String>,
    error: Option<&'static str>,
) -> Response {
    let pool = state.db().pool();
    let history = match ledger::history(pool, user.id, 100).await {
        Ok(rows) => rows,
        Err(e) => return failed(&e),
    };
    let since = (now_ms().div_euclid(86_400_000) - 29) * 86_400_000;
    let charges = match ledger::charges_per_day(pool, user.id, since).await {
        Ok(rows) => rows,
        Err(e) => return failed(&e),
    };
    let page = BillingPage {
        layout: user.layout.clone(),
        balance,
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
        message,
        error,
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    (status, page).into_response()
}

/// `GET /console/billing`.
pub async fn page(State(state): State<AppState>, user: CurrentUser) -> Response {
    let balance = user.balance.clone();
    render(&state, &user, balance, None, None).await
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
    if state.login_throttle().attempt(ip, "redeem", Some(&account)).is_err() {
        let balance = user.balance.clone();
        let error = user.layout.t("Too many attempts. Try again later.");
        return render(&state, &user, balance, None, Some(error)).await;
    }
    let code = form.code.trim();
    match billing::redeem(state.db(), user.id, code).await {
        Ok((amount, balance)) => {
            state.login_throttle().succeeded(ip, "redeem", &account);
            let message = user
                .layout
                .t("Redeemed: {amount} added to your balance.")
                .replace("{amount}", &Money(amount).to_string());
            render(&state, &user, Money(balance).to_string(), Some(message), None).await
        }
        Err(RedeemError::Invalid) => {
            let balance = user.balance.clone();
            // RedeemError::Invalid's text, in the viewer's language.
            let error = user.layout.t("This code is not valid, has expired or was already used.");
            render(&state, &user, balance, None, Some(error)).await
        }
        Err(RedeemError::Db(e)) => failed(&e),
    }
}

fn failed(e: &sqlx::Error) -> Response {
    tracing::error!(error = %e, "the billing page failed");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

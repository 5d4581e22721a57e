//! Top-ups with Stripe: `/console/topup` (amounts, what each credits, Pay), its return pages and
//! `/console/payments` (the user's payments). The return pages never credit anything: the
//! success page shows the payment as the webhook left it and polls (htmx) until it is paid.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::Layout;
use super::auth::{CurrentUser, NoticePage};
use super::htmx::{HxRequest, vary};
use super::layout::format_time;
use crate::console::error::ConsoleError;
use crate::db::payments::{Filter, Payment};
use crate::domain::money::Money;
use crate::payments::{Quote, QuoteError, format_charge, format_minor};
use crate::services::payments::{self as topups, TopupError};
use crate::services::users;
use crate::state::AppState;

/// One amount the page offers, with what it credits.
pub struct Offer {
    /// The amount as the form posts it (`10.00`).
    pub amount: String,
    pub charge: String,
    pub credit: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "topup.html")]
pub struct TopupPage {
    layout: Layout,
    balance: String,
    /// Stripe is configured: the page offers amounts.
    available: bool,
    offers: Vec<Offer>,
    /// The custom amount's bounds and currency, as shown.
    min: String,
    max: String,
    currency: String,
    /// The group's bonus in percent (negative: a fee), 0 for none.
    bonus: i32,
    custom: String,
    /// The custom amount's quote, when one was asked for.
    quote: Option<Offer>,
    cancelled: bool,
    error: Option<&'static str>,
}

#[derive(Template, WebTemplate)]
#[template(path = "_topup_quote_body.html")]
pub struct QuoteFragment {
    layout: Layout,
    quote: Option<Offer>,
    error: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct TopupQuery {
    /// A custom amount to quote.
    #[serde(default)]
    amount: Option<String>,
    /// Back from Stripe's page without paying.
    #[serde(default)]
    cancelled: Option<String>,
}

fn offer(quote: &Quote, site_currency: &str) -> Offer {
    Offer {
        amount: format_minor(quote.charge, &quote.currency),
        charge: format_charge(quote.charge, &quote.currency),
        credit: format!("{} {site_currency}", Money(quote.credit)),
    }
}

fn quote_error(layout: &Layout, e: &QuoteError) -> &'static str {
    match e {
        QuoteError::NotAnAmount => layout.t("Enter an amount like 10 or 12.50."),
        QuoteError::BelowMinimum => layout.t("The amount is below the minimum."),
        QuoteError::AboveMaximum => layout.t("The amount is above the maximum."),
    }
}

/// The user's group (top-up bonuses are per group).
async fn group_of(state: &AppState, user_id: i64) -> Result<String, Response> {
    match users::summary(state, user_id).await {
        Ok(Some(user)) => Ok(user.group),
        Ok(None) => Err(StatusCode::NOT_FOUND.into_response()),
        Err(e) => Err(ConsoleError::internal("a top-up page", e).into_response()),
    }
}

/// The custom amount's quote, or why there is none (`None, None` for an empty field).
fn quote_custom(state: &AppState, layout: &Layout, group: &str, custom: &str) -> (Option<Offer>, Option<&'static str>) {
    if custom.trim().is_empty() {
        return (None, None);
    }
    let site = state.site();
    let quoted =
        site.topup.parse_amount(custom).ok_or(QuoteError::NotAnAmount).and_then(|c| site.topup.quote(c, group));
    match quoted {
        Ok(q) => (Some(offer(&q, &site.currency)), None),
        Err(e) => (None, Some(quote_error(layout, &e))),
    }
}

async fn render(
    state: &AppState,
    user: &CurrentUser,
    custom: String,
    cancelled: bool,
    error: Option<&'static str>,
) -> Response {
    let group = match group_of(state, user.id).await {
        Ok(group) => group,
        Err(response) => return response,
    };
    let site = state.site();
    let topup = &site.topup;
    let offers = topup.presets.iter().filter_map(|&p| topup.quote(p, &group).ok()).map(|q| offer(&q, &site.currency));
    let (quote, quote_error) = quote_custom(state, &user.layout, &group, &custom);
    let page = TopupPage {
        layout: user.layout.clone(),
        balance: user.balance.clone(),
        available: site.stripe_ready(),
        offers: offers.collect(),
        min: format_minor(topup.min, &topup.currency),
        max: format_minor(topup.max, &topup.currency),
        currency: topup.currency.to_ascii_uppercase(),
        bonus: topup.bonus_for(&group),
        custom,
        quote,
        cancelled,
        error: error.or(quote_error),
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    (status, page).into_response()
}

/// `GET /console/topup`; with `?amount=` it quotes a custom amount (htmx asks for just the quote).
pub async fn page(
    State(state): State<AppState>,
    HxRequest(hx): HxRequest,
    user: CurrentUser,
    Query(query): Query<TopupQuery>,
) -> Response {
    let custom = query.amount.unwrap_or_default();
    if hx {
        let group = match group_of(&state, user.id).await {
            Ok(group) => group,
            Err(response) => return response,
        };
        let (quote, error) = quote_custom(&state, &user.layout, &group, &custom);
        return vary(QuoteFragment { layout: user.layout.clone(), quote, error }.into_response());
    }
    vary(render(&state, &user, custom, query.cancelled.is_some(), None).await)
}

#[derive(Deserialize)]
pub struct PayForm {
    #[serde(default)]
    amount: String,
}

/// `POST /console/topup`: writes the pending payment, opens Stripe's Checkout and sends the
/// browser there (htmx through `HX-Redirect`, a plain form through a 303).
pub async fn pay(
    State(state): State<AppState>,
    HxRequest(hx): HxRequest,
    user: CurrentUser,
    Form(form): Form<PayForm>,
) -> Response {
    let layout = &user.layout;
    let Some(charge) = state.site().topup.parse_amount(&form.amount) else {
        let error = quote_error(layout, &QuoteError::NotAnAmount);
        return render(&state, &user, form.amount, false, Some(error)).await;
    };
    match topups::start(&state, user.id, charge).await {
        Ok(url) if hx => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            match HeaderValue::from_str(&url) {
                Ok(value) => {
                    response.headers_mut().insert("hx-redirect", value);
                    response
                }
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        Ok(url) => Redirect::to(&url).into_response(),
        Err(TopupError::Db(e)) => ConsoleError::internal("a top-up page", e).into_response(),
        Err(e) => {
            let error = match &e {
                TopupError::Quote(q) => quote_error(layout, q),
                TopupError::NotAvailable => layout.t("Top-ups are not available on this site yet."),
                TopupError::TooManyPending => {
                    layout.t("Too many unfinished payments. Finish one, or try again in an hour.")
                }
                _ => layout.t("The payment page could not be opened. Try again in a moment."),
            };
            render(&state, &user, form.amount, false, Some(error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct PaymentQuery {
    #[serde(default)]
    payment: Option<String>,
}

/// A payment as the user's pages show it.
pub struct PaymentView {
    pub id: i64,
    pub time: String,
    pub charge: String,
    pub credit: String,
    /// `pending`, `paid`, `failed`, `expired`, `refunded` or `partially_refunded`.
    pub status: String,
    pub refunded: String,
    /// Where to finish paying a pending one.
    pub checkout_url: Option<String>,
}

impl PaymentView {
    pub fn status_text(&self) -> &'static str {
        crate::payments::status_text(&self.status)
    }
}

fn view(payment: &Payment, site_currency: &str) -> PaymentView {
    PaymentView {
        id: payment.id,
        time: format_time(payment.created_at),
        charge: format_charge(payment.charge, &payment.currency),
        credit: format!("{} {site_currency}", Money(payment.credit)),
        status: payment.status.clone(),
        refunded: if payment.refunded > 0 { format_charge(payment.refunded, &payment.currency) } else { String::new() },
        checkout_url: payment.checkout_url.clone().filter(|_| payment.status == "pending"),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "topup_success.html")]
pub struct SuccessPage {
    layout: Layout,
    payment: PaymentView,
    balance: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "_topup_status.html")]
pub struct StatusFragment {
    layout: Layout,
    payment: PaymentView,
    balance: String,
}

/// The user's own payment named by `?payment=`, or the page to answer instead.
async fn own_payment(state: &AppState, user: &CurrentUser, query: &PaymentQuery) -> Result<Payment, Response> {
    let not_found = || {
        let page =
            NoticePage::new(user.layout.clone(), "No such payment", "This payment does not exist or is not yours.");
        (StatusCode::NOT_FOUND, page).into_response()
    };
    let Some(id) = query.payment.as_deref().and_then(|p| p.parse::<i64>().ok()) else { return Err(not_found()) };
    match topups::get(state, id).await {
        Ok(Some(payment)) if payment.user_id == user.id => Ok(payment),
        Ok(_) => Err(not_found()),
        Err(e) => Err(ConsoleError::internal("a top-up page", e).into_response()),
    }
}

/// `GET /console/topup/success?payment=ID`: Stripe sends the buyer here. Shows the payment as
/// the webhook left it ("crediting…" until then, polled by htmx, which gets only the status).
pub async fn success(
    State(state): State<AppState>,
    HxRequest(hx): HxRequest,
    user: CurrentUser,
    Query(query): Query<PaymentQuery>,
) -> Response {
    let payment = match own_payment(&state, &user, &query).await {
        Ok(payment) => payment,
        Err(response) => return response,
    };
    // The balance now, not the one the session was loaded with before the credit landed.
    let balance = match users::balance(&state, user.id).await {
        Ok(balance) => Money(balance.unwrap_or_default()).to_string(),
        Err(e) => return ConsoleError::internal("a top-up page", e).into_response(),
    };
    let payment = view(&payment, &state.site().currency);
    let layout = user.layout.clone();
    if hx {
        return vary(StatusFragment { layout, payment, balance }.into_response());
    }
    vary(SuccessPage { layout, payment, balance }.into_response())
}

/// `GET /console/topup/cancel?payment=ID`: back from Stripe without paying. Nothing was charged;
/// the payment stays pending until Stripe expires its page (the user may still go back to it).
pub async fn cancel(State(state): State<AppState>, user: CurrentUser, Query(query): Query<PaymentQuery>) -> Response {
    if let Err(response) = own_payment(&state, &user, &query).await {
        return response;
    }
    Redirect::to("/console/topup?cancelled=1").into_response()
}

#[derive(Template, WebTemplate)]
#[template(path = "payments.html")]
pub struct PaymentsPage {
    layout: Layout,
    payments: Vec<PaymentView>,
    available: bool,
}

/// `GET /console/payments`: the user's top-ups, newest first.
pub async fn history(State(state): State<AppState>, user: CurrentUser) -> Response {
    let filter = Filter { user_id: Some(user.id), ..Filter::default() };
    match topups::list(&state, &filter, 100).await {
        Ok(rows) => {
            let site = state.site();
            let payments = rows.iter().map(|p| view(p, &site.currency)).collect();
            PaymentsPage { layout: user.layout.clone(), payments, available: site.stripe_ready() }.into_response()
        }
        Err(e) => ConsoleError::internal("a top-up page", e).into_response(),
    }
}

//! `/admin/payments`: every user's payments, newest first — what was charged, what it credits,
//! its status, refunds and what they could not take back — searchable by the payer's email and
//! filtered by status, paged back by id. A pending payment can be marked failed (htmx swaps its
//! row; a plain form redirects back). Everything goes through `services::payments::admin`, like
//! `/api/admin/payments`.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AdminUser;
use crate::console::Layout;
use crate::console::auth::NoticePage;
use crate::console::error::ConsoleError;
use crate::console::error::PathId;
use crate::console::htmx::{HxRequest, vary};
use crate::console::layout::format_time;
use crate::db::payments::Payment;
use crate::domain::money::Money;
use crate::payments::format_charge;
use crate::routes::Id;
use crate::routes::Routes;
use crate::services::logs::PAGE;
use crate::services::payments;
use crate::services::payments::admin::{PaymentAdminError, PaymentQuery, STATUSES};
use crate::state::AppState;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes.page_get("/admin/payments", page).page_post("/admin/payments/{id}/fail", fail)
}

/// One payment as a table row shows it.
pub struct PaymentLine {
    pub id: i64,
    pub time: String,
    pub user_id: i64,
    pub email: String,
    pub charge: String,
    pub credit: String,
    pub status: String,
    /// The refunded part of the charge, when there is one.
    pub refunded: Option<String>,
    /// Credit a refund could not take back (already spent), when there is some.
    pub unrecovered: Option<String>,
    pub failure: String,
    pub session: String,
}

impl PaymentLine {
    fn new(p: Payment, site_currency: &str) -> Self {
        Self {
            id: p.id,
            time: format_time(p.created_at),
            user_id: p.user_id,
            email: p.email,
            charge: format_charge(p.charge, &p.currency),
            credit: format!("{} {site_currency}", Money(p.credit)),
            refunded: (p.refunded != 0).then(|| format_charge(p.refunded, &p.currency)),
            unrecovered: (p.unrecovered_credit != 0)
                .then(|| format!("{} {site_currency}", Money(p.unrecovered_credit))),
            failure: p.failure_reason.unwrap_or_default(),
            session: p.session_id.unwrap_or_default(),
            status: p.status,
        }
    }

    fn pending(&self) -> bool {
        self.status == "pending"
    }

    /// The status badge's class and (English) words.
    fn badge(&self) -> (&'static str, &'static str) {
        let class = match self.status.as_str() {
            "paid" => " ok",
            "failed" => " fail",
            "refunded" | "partially_refunded" => " accent",
            _ => "",
        };
        (class, crate::payments::status_text(&self.status))
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/payments.html")]
pub struct PaymentsPage {
    layout: Layout,
    query: PaymentQuery,
    statuses: &'static [&'static str],
    rows: Vec<PaymentLine>,
    older: Option<String>,
    newest: String,
    notice: Option<&'static str>,
    error: Option<String>,
}

impl PaymentsPage {
    fn selected(&self, status: &str) -> bool {
        self.query.status.trim() == status
    }
}

/// One row, for htmx after an action.
#[derive(Template, WebTemplate)]
#[template(path = "admin/_payment_row.html")]
pub struct PaymentRow {
    layout: Layout,
    row: PaymentLine,
    row_error: Option<String>,
}

/// `?done=` after a redirect, next to the filters.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
    #[serde(default)]
    error: String,
}

/// The refusal of marking a payment failed, as the English text to translate.
const NOT_PENDING: &str = "Only a pending payment can be marked failed; this one is no longer pending.";

/// An unknown payment id: the 404 page.
fn not_found(layout: Layout) -> Response {
    let page = NoticePage::new(layout, "No such payment", "This payment does not exist.");
    (StatusCode::NOT_FOUND, page).into_response()
}

/// `GET /admin/payments?email=&status=&before=`.
pub async fn page(
    State(state): State<AppState>,
    admin: AdminUser,
    Query(query): Query<PaymentQuery>,
    Query(done): Query<Done>,
) -> Response {
    let layout = admin.user.layout;
    let currency = state.site().currency.clone();
    let (rows, error, status) = match payments::admin::list(&state, &query, PAGE).await {
        Ok(rows) => (rows, None, StatusCode::OK),
        Err(PaymentAdminError::Invalid(m)) => (Vec::new(), Some(m), StatusCode::BAD_REQUEST),
        Err(e) => return ConsoleError::internal("an /admin/payments page", e).into_response(),
    };
    let filters = query.query_string();
    let older = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| format!("/admin/payments?{filters}&before={}", r.id)))
        .flatten();
    let error = error.or_else(|| match done.error.as_str() {
        "not-pending" => Some(layout.t(NOT_PENDING).to_string()),
        _ => None,
    });
    let page = PaymentsPage {
        rows: rows.into_iter().map(|p| PaymentLine::new(p, &currency)).collect(),
        older,
        newest: format!("/admin/payments?{filters}"),
        notice: (done.done == "failed").then_some("Payment marked failed."),
        error,
        statuses: STATUSES,
        query,
        layout,
    };
    (status, page).into_response()
}

/// `POST /admin/payments/{id}/fail`: a pending payment becomes `failed`. htmx gets the row back
/// (with the reason when refused); a plain form goes back to the list.
pub async fn fail(
    State(state): State<AppState>,
    admin: AdminUser,
    HxRequest(hx): HxRequest,
    Id(id, _): PathId,
) -> Response {
    let currency = state.site().currency.clone();
    let layout = admin.user.layout.clone();
    match payments::admin::mark_failed(&state, &admin.actor, id).await {
        Ok(payment) if hx => {
            vary(PaymentRow { layout, row: PaymentLine::new(payment, &currency), row_error: None }.into_response())
        }
        Ok(_) => Redirect::to("/admin/payments?done=failed").into_response(),
        Err(PaymentAdminError::Db(e)) => ConsoleError::internal("an /admin/payments page", e).into_response(),
        Err(PaymentAdminError::NotFound) => not_found(layout),
        Err(_) if hx => {
            // The row as it is now, with the reason, so the operator sees what happened (200:
            // htmx swaps only successful answers).
            match payments::get(&state, id).await {
                Ok(Some(payment)) => {
                    let row_error = Some(layout.t(NOT_PENDING).to_string());
                    let row = PaymentRow { layout, row: PaymentLine::new(payment, &currency), row_error };
                    vary(row.into_response())
                }
                Ok(None) => not_found(layout),
                Err(e) => ConsoleError::internal("an /admin/payments page", e).into_response(),
            }
        }
        Err(_) => vary(Redirect::to("/admin/payments?error=not-pending").into_response()),
    }
}

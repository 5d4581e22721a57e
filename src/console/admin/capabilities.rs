//! The capabilities section of `/admin/pricing`: each model's output cap, context window and
//! whether it takes tools, images, audio and reasoning hints, with inline row editing (htmx swaps
//! one row; without JavaScript `?caps_edit=<model>` opens the same row as a form), a form for any
//! model name, and "reset to default". Through `services::pricing::capabilities`, like
//! `/api/admin/capabilities*`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AdminUser;
use super::capability_table::CapsForm;
use super::pricing::refused;
use crate::console::Layout;
use crate::console::error::ConsoleError;
use crate::console::htmx::{HxRequest, vary};
use crate::routes::Routes;
use crate::services::pricing::PricingError;
use crate::services::pricing::capabilities::{self, CapabilityView};
use crate::state::AppState;

/// Adds this section's routes.
pub fn routes(routes: Routes) -> Routes {
    routes
        .page_get("/admin/pricing/capabilities/row", row)
        .page_post("/admin/pricing/capabilities", save)
        .page_post("/admin/pricing/capabilities/reset", reset)
}

/// One row of the capabilities table: shown, or open as a form (`edit`) holding `cform`.
#[derive(Template, WebTemplate)]
#[template(path = "admin/_capability_row.html")]
pub struct CapabilityRow {
    layout: Layout,
    row: CapabilityView,
    cform: CapsForm,
    edit: bool,
    row_error: Option<String>,
}

#[derive(Deserialize)]
pub struct RowQuery {
    #[serde(default)]
    model: String,
    #[serde(default)]
    edit: bool,
}

/// `GET /admin/pricing/capabilities/row?model=&edit=true`: one row, shown or as a form (htmx).
pub async fn row(State(state): State<AppState>, admin: AdminUser, Query(q): Query<RowQuery>) -> Response {
    if q.model.trim().is_empty() {
        return (StatusCode::NOT_FOUND, "No such model.").into_response();
    }
    match capabilities::get(&state, q.model.trim()).await {
        Ok(row) => shown(admin, row, q.edit),
        Err(e) => ConsoleError::internal("an /admin/pricing page", e).into_response(),
    }
}

/// One row as the table shows it (`edit`: as a form holding its values).
fn shown(admin: AdminUser, row: CapabilityView, edit: bool) -> Response {
    let cform = CapsForm::from(&row);
    vary(CapabilityRow { layout: admin.user.layout, row, cform, edit, row_error: None }.into_response())
}

/// `POST /admin/pricing/capabilities`: set a model's capabilities (a row edit, or any model by
/// name). htmx gets the row back (as a form with the reason when refused).
pub async fn save(
    State(state): State<AppState>,
    admin: AdminUser,
    HxRequest(hx): HxRequest,
    Form(form): Form<CapsForm>,
) -> Response {
    let saved = match form.parse() {
        Ok(caps) => capabilities::set(&state, &admin.actor, &form.model, &caps).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(row) if hx => shown(admin, row, false),
        Ok(_) => Redirect::to("/admin/pricing?done=caps-saved#capabilities").into_response(),
        Err(PricingError::Invalid(m)) if hx => {
            let row = match capabilities::get(&state, form.model.trim()).await {
                Ok(row) => row,
                Err(e) => return ConsoleError::internal("an /admin/pricing page", e).into_response(),
            };
            let page = CapabilityRow { layout: admin.user.layout, row, cform: form, edit: true, row_error: Some(m) };
            vary(page.into_response())
        }
        Err(e) => refused(&state, admin, e, |page| page.caps.form = form).await,
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    model: String,
}

/// `POST /admin/pricing/capabilities/reset`: back to the shipped default. htmx gets the row back.
pub async fn reset(
    State(state): State<AppState>,
    admin: AdminUser,
    HxRequest(hx): HxRequest,
    Form(form): Form<ResetForm>,
) -> Response {
    if let Err(e) = capabilities::reset(&state, &admin.actor, &form.model).await {
        return refused(&state, admin, e, |_| {}).await;
    }
    if !hx {
        return Redirect::to("/admin/pricing?done=caps-reset#capabilities").into_response();
    }
    match capabilities::get(&state, form.model.trim()).await {
        Ok(row) => shown(admin, row, false),
        Err(e) => ConsoleError::internal("an /admin/pricing page", e).into_response(),
    }
}

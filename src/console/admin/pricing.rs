//! `/admin/pricing`: the model price table (per 1M tokens: input, output, cached input, cache
//! write; or per request) with search and inline row editing (htmx swaps one row; without
//! JavaScript `?edit=<model>` opens the same row as a form), per-group prices, One API / New API
//! ratio import and export, and the default price list. Through `services::pricing::admin`, like
//! `/api/admin/prices*`. The model capabilities section at the bottom is `capabilities`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AdminUser;
use super::capability_table::{self, CapsSection};
use crate::console::Layout;
use crate::console::error::ConsoleError;
use crate::console::htmx::{HxRequest, vary};
use crate::routes::Routes;
use crate::services::pricing;
use crate::services::pricing::admin::PriceView;
use crate::services::pricing::{PriceInput, PricingError};
use crate::state::AppState;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes
        .page_get("/admin/pricing", page)
        .page_get("/admin/pricing/row", row)
        .page_post("/admin/pricing/prices", save_price)
        .page_post("/admin/pricing/prices/delete", delete_price)
        .page_post("/admin/pricing/overrides", save_override)
        .page_post("/admin/pricing/overrides/delete", delete_override)
        .page_post("/admin/pricing/import", import)
        .page_get("/admin/pricing/export", export)
        .page_post("/admin/pricing/defaults", defaults)
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/pricing.html")]
pub struct PricingPage {
    layout: Layout,
    prices: Vec<PriceView>,
    overrides: Vec<PriceView>,
    groups: Vec<String>,
    q: String,
    /// The model whose row is open as a form (without JavaScript).
    editing: Option<String>,
    /// The price form as sent (new price or a refused row edit).
    form: PriceForm,
    /// The override form as sent.
    override_form: PriceForm,
    ratios: String,
    /// The model capabilities table (`capabilities`).
    pub(super) caps: CapsSection,
    notice: Option<&'static str>,
    error: Option<String>,
}

impl PricingPage {
    fn is_editing(&self, model: &str) -> bool {
        self.editing.as_deref() == Some(model)
    }
}

/// One row of the price table: shown, or open as a form (`edit`).
#[derive(Template, WebTemplate)]
#[template(path = "admin/_price_row.html")]
pub struct PriceRow {
    layout: Layout,
    row: PriceView,
    edit: bool,
    row_error: Option<String>,
}

/// A price form: decimal strings, empty for "not priced this way".
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PriceForm {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub input: String,
    #[serde(default)]
    pub output: String,
    #[serde(default)]
    pub cached_input: String,
    #[serde(default)]
    pub cache_write: String,
    #[serde(default)]
    pub per_request: String,
}

impl PriceForm {
    fn input(&self) -> PriceInput {
        let part = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        PriceInput {
            input: part(&self.input),
            output: part(&self.output),
            cached_input: part(&self.cached_input),
            cache_write: part(&self.cache_write),
            per_request: part(&self.per_request),
        }
    }

    /// The form's values as a row (to reopen a refused edit as sent).
    fn as_row(&self) -> PriceView {
        let part = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        PriceView {
            model: self.model.trim().to_string(),
            group: None,
            input: part(&self.input),
            output: part(&self.output),
            cached_input: part(&self.cached_input),
            cache_write: part(&self.cache_write),
            per_request: part(&self.per_request),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    edit: String,
    #[serde(default)]
    caps_edit: String,
    #[serde(default)]
    done: String,
}

fn notice_for(done: &str) -> Option<&'static str> {
    match done {
        "saved" => Some("Price saved."),
        "deleted" => Some("Price removed."),
        "override" => Some("Group price saved."),
        "override-deleted" => Some("Group price removed."),
        "imported" => Some("Ratios imported."),
        "defaults" => Some("Default prices applied."),
        "caps-saved" => Some("Capabilities saved."),
        "caps-reset" => Some("Capabilities reset to the default."),
        _ => None,
    }
}

async fn build(state: &AppState, layout: Layout, q: &str) -> Result<PricingPage, PricingError> {
    Ok(PricingPage {
        layout,
        prices: pricing::admin::list(state, Some(q)).await?,
        overrides: pricing::admin::overrides(state).await?,
        groups: pricing::groups::all(state).await?.into_iter().map(|g| g.name).collect(),
        q: q.to_string(),
        editing: None,
        form: PriceForm::default(),
        override_form: PriceForm::default(),
        ratios: String::new(),
        caps: capability_table::section(state, q).await?,
        notice: None,
        error: None,
    })
}

/// `GET /admin/pricing?q=&edit=`.
pub async fn page(State(state): State<AppState>, admin: AdminUser, Query(q): Query<PageQuery>) -> Response {
    match build(&state, admin.user.layout, &q.q).await {
        Ok(mut page) => {
            page.editing = Some(q.edit).filter(|e| !e.is_empty());
            page.caps.editing = Some(q.caps_edit).filter(|e| !e.is_empty());
            page.notice = notice_for(&q.done);
            page.into_response()
        }
        Err(e) => ConsoleError::internal("an /admin/pricing page", e).into_response(),
    }
}

/// The page again with a refusal (status 400) and `tweak` applied (the form as sent).
pub(super) async fn refused(
    state: &AppState,
    admin: AdminUser,
    error: PricingError,
    tweak: impl FnOnce(&mut PricingPage),
) -> Response {
    let message = match error {
        PricingError::Invalid(m) => m,
        PricingError::Internal(e) => return ConsoleError::internal("an /admin/pricing page", e).into_response(),
    };
    match build(state, admin.user.layout, "").await {
        Ok(mut page) => {
            page.error = Some(message);
            tweak(&mut page);
            (StatusCode::BAD_REQUEST, page).into_response()
        }
        Err(e) => ConsoleError::internal("an /admin/pricing page", e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct RowQuery {
    #[serde(default)]
    model: String,
    #[serde(default)]
    edit: bool,
}

/// `GET /admin/pricing/row?model=&edit=true`: one row, shown or as a form (htmx).
pub async fn row(State(state): State<AppState>, admin: AdminUser, Query(q): Query<RowQuery>) -> Response {
    match pricing::admin::get(&state, &q.model).await {
        Ok(Some(row)) => {
            vary(PriceRow { layout: admin.user.layout, row, edit: q.edit, row_error: None }.into_response())
        }
        Ok(None) => (StatusCode::NOT_FOUND, "No such price.").into_response(),
        Err(e) => ConsoleError::internal("an /admin/pricing page", e).into_response(),
    }
}

/// `POST /admin/pricing/prices`: set a model's price (a new one, or a row edit). htmx gets the
/// row back (as a form with the reason when refused).
pub async fn save_price(
    State(state): State<AppState>,
    admin: AdminUser,
    HxRequest(hx): HxRequest,
    Form(form): Form<PriceForm>,
) -> Response {
    match pricing::admin::set(&state, &admin.actor, &form.model, &form.input()).await {
        Ok(row) if hx => {
            vary(PriceRow { layout: admin.user.layout, row, edit: false, row_error: None }.into_response())
        }
        Ok(_) => Redirect::to("/admin/pricing?done=saved").into_response(),
        Err(PricingError::Invalid(m)) if hx => vary(
            PriceRow { layout: admin.user.layout, row: form.as_row(), edit: true, row_error: Some(m) }.into_response(),
        ),
        Err(e) => refused(&state, admin, e, |page| page.form = form).await,
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    model: String,
    #[serde(default)]
    group: String,
}

/// `POST /admin/pricing/prices/delete`.
pub async fn delete_price(
    State(state): State<AppState>,
    admin: AdminUser,
    HxRequest(hx): HxRequest,
    Form(form): Form<DeleteForm>,
) -> Response {
    match pricing::admin::delete(&state, &admin.actor, &form.model).await {
        // htmx swaps the row for nothing.
        Ok(_) if hx => vary(StatusCode::OK.into_response()),
        Ok(_) => Redirect::to("/admin/pricing?done=deleted").into_response(),
        Err(e) => refused(&state, admin, e, |_| {}).await,
    }
}

/// `POST /admin/pricing/overrides`: a group's own price for a model.
pub async fn save_override(State(state): State<AppState>, admin: AdminUser, Form(form): Form<PriceForm>) -> Response {
    match pricing::admin::set_override(&state, &admin.actor, &form.group, &form.model, &form.input()).await {
        Ok(_) => Redirect::to("/admin/pricing?done=override#overrides").into_response(),
        Err(e) => refused(&state, admin, e, |page| page.override_form = form).await,
    }
}

/// `POST /admin/pricing/overrides/delete`.
pub async fn delete_override(
    State(state): State<AppState>,
    admin: AdminUser,
    Form(form): Form<DeleteForm>,
) -> Response {
    match pricing::admin::delete_override(&state, &admin.actor, &form.group, &form.model).await {
        Ok(_) => Redirect::to("/admin/pricing?done=override-deleted#overrides").into_response(),
        Err(e) => refused(&state, admin, e, |_| {}).await,
    }
}

#[derive(Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    ratios: String,
}

/// `POST /admin/pricing/import`: One API / New API ratio JSON, all or nothing.
pub async fn import(State(state): State<AppState>, admin: AdminUser, Form(form): Form<ImportForm>) -> Response {
    match pricing::admin::import_ratios(&state, &admin.actor, &form.ratios).await {
        Ok(_) => Redirect::to("/admin/pricing?done=imported").into_response(),
        Err(e) => refused(&state, admin, e, |page| page.ratios = form.ratios).await,
    }
}

/// `GET /admin/pricing/export`: our prices as ratio JSON, as a download.
pub async fn export(State(state): State<AppState>, _: AdminUser) -> Response {
    match pricing::admin::export_ratios(&state).await {
        Ok(json) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"ratios.json\""),
            ],
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
            .into_response(),
        Err(e) => ConsoleError::internal("an /admin/pricing page", e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct DefaultsForm {
    #[serde(default)]
    overwrite: Option<String>,
}

/// `POST /admin/pricing/defaults`: apply the default price list (existing prices kept unless
/// `overwrite` is ticked).
pub async fn defaults(State(state): State<AppState>, admin: AdminUser, Form(form): Form<DefaultsForm>) -> Response {
    match pricing::admin::apply_defaults(&state, &admin.actor, form.overwrite.is_some()).await {
        Ok(_) => Redirect::to("/admin/pricing?done=defaults").into_response(),
        Err(e) => refused(&state, admin, e, |_| {}).await,
    }
}

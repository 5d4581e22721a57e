//! `/admin/codes`: generate redemption codes (a batch name, a value, a count, optional prefix and
//! expiry), list and filter them by status and batch, export CSV, void unused ones (one or a
//! whole batch). The code section (`templates/_codes.html`, [`CodesSection`]) is shared with the
//! reseller page, which shows the same section over the reseller's own codes. Everything goes
//! through `services::codes`, like `/api/admin/codes`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AdminUser;
use crate::api::codes::{ListQuery, csv_response};
use crate::console::Layout;
use crate::console::error::ConsoleError;
use crate::console::error::PathId;
use crate::console::layout::format_time;
use crate::db::codes::CodeRow;
use crate::domain::money::Money;
use crate::routes::Id;
use crate::routes::Routes;
use crate::services::codes::{self, CodesError, GenerateInput, Generated, Owner};
use crate::state::AppState;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes
        .page_get("/admin/codes", page)
        .page_post("/admin/codes", generate)
        .page_get("/admin/codes/export", export)
        .page_post("/admin/codes/void", void_batch)
        .page_post("/admin/codes/{id}/void", void_one)
}

/// One code as a table row shows it.
pub struct CodeView {
    pub id: i64,
    pub code: String,
    pub batch: String,
    pub value: String,
    /// `unused`, `used`, `disabled`, `expired`.
    pub status: String,
    pub redeemed_by: String,
    pub redeemed_at: String,
    pub expires: String,
    pub created: String,
}

impl From<CodeRow> for CodeView {
    fn from(r: CodeRow) -> Self {
        Self {
            id: r.id,
            code: r.code,
            batch: r.batch_name,
            value: Money(r.amount).to_string(),
            status: r.status,
            redeemed_by: r.redeemed_by_email.unwrap_or_default(),
            redeemed_at: r.redeemed_at.map(format_time).unwrap_or_default(),
            expires: r.expires_at.map(format_time).unwrap_or_default(),
            created: format_time(r.created_at),
        }
    }
}

/// The generate form as typed (kept when refused).
#[derive(Debug, Default, Deserialize)]
pub struct GenerateForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub count: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub expires: String,
}

impl GenerateForm {
    pub fn input(&self) -> GenerateInput {
        GenerateInput {
            name: self.name.clone(),
            amount: self.amount.clone(),
            // Not a number: 0, which the service refuses with the count's message.
            count: self.count.trim().parse().unwrap_or(0),
            prefix: self.prefix.clone(),
            expires: self.expires.clone(),
        }
    }
}

/// Codes just generated, shown to their creator.
pub struct GeneratedView {
    pub batch: String,
    pub count: usize,
    pub value: String,
    pub paid: String,
    pub codes: String,
}

impl From<Generated> for GeneratedView {
    fn from(g: Generated) -> Self {
        Self {
            count: g.codes.len(),
            batch: g.batch_name,
            value: Money(g.amount).to_string(),
            paid: Money(g.paid).to_string(),
            codes: g.codes.join("\n"),
        }
    }
}

/// The code section of `/admin/codes` and `/console/reseller`.
pub struct CodesSection {
    /// Where the section's forms post: `/admin/codes` or `/console/reseller/codes`.
    pub base: &'static str,
    /// The page the filter form reloads.
    pub page: &'static str,
    /// A reseller pays for their codes (the form says so).
    pub paid: bool,
    pub rows: Vec<CodeView>,
    pub batches: Vec<String>,
    pub status: String,
    pub batch: String,
    pub csv: String,
    pub form: GenerateForm,
    pub generated: Option<GeneratedView>,
    pub error: Option<String>,
    pub notice: Option<String>,
}

/// `?done=` after a redirect: what just happened, for the notice.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub batch: String,
    #[serde(default)]
    pub done: String,
    #[serde(default)]
    pub n: String,
}

impl CodesSection {
    /// Loads the codes of `owner` filtered by `query`; a bad filter becomes the section's error.
    pub async fn load(
        state: &AppState,
        layout: &Layout,
        owner: Owner,
        (base, page): (&'static str, &'static str),
        query: &PageQuery,
    ) -> Result<Self, Response> {
        let (filter, error) = match codes::filter(owner, &query.status, &query.batch) {
            Ok(filter) => (filter, None),
            Err(e) => (codes::filter(owner, "", "").unwrap_or_default(), Some(layout.t(&message(&e)).to_string())),
        };
        let rows = codes::list(state, owner, &filter).await.map_err(|e| failed(&e))?;
        let batches = codes::batches(state, owner).await.map_err(|e| failed(&e))?;
        let mut csv = url::Url::parse("http://x/").map_err(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
        csv.set_path(&format!("{base}/export"));
        csv.query_pairs_mut().append_pair("status", query.status.trim()).append_pair("batch", query.batch.trim());
        let notice = match query.done.as_str() {
            "voided" => Some(layout.t("Voided {n} unused code(s).").replace("{n}", &query.n)),
            _ => None,
        };
        Ok(Self {
            base,
            page,
            paid: matches!(owner, Owner::Reseller(_)),
            rows: rows.into_iter().map(CodeView::from).collect(),
            batches,
            status: filter.status.map(|s| s.as_str().to_string()).unwrap_or_default(),
            batch: filter.batch.unwrap_or_default(),
            csv: format!("{}?{}", csv.path(), csv.query().unwrap_or_default()),
            form: GenerateForm { count: "10".into(), ..GenerateForm::default() },
            generated: None,
            error,
            notice,
        })
    }
}

/// A service error as the English text to translate.
pub fn message(e: &CodesError) -> String {
    match e {
        CodesError::Internal(_) => "Something went wrong. Try again.".to_string(),
        CodesError::NotFound => "No such code.".to_string(),
        e => e.to_string(),
    }
}

/// The answer to an unexpected failure (logged, never shown).
pub fn failed(e: &CodesError) -> Response {
    match e {
        CodesError::NotFound => ConsoleError::not_found("No such code."),
        e => ConsoleError::internal("a redemption code page", e),
    }
    .into_response()
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/codes.html")]
pub struct CodesPage {
    layout: Layout,
    section: CodesSection,
}

const PATHS: (&str, &str) = ("/admin/codes", "/admin/codes");

/// `GET /admin/codes?status=&batch=`.
pub async fn page(State(state): State<AppState>, admin: AdminUser, Query(query): Query<PageQuery>) -> Response {
    let layout = admin.user.layout.clone();
    match CodesSection::load(&state, &layout, Owner::Operator, PATHS, &query).await {
        Ok(section) => CodesPage { layout, section }.into_response(),
        Err(response) => response,
    }
}

/// `POST /admin/codes`: generates a batch and shows its codes.
pub async fn generate(State(state): State<AppState>, admin: AdminUser, Form(form): Form<GenerateForm>) -> Response {
    let layout = admin.user.layout.clone();
    let result = codes::generate(&state, &admin.actor, Owner::Operator, &form.input()).await;
    let mut section = match CodesSection::load(&state, &layout, Owner::Operator, PATHS, &PageQuery::default()).await {
        Ok(section) => section,
        Err(response) => return response,
    };
    match result {
        Ok(generated) => {
            section.generated = Some(generated.into());
            CodesPage { layout, section }.into_response()
        }
        Err(CodesError::Internal(d)) => failed(&CodesError::Internal(d)),
        Err(e) => {
            section.error = Some(layout.t(&message(&e)).to_string());
            section.form = form;
            (StatusCode::BAD_REQUEST, CodesPage { layout, section }).into_response()
        }
    }
}

/// `GET /admin/codes/export?status=&batch=`: CSV.
pub async fn export(State(state): State<AppState>, admin: AdminUser, Query(query): Query<ListQuery>) -> Response {
    let filter = match codes::filter(Owner::Operator, &query.status, &query.batch) {
        Ok(filter) => filter,
        Err(e) => return (StatusCode::BAD_REQUEST, admin.user.layout.t(&message(&e)).to_string()).into_response(),
    };
    match codes::export_csv(&state, &admin.actor, Owner::Operator, &filter).await {
        Ok(csv) => csv_response(csv),
        Err(e) => failed(&e),
    }
}

/// The batch field of the void-batch form.
#[derive(Debug, Deserialize)]
pub struct BatchForm {
    #[serde(default)]
    pub batch: String,
}

/// Where to go after voiding: the list, with the count for the notice.
pub fn after_void(page: &str, voided: usize) -> Response {
    Redirect::to(&format!("{page}?done=voided&n={voided}")).into_response()
}

/// `POST /admin/codes/void`: voids every unused code of a batch.
pub async fn void_batch(State(state): State<AppState>, admin: AdminUser, Form(form): Form<BatchForm>) -> Response {
    match codes::void_batch(&state, &admin.actor, Owner::Operator, &form.batch).await {
        Ok(done) => after_void(PATHS.1, done.voided),
        Err(e) => refused(&state, admin.user.layout.clone(), e).await,
    }
}

/// `POST /admin/codes/{id}/void`.
pub async fn void_one(State(state): State<AppState>, admin: AdminUser, Id(id, _): PathId) -> Response {
    match codes::void_one(&state, &admin.actor, Owner::Operator, id).await {
        Ok(done) => after_void(PATHS.1, done.voided),
        Err(e) => refused(&state, admin.user.layout.clone(), e).await,
    }
}

/// The page again with the refusal on top (404 for an unknown code).
async fn refused(state: &AppState, layout: Layout, e: CodesError) -> Response {
    let status = match e {
        CodesError::NotFound => StatusCode::NOT_FOUND,
        CodesError::NotUnused => StatusCode::CONFLICT,
        CodesError::Internal(_) => return failed(&e),
        _ => StatusCode::BAD_REQUEST,
    };
    match CodesSection::load(state, &layout, Owner::Operator, PATHS, &PageQuery::default()).await {
        Ok(mut section) => {
            section.error = Some(layout.t(&message(&e)).to_string());
            (status, CodesPage { layout, section }).into_response()
        }
        Err(response) => response,
    }
}

//! `/console/reseller`: a reseller's own section — their balance, redemption codes paid from it
//! (generate, filter, export, void with refund; the shared code section of `/admin/codes`),
//! transfers of balance to a user by email, and their invitees with the rewards earned. Only
//! resellers get in (403 for anyone else); every query is scoped to the reseller, so another
//! reseller's code id answers 404. Same services as `/api/reseller/*`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use super::Layout;
use super::admin::codes::{BatchForm, CodesSection, GenerateForm, PageQuery, after_void, failed, message};
use super::auth::{ClientAddr, CurrentUser, NoticePage};
use super::layout::format_time;
use crate::api::codes::{ListQuery, csv_response};
use crate::console::error::PathId;
use crate::db::users::Role;
use crate::domain::money::Money;
use crate::routes::Id;
use crate::routes::Routes;
use crate::services::audit::{Actor, Via};
use crate::services::codes::{self, CodesError, Owner, TransferInput};
use crate::state::AppState;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes
        .page_get("/console/reseller", page)
        .page_post("/console/reseller/codes", generate)
        .page_get("/console/reseller/codes/export", export)
        .page_post("/console/reseller/codes/void", void_batch)
        .page_post("/console/reseller/codes/{id}/void", void_one)
        .page_post("/console/reseller/transfer", transfer)
}

/// The logged-in reseller of a `/console/reseller` request; anyone else logged in gets 403.
pub struct ResellerUser {
    pub user: CurrentUser,
    pub actor: Actor,
}

impl FromRequestParts<AppState> for ResellerUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        let ClientAddr(ip) = ClientAddr::from_request_parts(parts, state).await.unwrap_or(ClientAddr(None));
        if Role::parse(&user.role) != Some(Role::Reseller) {
            let page = NoticePage::new(
                user.layout.clone(),
                "Resellers only",
                "This section is for resellers. Ask the site's operators if you want to sell.",
            );
            return Err((StatusCode::FORBIDDEN, page).into_response());
        }
        let actor = Actor { user_id: Some(user.id), role: Role::Reseller, via: Via::Session, ip };
        Ok(Self { user, actor })
    }
}

impl ResellerUser {
    fn owner(&self) -> Owner {
        Owner::Reseller(self.user.id)
    }
}

pub struct InviteeView {
    pub email: String,
    pub joined: String,
    pub reward: String,
    pub rewarded: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "reseller.html")]
pub struct ResellerPage {
    layout: Layout,
    balance: String,
    earned: String,
    invitees: Vec<InviteeView>,
    section: CodesSection,
    transfer_email: String,
    transfer_amount: String,
    transfer_error: Option<String>,
    transfer_notice: Option<String>,
}

const PATHS: (&str, &str) = ("/console/reseller/codes", "/console/reseller");

/// The page around a loaded code section (fresh balance, invitees).
async fn render(state: &AppState, reseller: &ResellerUser, query: &PageQuery) -> Result<ResellerPage, Response> {
    let layout = reseller.user.layout.clone();
    let section = CodesSection::load(state, &layout, reseller.owner(), PATHS, query).await?;
    let (invitees, earned) = codes::invitees(state, reseller.user.id).await.map_err(|e| failed(&e))?;
    let balance = crate::services::users::balance(state, reseller.user.id)
        .await
        .map_err(|e| failed(&CodesError::from(e)))?
        .unwrap_or(0);
    let transfer_notice =
        (query.done == "transferred").then(|| layout.t("Sent {amount}.").replace("{amount}", &query.n));
    Ok(ResellerPage {
        balance: Money(balance).to_string(),
        earned: Money(earned).to_string(),
        invitees: invitees
            .into_iter()
            .map(|i| InviteeView {
                email: i.email,
                joined: format_time(i.joined_at),
                reward: Money(i.reward).to_string(),
                rewarded: i.rewarded,
            })
            .collect(),
        section,
        transfer_email: String::new(),
        transfer_amount: String::new(),
        transfer_error: None,
        transfer_notice,
        layout,
    })
}

fn respond(result: Result<ResellerPage, Response>, status: StatusCode) -> Response {
    match result {
        Ok(page) => (status, page).into_response(),
        Err(response) => response,
    }
}

/// `GET /console/reseller?status=&batch=`.
pub async fn page(State(state): State<AppState>, reseller: ResellerUser, Query(query): Query<PageQuery>) -> Response {
    respond(render(&state, &reseller, &query).await, StatusCode::OK)
}

/// `POST /console/reseller/codes`: generates codes paid from the reseller's balance.
pub async fn generate(
    State(state): State<AppState>,
    reseller: ResellerUser,
    Form(form): Form<GenerateForm>,
) -> Response {
    let result = codes::generate(&state, &reseller.actor, reseller.owner(), &form.input()).await;
    let mut page = match render(&state, &reseller, &PageQuery::default()).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    match result {
        Ok(generated) => {
            page.section.generated = Some(generated.into());
            page.into_response()
        }
        Err(e @ CodesError::Internal(_)) => failed(&e),
        Err(e) => {
            page.section.error = Some(page.layout.t(&message(&e)).to_string());
            page.section.form = form;
            (StatusCode::BAD_REQUEST, page).into_response()
        }
    }
}

/// `GET /console/reseller/codes/export?status=&batch=`: CSV of the reseller's own codes.
pub async fn export(State(state): State<AppState>, reseller: ResellerUser, Query(query): Query<ListQuery>) -> Response {
    let filter = match codes::filter(reseller.owner(), &query.status, &query.batch) {
        Ok(filter) => filter,
        Err(e) => return (StatusCode::BAD_REQUEST, reseller.user.layout.t(&message(&e)).to_string()).into_response(),
    };
    match codes::export_csv(&state, &reseller.actor, reseller.owner(), &filter).await {
        Ok(csv) => csv_response(csv),
        Err(e) => failed(&e),
    }
}

/// The page again with a refusal over the code section.
async fn refused(state: &AppState, reseller: &ResellerUser, e: CodesError) -> Response {
    let status = match e {
        CodesError::NotFound => StatusCode::NOT_FOUND,
        CodesError::NotUnused => StatusCode::CONFLICT,
        CodesError::Internal(_) => return failed(&e),
        _ => StatusCode::BAD_REQUEST,
    };
    match render(state, reseller, &PageQuery::default()).await {
        Ok(mut page) => {
            page.section.error = Some(page.layout.t(&message(&e)).to_string());
            (status, page).into_response()
        }
        Err(response) => response,
    }
}

/// `POST /console/reseller/codes/void`: voids the unused codes of one of the reseller's batches
/// (refunded).
pub async fn void_batch(
    State(state): State<AppState>,
    reseller: ResellerUser,
    Form(form): Form<BatchForm>,
) -> Response {
    match codes::void_batch(&state, &reseller.actor, reseller.owner(), &form.batch).await {
        Ok(done) => after_void(PATHS.1, done.voided),
        Err(e) => refused(&state, &reseller, e).await,
    }
}

/// `POST /console/reseller/codes/{id}/void`: another reseller's code is "no such code" (404).
pub async fn void_one(State(state): State<AppState>, reseller: ResellerUser, Id(id, _): PathId) -> Response {
    match codes::void_one(&state, &reseller.actor, reseller.owner(), id).await {
        Ok(done) => after_void(PATHS.1, done.voided),
        Err(e) => refused(&state, &reseller, e).await,
    }
}

/// `POST /console/reseller/transfer`: `email`, `amount`.
pub async fn transfer(
    State(state): State<AppState>,
    reseller: ResellerUser,
    Form(form): Form<TransferInput>,
) -> Response {
    match codes::transfer(&state, &reseller.actor, reseller.user.id, &form).await {
        Ok(_) => {
            let amount = Money::parse(&form.amount).map(|m| m.to_string()).unwrap_or_default();
            let mut to = url::form_urlencoded::Serializer::new(String::new());
            to.append_pair("done", "transferred").append_pair("n", &amount);
            Redirect::to(&format!("{}?{}", PATHS.1, to.finish())).into_response()
        }
        Err(e @ CodesError::Internal(_)) => failed(&e),
        Err(e) => match render(&state, &reseller, &PageQuery::default()).await {
            Ok(mut page) => {
                page.transfer_error = Some(page.layout.t(&message(&e)).to_string());
                page.transfer_email = form.email;
                page.transfer_amount = form.amount;
                (StatusCode::BAD_REQUEST, page).into_response()
            }
            Err(response) => response,
        },
    }
}

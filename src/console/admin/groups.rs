//! `/admin/groups`: groups with their price multiplier, description and the models they may use
//! (empty: every model their channels serve); create, edit, delete (never `default`, never a
//! group with users). Through `services::pricing::groups`, like `/api/admin/groups`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AdminUser;
use crate::console::Layout;
use crate::console::error::ConsoleError;
use crate::routes::Routes;
use crate::services::pricing::PricingError;
use crate::services::pricing::groups::{self, GroupBilling, GroupSave, GroupView};
use crate::state::AppState;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes
        .page_get("/admin/groups", page)
        .page_post("/admin/groups", save)
        .page_post("/admin/groups/{name}/delete", delete)
}

/// The group form's fields, as shown or as sent.
#[derive(Clone, Default, Deserialize)]
pub struct GroupForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub multiplier: String,
    #[serde(default)]
    pub description: String,
    /// One model per line (or comma-separated); empty: every model.
    #[serde(default)]
    pub models: String,
    /// `billing.cap_output_by_balance`: the checkbox is sent only when ticked.
    #[serde(default)]
    pub cap_output_by_balance: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/groups.html")]
pub struct GroupsPage {
    layout: Layout,
    groups: Vec<GroupView>,
    form: GroupForm,
    /// The form edits an existing group (its name is fixed).
    editing: bool,
    notice: Option<&'static str>,
    error: Option<String>,
}

impl GroupsPage {
    fn models_of(&self, group: &GroupView) -> String {
        group.models.as_ref().map(|m| m.join(", ")).unwrap_or_default()
    }
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    edit: String,
    #[serde(default)]
    done: String,
}

async fn render(
    state: &AppState,
    admin: AdminUser,
    form: GroupForm,
    editing: bool,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    match groups::list(state).await {
        Ok(list) => {
            let page = GroupsPage { layout: admin.user.layout, groups: list, form, editing, notice: None, error };
            (status, page).into_response()
        }
        Err(e) => ConsoleError::internal("an /admin/groups page", e).into_response(),
    }
}

/// `GET /admin/groups?edit=<name>`.
pub async fn page(State(state): State<AppState>, admin: AdminUser, Query(q): Query<PageQuery>) -> Response {
    let list = match groups::list(&state).await {
        Ok(list) => list,
        Err(e) => return ConsoleError::internal("an /admin/groups page", e).into_response(),
    };
    let editing = list.iter().find(|g| g.name == q.edit).cloned();
    let form = match &editing {
        Some(g) => GroupForm {
            name: g.name.clone(),
            multiplier: g.multiplier.clone(),
            description: g.description.clone(),
            models: g.models.as_ref().map(|m| m.join("\n")).unwrap_or_default(),
            cap_output_by_balance: g.billing.cap_output_by_balance.then(|| "1".into()),
        },
        None => GroupForm { multiplier: "1".into(), ..GroupForm::default() },
    };
    let notice = match q.done.as_str() {
        "saved" => Some("Group saved."),
        "deleted" => Some("Group deleted."),
        _ => None,
    };
    GroupsPage { layout: admin.user.layout, groups: list, form, editing: editing.is_some(), notice, error: None }
        .into_response()
}

fn status_of(e: &PricingError) -> StatusCode {
    match e {
        PricingError::Invalid(_) => StatusCode::BAD_REQUEST,
        PricingError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `POST /admin/groups`: create or change a group.
pub async fn save(State(state): State<AppState>, admin: AdminUser, Form(form): Form<GroupForm>) -> Response {
    let models: Vec<String> =
        form.models.split(['\n', ',']).map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect();
    let input = GroupSave {
        multiplier: form.multiplier.clone(),
        description: Some(form.description.clone()),
        models: (!models.is_empty()).then_some(models),
        billing: Some(GroupBilling { cap_output_by_balance: form.cap_output_by_balance.is_some() }),
    };
    match groups::save(&state, &admin.actor, &form.name, &input).await {
        Ok(_) => Redirect::to("/admin/groups?done=saved").into_response(),
        Err(PricingError::Internal(e)) => ConsoleError::internal("an /admin/groups page", e).into_response(),
        Err(e) => {
            let editing = groups::list(&state).await.is_ok_and(|l| l.iter().any(|g| g.name == form.name.trim()));
            render(&state, admin, form, editing, status_of(&e), Some(e.to_string())).await
        }
    }
}

/// `POST /admin/groups/{name}/delete`.
pub async fn delete(State(state): State<AppState>, admin: AdminUser, Path(name): Path<String>) -> Response {
    let fresh = GroupForm { multiplier: "1".into(), ..GroupForm::default() };
    match groups::delete(&state, &admin.actor, &name).await {
        Ok(true) => Redirect::to("/admin/groups?done=deleted").into_response(),
        Ok(false) => render(&state, admin, fresh, false, StatusCode::NOT_FOUND, Some("No such group.".into())).await,
        Err(PricingError::Internal(e)) => ConsoleError::internal("an /admin/groups page", e).into_response(),
        Err(e) => render(&state, admin, fresh, false, status_of(&e), Some(e.to_string())).await,
    }
}

//! `/admin/groups`: groups with their price multiplier, description, the models they may use
//! (empty: every model their channels serve) and their fallback models; create, edit, delete
//! (never `default`, never a group with users). Through `services::pricing::groups`, like
//! `/api/admin/groups`, and the `routing.fallback.*` settings (`services::settings::fallbacks`).

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AdminUser;
use super::limits_form::LimitsForm;
use crate::console::Layout;
use crate::console::error::ConsoleError;
use crate::domain::limits::{model_lines, parse_model_lines};
use crate::routes::Routes;
use crate::services::limits::{LimitsPatch, LimitsView};
use crate::services::pricing::PricingError;
use crate::services::pricing::groups::{self, GroupBilling, GroupSave, GroupView};
use crate::services::settings::SettingError;
use crate::services::settings::fallbacks;
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
    /// `model = fallback, fallback`, a line per requested model.
    #[serde(default)]
    pub fallbacks: String,
    /// Each member's default budget and rate limits.
    #[serde(flatten)]
    pub limits: LimitsForm,
    /// Per-model limits for each member: `model = rpm 10, tpm 20000`, a line per model.
    #[serde(default)]
    pub model_limits: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/groups.html")]
pub struct GroupsPage {
    layout: Layout,
    groups: Vec<GroupView>,
    /// Each group's fallback lists, as `model → a, b` lines.
    fallbacks: HashMap<String, Vec<String>>,
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

    fn fallbacks_of(&self, group: &GroupView) -> &[String] {
        self.fallbacks.get(&group.name).map_or(&[], Vec::as_slice)
    }
}

/// Each group's fallback lists as the table shows them: `gpt-4o → claude-sonnet-4-5, gpt-4o-mini`.
async fn fallback_lines(state: &AppState) -> Result<HashMap<String, Vec<String>>, SettingError> {
    Ok(fallbacks::all(state)
        .await?
        .into_iter()
        .map(|(group, lists)| (group, lists.iter().map(|(m, to)| format!("{m} → {}", to.join(", "))).collect()))
        .collect())
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
    let fallbacks = match fallback_lines(state).await {
        Ok(lines) => lines,
        Err(e) => return ConsoleError::internal("an /admin/groups page", e).into_response(),
    };
    match groups::list(state).await {
        Ok(list) => {
            let layout = admin.user.layout;
            let page = GroupsPage { layout, groups: list, fallbacks, form, editing, notice: None, error };
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
    let all = match fallbacks::all(&state).await {
        Ok(all) => all,
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
            fallbacks: all.get(&g.name).map(fallbacks::to_text).unwrap_or_default(),
            limits: LimitsForm::of(&g.limits),
            model_limits: g.limits.models.as_ref().map(model_lines).unwrap_or_default(),
        },
        None => {
            GroupForm { multiplier: "1".into(), limits: LimitsForm::of(&LimitsView::default()), ..GroupForm::default() }
        }
    };
    let notice = match q.done.as_str() {
        "saved" => Some("Group saved."),
        "deleted" => Some("Group deleted."),
        _ => None,
    };
    let fallbacks = match fallback_lines(&state).await {
        Ok(lines) => lines,
        Err(e) => return ConsoleError::internal("an /admin/groups page", e).into_response(),
    };
    let layout = admin.user.layout;
    GroupsPage { layout, groups: list, fallbacks, form, editing: editing.is_some(), notice, error: None }
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
    let editing = || async { groups::list(&state).await.is_ok_and(|l| l.iter().any(|g| g.name == form.name.trim())) };
    let layout = admin.user.layout.clone();
    let per_model =
        parse_model_lines(&form.model_limits).map_err(|why| format!("{}: {why}", layout.t("Per-model limits")));
    let limits =
        match form.limits.to_patch().and_then(|patch| Ok(LimitsPatch { models: Some(Some(per_model?)), ..patch })) {
            Ok(patch) => patch,
            Err(why) => {
                let editing = editing().await;
                return render(&state, admin, form, editing, StatusCode::BAD_REQUEST, Some(why)).await;
            }
        };
    let input = GroupSave {
        multiplier: form.multiplier.clone(),
        description: Some(form.description.clone()),
        models: (!models.is_empty()).then_some(models),
        billing: Some(GroupBilling { cap_output_by_balance: form.cap_output_by_balance.is_some() }),
        limits: Some(limits),
    };
    // The fallback lines are checked first: a refused line saves nothing.
    if let Err(why) = fallbacks::parse_text(&form.fallbacks) {
        let editing = editing().await;
        let error = format!("{}: {why}", admin.user.layout.t("Fallback models"));
        return render(&state, admin, form, editing, StatusCode::BAD_REQUEST, Some(error)).await;
    }
    let saved = groups::save(&state, &admin.actor, &form.name, &input).await;
    let saved = match saved {
        Ok(_) => {
            fallbacks::replace(&state, &admin.actor, form.name.trim(), &form.fallbacks).await.map_err(|e| match e {
                SettingError::Invalid(why) => PricingError::Invalid(why),
                SettingError::Internal(why) => PricingError::Internal(why),
            })
        }
        Err(e) => Err(e),
    };
    match saved {
        Ok(()) => Redirect::to("/admin/groups?done=saved").into_response(),
        Err(PricingError::Internal(e)) => ConsoleError::internal("an /admin/groups page", e).into_response(),
        Err(e) => {
            let editing = editing().await;
            render(&state, admin, form, editing, status_of(&e), Some(e.to_string())).await
        }
    }
}

/// `POST /admin/groups/{name}/delete`.
pub async fn delete(State(state): State<AppState>, admin: AdminUser, Path(name): Path<String>) -> Response {
    let fresh =
        GroupForm { multiplier: "1".into(), limits: LimitsForm::of(&LimitsView::default()), ..GroupForm::default() };
    match groups::delete(&state, &admin.actor, &name).await {
        Ok(true) => Redirect::to("/admin/groups?done=deleted").into_response(),
        Ok(false) => render(&state, admin, fresh, false, StatusCode::NOT_FOUND, Some("No such group.".into())).await,
        Err(PricingError::Internal(e)) => ConsoleError::internal("an /admin/groups page", e).into_response(),
        Err(e) => render(&state, admin, fresh, false, status_of(&e), Some(e.to_string())).await,
    }
}

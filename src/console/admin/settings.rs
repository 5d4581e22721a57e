//! `/admin/settings`: every site setting, in sections (general, signups, invitations, mail,
//! payments, gateway, notifications), each saved by its own form through
//! `services::settings::set` — the same code as `PUT /api/admin/settings/{key}`. A form is
//! checked whole before anything is saved; secrets are write-only (a blank field keeps the
//! stored one). htmx swaps the saved section in place.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AdminUser;
use super::settings_form::{self, Section};
use crate::config::runtime;
use crate::console::Layout;
use crate::console::htmx::{HxRequest, vary};
use crate::routes::Routes;
use crate::services::settings::{self, SettingError};
use crate::state::AppState;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    routes
        .page_get("/admin/settings", page)
        .page_post("/admin/settings", save)
        .page_post("/admin/settings/test-email", test_email)
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/settings.html")]
pub struct SettingsPage {
    layout: Layout,
    sections: Vec<Section>,
    mail_on: bool,
    email: String,
}

/// One section, for htmx.
#[derive(Template, WebTemplate)]
#[template(path = "admin/_settings_section.html")]
pub struct SectionFragment {
    layout: Layout,
    section: Section,
    mail_on: bool,
    email: String,
}

/// The page (or, for htmx, the section `id`) with a message or an error in section `id`.
fn render(
    state: &AppState,
    admin: &AdminUser,
    hx: bool,
    id: &str,
    message: Option<&str>,
    error: Option<String>,
) -> Response {
    let layout = admin.user.layout.clone();
    let status = if error.is_some() && !hx { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut sections = settings_form::sections(&state.site());
    for section in sections.iter_mut().filter(|s| s.id == id) {
        section.message = message.map(|m| layout.t(m).to_string());
        section.error = error.clone();
    }
    let mail_on = state.mailer().is_configured();
    let email = admin.user.email.clone();
    if hx {
        if let Some(section) = sections.into_iter().find(|s| s.id == id) {
            return vary((status, SectionFragment { layout, section, mail_on, email }).into_response());
        }
        return vary(StatusCode::BAD_REQUEST.into_response());
    }
    vary((status, SettingsPage { layout, sections, mail_on, email }).into_response())
}

/// `GET /admin/settings`.
pub async fn page(State(state): State<AppState>, admin: AdminUser) -> Response {
    render(&state, &admin, false, "", None, None)
}

/// `POST /admin/settings`: one section's fields (`section`, then `<key>=<value>`; a secret's
/// `clear:<key>` removes it). Only the fields that differ are saved, each audited.
pub async fn save(
    State(state): State<AppState>,
    admin: AdminUser,
    HxRequest(hx): HxRequest,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let Some(id) = field("section").and_then(settings_form::section_id) else {
        return render(&state, &admin, false, "", None, Some(admin.user.layout.t("Unknown section.").into()));
    };
    let site = state.site();
    let mut changes: Vec<(&str, String)> = Vec::new();
    for key in settings_form::keys_of(id) {
        let value = field(key).unwrap_or("").trim();
        if runtime::find(key).is_some_and(runtime::RuntimeSetting::is_secret) {
            if field(&format!("clear:{key}")).is_some() {
                changes.push((key, String::new()));
            } else if !value.is_empty() {
                changes.push((key, value.to_string()));
            }
        } else if field(key).is_some() && site.value_of(key).as_deref() != Some(value) {
            changes.push((key, value.to_string()));
        }
    }
    // Check the whole form first: a refused field saves nothing.
    let mut trial = (*site).clone();
    for (key, value) in &changes {
        if let Err(message) = trial.apply(key, value) {
            let error = format!("{}: {message}", admin.user.layout.t(settings_form::label_of(key)));
            return render(&state, &admin, hx, id, None, Some(error));
        }
    }
    for (key, value) in &changes {
        match settings::set(&state, &admin.actor, key, value).await {
            Ok(_) => {}
            Err(SettingError::Invalid(message)) => return render(&state, &admin, hx, id, None, Some(message)),
            Err(e) => {
                tracing::error!(error = %e, setting = key, "saving a setting failed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
    }
    let message = if changes.is_empty() { "Nothing changed." } else { "Saved." };
    render(&state, &admin, hx, id, Some(message), None)
}

/// `POST /admin/settings/test-email`: a test message to the admin's own address, now.
pub async fn test_email(State(state): State<AppState>, admin: AdminUser, HxRequest(hx): HxRequest) -> Response {
    let to = admin.user.email.clone();
    match settings::send_test_email(&state, &admin.actor, &to, admin.user.layout.lang).await {
        Ok(()) => render(&state, &admin, hx, "smtp", Some("Test email sent. Check your inbox."), None),
        Err(SettingError::Invalid(message)) => render(&state, &admin, hx, "smtp", None, Some(message)),
        Err(e) => {
            tracing::error!(error = %e, "sending a test email failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

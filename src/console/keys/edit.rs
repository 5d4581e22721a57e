//! Editing a key in `/console/keys`: name, spend limit, expiry, model and IP allowlists, RPM.
//! One URL, two faces: with `HX-Request` the answers are table-row fragments (the edit form, or
//! the updated row) that htmx swaps in place; without JavaScript the form opens in the full page
//! and a save redirects back to the list. Another user's key, or a missing one, answers 404.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};

use super::form::KeyForm;
use super::{KeyEdit, KeyRow, PageParts, failed, render};
use crate::console::Layout;
use crate::console::auth::CurrentUser;
use crate::console::error::PathId;
use crate::console::htmx::{HxRequest, vary};
use crate::routes::Id;
use crate::services::keys::{self as key_service, KeyScope, KeyView};
use crate::services::users::UserError;
use crate::state::AppState;

/// The row of a key (after a save).
#[derive(Template, WebTemplate)]
#[template(path = "_key_row.html")]
pub struct KeyRowFragment {
    layout: Layout,
    key: KeyRow,
}

/// The edit form of a key, as a table row.
#[derive(Template, WebTemplate)]
#[template(path = "_key_edit.html")]
pub struct KeyEditFragment {
    layout: Layout,
    key: KeyRow,
    edit: KeyEdit,
}

/// The edit form, open: a fragment for htmx, else the keys page with the form in the key's row.
/// A refused form comes back with its error as a fragment with status 200 (htmx swaps only
/// successful answers), or as the page with 400.
async fn open_form(state: &AppState, user: &CurrentUser, hx: bool, key: &KeyView, edit: KeyEdit) -> Response {
    if hx {
        let fragment = KeyEditFragment { layout: user.layout.clone(), key: KeyRow::from(key), edit };
        return vary(fragment.into_response());
    }
    vary(render(state, user, PageParts { edit: Some(edit), ..PageParts::default() }).await)
}

/// `GET /console/keys/{id}/edit`.
pub async fn form(
    State(state): State<AppState>,
    user: CurrentUser,
    HxRequest(hx): HxRequest,
    Id(id, _): PathId,
) -> Response {
    let key = match key_service::get_key(&state, KeyScope::Owner(user.id), id).await {
        Ok(key) => key,
        Err(e) => return failed(&e),
    };
    let edit = KeyEdit { id, form: KeyForm::of(&key), error: None };
    open_form(&state, &user, hx, &key, edit).await
}

/// `POST /console/keys/{id}/edit`: every field of the form replaces the key's (blank: no limit).
pub async fn save(
    State(state): State<AppState>,
    user: CurrentUser,
    HxRequest(hx): HxRequest,
    Id(id, _): PathId,
    Form(form): Form<KeyForm>,
) -> Response {
    let scope = KeyScope::Owner(user.id);
    let key = match key_service::get_key(&state, scope, id).await {
        Ok(key) => key,
        Err(e) => return failed(&e),
    };
    let patch = match form.parse(key.expires_at) {
        Ok(fields) => fields.into_patch(),
        Err(message) => return open_form(&state, &user, hx, &key, KeyEdit { id, form, error: Some(message) }).await,
    };
    match key_service::update_key(&state, scope, id, &patch).await {
        Ok(updated) if hx => {
            vary(KeyRowFragment { layout: user.layout.clone(), key: KeyRow::from(&updated) }.into_response())
        }
        Ok(_) => vary(Redirect::to("/console/keys").into_response()),
        Err(UserError::Invalid(message)) => {
            open_form(&state, &user, hx, &key, KeyEdit { id, form, error: Some(message) }).await
        }
        Err(e) => failed(&e),
    }
}

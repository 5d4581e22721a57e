//! The channel forms of `/admin/channels`: new, edit (with "fetch models" from the upstream's
//! `/models`, put in the form for review) and bulk import. The key field is write-only: never
//! filled in, a blank one on edit keeps the channel's keys. A refused form comes back with the
//! values as sent (but never the key) and the reason.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{AdminUser, not_found};
use crate::console::Layout;
use crate::console::error::ConsoleError;
use crate::console::error::PathId;
use crate::providers::vendors::PRESETS;
use crate::routes::Id;
use crate::routes::Routes;
use crate::services::channels::admin::ImportInput;
use crate::services::channels::{self, ChannelError, ChannelInput, ChannelView};
use crate::state::AppState;

pub fn routes(routes: Routes) -> Routes {
    routes
        .page_get("/admin/channels/new", new_page)
        .page_post("/admin/channels/new", create)
        .page_get("/admin/channels/import", import_page)
        .page_post("/admin/channels/import", import)
        .page_get("/admin/channels/{id}/edit", edit_page)
        .page_post("/admin/channels/{id}/edit", update)
        .page_post("/admin/channels/{id}/models", fetch_models)
}

/// The form's fields, as text (what was sent, or the channel's values).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ChannelForm {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    base_url: String,
    /// Write-only: never rendered.
    #[serde(default)]
    key: String,
    #[serde(default)]
    models: String,
    #[serde(default)]
    model_mapping: String,
    #[serde(default)]
    groups: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    weight: String,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    region: String,
    /// How a channel with several keys picks one: blank (at random) or `round_robin`.
    #[serde(default)]
    key_selection: String,
    /// The checkbox: present when ticked.
    #[serde(default)]
    enabled: Option<String>,
    /// Import only: the keys, one per line.
    #[serde(default)]
    keys: String,
    /// Import only: `separate` or `rotation`.
    #[serde(default)]
    mode: String,
}

impl ChannelForm {
    fn from_view(c: &ChannelView) -> Self {
        let config = |name: &str| c.config.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
        Self {
            name: c.name.clone(),
            kind: c.kind.clone(),
            base_url: c.base_url.clone(),
            key: String::new(),
            models: c.models.join("\n"),
            model_mapping: c.model_mapping.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n"),
            groups: c.groups.join(", "),
            priority: c.priority.to_string(),
            weight: c.weight.to_string(),
            api_version: config("api_version"),
            region: config("region"),
            key_selection: config("key_selection"),
            enabled: (c.status == "enabled").then(|| "on".into()),
            keys: String::new(),
            mode: String::new(),
        }
    }

    fn blank() -> Self {
        Self {
            kind: "openai".into(),
            groups: "default".into(),
            priority: "0".into(),
            weight: "1".into(),
            enabled: Some("on".into()),
            ..Self::default()
        }
    }

    /// The service's input; `Err` is a message for the operator.
    fn to_input(&self, layout: &Layout, existing: Option<&ChannelView>) -> Result<ChannelInput, String> {
        let number = |text: &str, message: &str| -> Result<i64, String> {
            let text = text.trim();
            if text.is_empty() { Ok(0) } else { text.parse().map_err(|_| layout.t(message).to_string()) }
        };
        let list = |text: &str| -> Vec<String> {
            text.split(['\n', ',']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
        };
        let mut mapping = BTreeMap::new();
        for line in self.model_mapping.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let Some((from, to)) = line.split_once('=').or_else(|| line.split_once(':')) else {
                return Err(format!("model_mapping: {line:?} is not requested=upstream"));
            };
            mapping.insert(from.trim().to_string(), to.trim().to_string());
        }
        // Keep any other config the channel has (set through the API); set or clear these.
        let mut config: Map<String, Value> = existing.and_then(|c| c.config.as_object().cloned()).unwrap_or_default();
        let fields =
            [("api_version", &self.api_version), ("region", &self.region), ("key_selection", &self.key_selection)];
        for (name, value) in fields {
            if value.trim().is_empty() {
                config.remove(name);
            } else {
                config.insert(name.into(), json!(value.trim()));
            }
        }
        let weight =
            if self.weight.trim().is_empty() { 1 } else { number(&self.weight, "weight must be a whole number")? };
        Ok(ChannelInput {
            name: Some(self.name.clone()),
            kind: Some(self.kind.trim().to_string()),
            base_url: Some(self.base_url.clone()),
            key: if self.key.trim().is_empty() { None } else { Some(self.key.clone()) },
            models: Some(list(&self.models)),
            model_mapping: Some(mapping),
            // Blank: the default group (or, on edit, the channel's groups).
            groups: Some(list(&self.groups)).filter(|g| !g.is_empty()),
            priority: Some(number(&self.priority, "priority must be a whole number")?),
            weight: Some(weight),
            config: Some(Value::Object(config)),
            status: Some(if self.enabled.is_some() { "enabled" } else { "disabled" }.into()),
        })
    }
}

/// A channel type for the select.
pub struct TypeOption {
    pub name: &'static str,
    pub label: &'static str,
}

fn types() -> Vec<TypeOption> {
    PRESETS.iter().map(|p| TypeOption { name: p.name, label: p.label }).collect()
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/channel_form.html")]
pub struct FormPage {
    layout: Layout,
    /// `None`: a new channel.
    id: Option<i64>,
    form: ChannelForm,
    types: Vec<TypeOption>,
    /// The current key's hint and count (edit).
    key_hint: String,
    key_count: usize,
    error: Option<String>,
    /// Shown at the key field: the key must be entered again (the destination changed).
    key_error: Option<String>,
    notice: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/channel_import.html")]
pub struct ImportPage {
    layout: Layout,
    form: ChannelForm,
    types: Vec<TypeOption>,
    error: Option<String>,
}

fn form_page(admin: AdminUser, id: Option<i64>, form: ChannelForm, current: Option<&ChannelView>) -> FormPage {
    FormPage {
        layout: admin.user.layout,
        id,
        form: ChannelForm { key: String::new(), ..form },
        types: types(),
        key_hint: current.map(|c| c.key_hint.clone()).unwrap_or_default(),
        key_count: current.map_or(0, |c| c.key_count),
        error: None,
        key_error: None,
        notice: None,
    }
}

/// `GET /admin/channels/new`.
pub async fn new_page(admin: AdminUser) -> FormPage {
    form_page(admin, None, ChannelForm::blank(), None)
}

/// `POST /admin/channels/new`.
pub async fn create(State(state): State<AppState>, admin: AdminUser, Form(form): Form<ChannelForm>) -> Response {
    let result = match form.to_input(&admin.user.layout, None) {
        Ok(input) => channels::admin::create(&state, &admin.actor, input).await,
        Err(message) => Err(ChannelError::Invalid(message)),
    };
    match result {
        Ok(_) => Redirect::to("/admin/channels").into_response(),
        Err(ChannelError::Invalid(message)) => {
            let page = FormPage { error: Some(message), ..form_page(admin, None, form, None) };
            (StatusCode::BAD_REQUEST, page).into_response()
        }
        Err(e) => ConsoleError::internal("a channel form", e).into_response(),
    }
}

async fn load(state: &AppState, admin: &AdminUser, id: i64) -> Result<ChannelView, Response> {
    match channels::get(state, id).await {
        Ok(c) => Ok(c),
        Err(ChannelError::NotFound) => Err(not_found(admin)),
        Err(e) => Err(ConsoleError::internal("a channel form", e).into_response()),
    }
}

/// `GET /admin/channels/{id}/edit`.
pub async fn edit_page(State(state): State<AppState>, admin: AdminUser, Id(id, _): PathId) -> Response {
    match load(&state, &admin, id).await {
        Ok(c) => form_page(admin, Some(c.id), ChannelForm::from_view(&c), Some(&c)).into_response(),
        Err(response) => response,
    }
}

/// `POST /admin/channels/{id}/edit`.
pub async fn update(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id, _): PathId,
    Form(form): Form<ChannelForm>,
) -> Response {
    let current = match load(&state, &admin, id).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let result = match form.to_input(&admin.user.layout, Some(&current)) {
        Ok(input) => channels::admin::update(&state, &admin.actor, current.id, input).await,
        Err(message) => Err(ChannelError::Invalid(message)),
    };
    match result {
        Ok(saved) => {
            let notice = Some(admin.user.layout.t("Channel saved.").to_string());
            let form = ChannelForm::from_view(&saved);
            FormPage { notice, ..form_page(admin, Some(saved.id), form, Some(&saved)) }.into_response()
        }
        Err(ChannelError::Invalid(message)) => {
            let page = FormPage { error: Some(message), ..form_page(admin, Some(current.id), form, Some(&current)) };
            (StatusCode::BAD_REQUEST, page).into_response()
        }
        Err(ChannelError::KeyRequired(_)) => {
            let layout = &admin.user.layout;
            let error = Some(layout.t("The channel's key is needed again to save this.").to_string());
            let key_error = Some(layout.t(KEY_AGAIN).to_string());
            let page = FormPage { error, key_error, ..form_page(admin, Some(current.id), form, Some(&current)) };
            (StatusCode::BAD_REQUEST, page).into_response()
        }
        Err(e) => ConsoleError::internal("a channel form", e).into_response(),
    }
}

/// Why the key field is required again (the console's words for `ChannelError::KeyRequired`).
const KEY_AGAIN: &str =
    "The base URL, type or region changed: enter the key again. The current key is never sent to a new address.";

/// `POST /admin/channels/{id}/models`: the edit form as sent, its models replaced by the
/// upstream's list (not saved yet).
pub async fn fetch_models(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id, _): PathId,
    Form(form): Form<ChannelForm>,
) -> Response {
    let current = match load(&state, &admin, id).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    match channels::admin::fetch_models(&state, &admin.actor, current.id, false).await {
        Ok(models) => {
            let notice = Some(
                admin
                    .user
                    .layout
                    .t("Fetched {n} models: review them, then save.")
                    .replace("{n}", &models.len().to_string()),
            );
            let form = ChannelForm { models: models.join("\n"), ..form };
            FormPage { notice, ..form_page(admin, Some(current.id), form, Some(&current)) }.into_response()
        }
        Err(ChannelError::Invalid(message)) => {
            let page = FormPage { error: Some(message), ..form_page(admin, Some(current.id), form, Some(&current)) };
            (StatusCode::BAD_REQUEST, page).into_response()
        }
        Err(ChannelError::NotFound) => not_found(&admin),
        Err(e) => ConsoleError::internal("a channel form", e).into_response(),
    }
}

/// `GET /admin/channels/import`.
pub async fn import_page(admin: AdminUser) -> ImportPage {
    ImportPage { layout: admin.user.layout, form: ChannelForm::blank(), types: types(), error: None }
}

/// `POST /admin/channels/import`.
pub async fn import(State(state): State<AppState>, admin: AdminUser, Form(form): Form<ChannelForm>) -> Response {
    let result = match form.to_input(&admin.user.layout, None) {
        Ok(channel) => {
            let mode = if form.mode.is_empty() { None } else { Some(form.mode.clone()) };
            let input = ImportInput { channel, keys: form.keys.clone(), mode };
            channels::admin::import(&state, &admin.actor, input).await
        }
        Err(message) => Err(ChannelError::Invalid(message)),
    };
    match result {
        Ok(_) => Redirect::to("/admin/channels").into_response(),
        Err(ChannelError::Invalid(message)) => {
            let form = ChannelForm { key: String::new(), keys: String::new(), ..form };
            let page = ImportPage { layout: admin.user.layout, form, types: types(), error: Some(message) };
            (StatusCode::BAD_REQUEST, page).into_response()
        }
        Err(e) => ConsoleError::internal("a channel form", e).into_response(),
    }
}

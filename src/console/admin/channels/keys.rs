//! `/admin/channels/{id}/keys`: each upstream key of a channel — its state (with the reason of an
//! automatic disable and any cooldown), its traffic on this server, its last test and error —
//! with test, enable/disable and a bulk "add keys". Keys are write-only: the page shows the last
//! 4 characters and the fingerprint. Through `services::channels::admin` (audited, as the API).
//!
//! htmx posts answer the `#channel-keys` section; without JavaScript the whole page.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{AdminUser, not_found};
use crate::console::Layout;
use crate::console::error::{ConsoleError, PathId};
use crate::console::htmx::{HxRequest, vary};
use crate::domain::time::now_ms;
use crate::routes::{Id, IdAndName, Routes};
use crate::services::channels::keys::KeyView;
use crate::services::channels::{self, ChannelError};
use crate::services::routing::health::HealthView;
use crate::state::AppState;

pub fn routes(routes: Routes) -> Routes {
    routes
        .page_get("/admin/channels/{id}/keys", page)
        .page_post("/admin/channels/{id}/keys", add)
        .page_post("/admin/channels/{id}/keys/{key}/test", test)
        .page_post("/admin/channels/{id}/keys/{key}/enable", enable)
        .page_post("/admin/channels/{id}/keys/{key}/disable", disable)
}

/// One key, formatted.
pub struct KeyRow {
    pub index: usize,
    pub fingerprint: String,
    pub hint: String,
    pub status: String,
    pub reason: Option<String>,
    /// "Cooling down for N s" while this server sends it nothing.
    pub cooling: Option<String>,
    pub requests: u64,
    pub failures: u64,
    /// Moving time to first token and error rate on this server, once measured.
    pub speed: Option<String>,
    pub latency: Option<String>,
    pub last_error: Option<String>,
}

impl KeyRow {
    fn new(layout: &Layout, k: KeyView, now: i64) -> Self {
        let cooling = k.cooling_until.map(|until| {
            let secs = ((until - now).max(0) + 999) / 1000;
            layout.t("cooling down for {n} s").replace("{n}", &secs.to_string())
        });
        Self {
            index: k.index,
            fingerprint: k.fingerprint,
            hint: k.hint,
            status: k.status,
            reason: k.reason,
            cooling,
            requests: k.health.requests,
            failures: k.health.failures,
            speed: speed(layout, &k.health),
            latency: k.test_latency_ms.map(|ms| format!("{ms} ms")),
            last_error: k.last_error.map(|e| e.chars().take(160).collect()),
        }
    }
}

/// A channel's or key's moving time to first token and error rate, as "TTFT 230 ms · 4 % errors".
pub fn speed(layout: &Layout, health: &HealthView) -> Option<String> {
    let ttft = health.ttft_ms.map(|ms| layout.t("TTFT {n} ms").replace("{n}", &ms.to_string()));
    let errors = health.error_rate.map(|r| layout.t("{n} % errors").replace("{n}", &format!("{:.0}", r * 100.0)));
    let parts: Vec<String> = ttft.into_iter().chain(errors).collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// What the section shows besides the rows.
#[derive(Default)]
pub struct Outcome {
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/channel_keys.html")]
pub struct KeysPage {
    layout: Layout,
    id: i64,
    name: String,
    rows: Vec<KeyRow>,
    outcome: Outcome,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/_channel_keys.html")]
pub struct KeysFragment {
    layout: Layout,
    id: i64,
    rows: Vec<KeyRow>,
    outcome: Outcome,
}

/// The keys with `outcome`: the section for htmx, else the page (400 when refused).
async fn answer(state: &AppState, admin: AdminUser, id: i64, hx: bool, outcome: Outcome) -> Response {
    let (channel, keys) = match (channels::get(state, id).await, channels::keys::list(state, id).await) {
        (Ok(channel), Ok(keys)) => (channel, keys),
        (Err(ChannelError::NotFound), _) | (_, Err(ChannelError::NotFound)) => return not_found(&admin),
        (Err(e), _) | (_, Err(e)) => return ConsoleError::internal("a channel's keys", e).into_response(),
    };
    let layout = admin.user.layout;
    let now = now_ms();
    let rows = keys.into_iter().map(|k| KeyRow::new(&layout, k, now)).collect();
    if hx {
        return vary(KeysFragment { layout, id, rows, outcome }.into_response());
    }
    let status = if outcome.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    vary((status, KeysPage { layout, id, name: channel.name, rows, outcome }).into_response())
}

/// The outcome of an action: its notice, or a refusal's message (404 and 500 answer at once).
async fn finish(
    state: &AppState,
    admin: AdminUser,
    id: i64,
    hx: bool,
    result: Result<String, ChannelError>,
) -> Response {
    let outcome = match result {
        Ok(notice) => Outcome { notice: Some(notice), ..Outcome::default() },
        Err(ChannelError::Invalid(message) | ChannelError::KeyRequired(message)) => {
            Outcome { error: Some(message), ..Outcome::default() }
        }
        Err(ChannelError::NotFound) => return not_found(&admin),
        Err(e) => return ConsoleError::internal("a channel's keys", e).into_response(),
    };
    answer(state, admin, id, hx, outcome).await
}

/// `GET /admin/channels/{id}/keys`.
pub async fn page(State(state): State<AppState>, admin: AdminUser, Id(id, _): PathId) -> Response {
    answer(&state, admin, id, false, Outcome::default()).await
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    keys: String,
}

/// `POST /admin/channels/{id}/keys`: adds keys in bulk.
pub async fn add(
    State(state): State<AppState>,
    admin: AdminUser,
    HxRequest(hx): HxRequest,
    Id(id, _): PathId,
    Form(form): Form<AddForm>,
) -> Response {
    let result = channels::admin::add_keys(&state, &admin.actor, id, &form.keys)
        .await
        .map(|(_, added)| admin.user.layout.t("Added {n} keys.").replace("{n}", &added.to_string()));
    finish(&state, admin, id, hx, result).await
}

type KeyPath = IdAndName<ConsoleError>;

/// `POST /admin/channels/{id}/keys/{key}/test`.
pub async fn test(
    State(state): State<AppState>,
    admin: AdminUser,
    HxRequest(hx): HxRequest,
    IdAndName(id, key, _): KeyPath,
) -> Response {
    let layout = admin.user.layout.clone();
    let result = channels::admin::test_key(&state, &admin.actor, id, &key).await.map(|r| match r.error {
        None => layout.t("The key passed its test ({ms} ms).").replace("{ms}", &r.latency_ms.to_string()),
        Some(error) => layout.t("The key failed its test: {error}").replace("{error}", &error),
    });
    finish(&state, admin, id, hx, result).await
}

/// `POST /admin/channels/{id}/keys/{key}/enable`.
pub async fn enable(state: State<AppState>, admin: AdminUser, hx: HxRequest, path: KeyPath) -> Response {
    set_enabled(state, admin, hx, path, true).await
}

/// `POST /admin/channels/{id}/keys/{key}/disable`.
pub async fn disable(state: State<AppState>, admin: AdminUser, hx: HxRequest, path: KeyPath) -> Response {
    set_enabled(state, admin, hx, path, false).await
}

async fn set_enabled(
    State(state): State<AppState>,
    admin: AdminUser,
    HxRequest(hx): HxRequest,
    IdAndName(id, key, _): KeyPath,
    enabled: bool,
) -> Response {
    let notice = if enabled { "Key {hint} enabled." } else { "Key {hint} disabled." };
    let result = channels::admin::set_key_enabled(&state, &admin.actor, id, &key, enabled)
        .await
        .map(|k| admin.user.layout.t(notice).replace("{hint}", &k.hint));
    finish(&state, admin, id, hx, result).await
}

//! `/admin/channels`: the channel list (status with the reason of an automatic disable, type,
//! priority, weight, models, used amount, last error, last test latency) and its row actions —
//! test, test all, enable, disable, copy, delete. The create / edit / import forms are in
//! `form`; each key's health and actions in `keys`. Everything goes through `services::channels::admin` (audited, as the API). Upstream
//! keys are write-only: the page shows the last 4 characters at most.
//!
//! htmx posts answer the `#channels` section; without JavaScript the whole page.

mod form;
mod keys;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AdminUser;
use crate::console::Layout;
use crate::console::auth::NoticePage;
use crate::console::error::ConsoleError;
use crate::console::error::PathId;
use crate::console::htmx::{HxRequest, vary};
use crate::domain::money::Money;
use crate::routes::Id;
use crate::routes::Routes;
use crate::services::channels::admin::TestLine;
use crate::services::channels::{self, ChannelError, ChannelView};
use crate::state::AppState;

/// Adds this page's routes.
pub fn routes(routes: Routes) -> Routes {
    let routes = routes
        .page_get("/admin/channels", page)
        .page_post("/admin/channels/test", test_all)
        .page_post("/admin/channels/{id}/test", test)
        .page_post("/admin/channels/{id}/enable", enable)
        .page_post("/admin/channels/{id}/disable", disable)
        .page_post("/admin/channels/{id}/copy", copy)
        .page_post("/admin/channels/{id}/delete", delete);
    keys::routes(form::routes(routes))
}

/// One row of the table, formatted.
pub struct Row {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// `enabled`, `manually_disabled` or `auto_disabled`.
    pub status: String,
    pub reason: Option<String>,
    pub priority: i64,
    pub weight: i64,
    pub models: String,
    pub model_count: usize,
    pub used: String,
    pub key_hint: String,
    pub key_count: usize,
    pub last_error: Option<String>,
    pub latency: Option<String>,
    /// `closed`, `open` or `half_open` (on this server).
    pub circuit: &'static str,
    /// Moving time to first token and error rate on this server, once measured.
    pub speed: Option<String>,
}

impl Row {
    fn new(layout: &Layout, c: ChannelView) -> Self {
        let shown: Vec<&str> = c.models.iter().take(4).map(String::as_str).collect();
        let mut models = shown.join(", ");
        if c.models.len() > shown.len() {
            models.push_str(&format!(" +{}", c.models.len() - shown.len()));
        }
        Self {
            id: c.id,
            name: c.name,
            kind: c.kind,
            status: c.status,
            reason: c.disabled_reason,
            priority: c.priority,
            weight: c.weight,
            model_count: c.models.len(),
            models,
            used: Money(c.used_amount).to_string(),
            key_hint: c.key_hint,
            key_count: c.key_count,
            last_error: c.last_error.map(|e| e.chars().take(160).collect()),
            latency: c.test_latency_ms.map(|ms| format!("{ms} ms")),
            circuit: c.health.circuit,
            speed: keys::speed(layout, &c.health.traffic),
        }
    }
}

/// What the section shows besides the rows.
#[derive(Default)]
pub struct Outcome {
    pub notice: Option<String>,
    pub error: Option<String>,
    /// Probe results to list (test / test all).
    pub results: Vec<TestLine>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/channels.html")]
pub struct ChannelsPage {
    layout: Layout,
    rows: Vec<Row>,
    outcome: Outcome,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/_channels.html")]
pub struct ChannelsFragment {
    layout: Layout,
    rows: Vec<Row>,
    outcome: Outcome,
}

/// The list with `outcome`: the section for htmx, else the page (400 when refused).
async fn answer(state: &AppState, admin: AdminUser, hx: bool, outcome: Outcome) -> Response {
    let layout = admin.user.layout;
    let rows = match channels::list(state).await {
        Ok(list) => list.into_iter().map(|c| Row::new(&layout, c)).collect(),
        Err(e) => return ConsoleError::internal("a channel page", e).into_response(),
    };
    if hx {
        return vary(ChannelsFragment { layout, rows, outcome }.into_response());
    }
    let status = if outcome.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    vary((status, ChannelsPage { layout, rows, outcome }).into_response())
}

/// The outcome of a failed action: a message for the operator, or the 404 / 500 answer.
fn refused(admin: &AdminUser, e: ChannelError) -> Result<Outcome, Box<Response>> {
    match e {
        ChannelError::Invalid(message) | ChannelError::KeyRequired(message) => {
            Ok(Outcome { error: Some(message), ..Outcome::default() })
        }
        ChannelError::NotFound => Err(Box::new(not_found(admin))),
        e => Err(Box::new(ConsoleError::internal("a channel page", e).into_response())),
    }
}

/// The 404 page of a missing channel.
pub(crate) fn not_found(admin: &AdminUser) -> Response {
    let page =
        NoticePage::new(admin.user.layout.clone(), "No such channel", "The channel was deleted or never existed.");
    (StatusCode::NOT_FOUND, page).into_response()
}

/// `GET /admin/channels`.
pub async fn page(State(state): State<AppState>, admin: AdminUser) -> Response {
    answer(&state, admin, false, Outcome::default()).await
}

/// Runs `action` on the channel of the path and answers the list with its outcome.
macro_rules! row_action {
    ($name:ident, $doc:literal, |$state:ident, $admin:ident, $id:ident| $body:expr) => {
        #[doc = $doc]
        pub async fn $name(
            State($state): State<AppState>,
            $admin: AdminUser,
            HxRequest(hx): HxRequest,
            Id($id, _): PathId,
        ) -> Response {
            let result: Result<Outcome, ChannelError> = $body;
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(e) => match refused(&$admin, e) {
                    Ok(outcome) => outcome,
                    Err(response) => return *response,
                },
            };
            answer(&$state, $admin, hx, outcome).await
        }
    };
}

row_action!(test, "`POST /admin/channels/{id}/test`.", |state, admin, id| {
    match channels::admin::test(&state, &admin.actor, id).await {
        Ok(result) => {
            let name = channels::get(&state, id).await.map(|c| c.name).unwrap_or_default();
            Ok(Outcome { results: vec![TestLine { id, name, result }], ..Outcome::default() })
        }
        Err(e) => Err(e),
    }
});

row_action!(enable, "`POST /admin/channels/{id}/enable`.", |state, admin, id| {
    channels::admin::set_enabled(&state, &admin.actor, id, true).await.map(|c| Outcome {
        notice: Some(admin.user.layout.t("Channel {name} enabled.").replace("{name}", &c.name)),
        ..Outcome::default()
    })
});

row_action!(disable, "`POST /admin/channels/{id}/disable`.", |state, admin, id| {
    channels::admin::set_enabled(&state, &admin.actor, id, false).await.map(|c| Outcome {
        notice: Some(admin.user.layout.t("Channel {name} disabled.").replace("{name}", &c.name)),
        ..Outcome::default()
    })
});

row_action!(copy, "`POST /admin/channels/{id}/copy`: the copy is created disabled.", |state, admin, id| {
    channels::admin::copy(&state, &admin.actor, id).await.map(|c| Outcome {
        notice: Some(admin.user.layout.t("Created {name}, disabled until you enable it.").replace("{name}", &c.name)),
        ..Outcome::default()
    })
});

row_action!(delete, "`POST /admin/channels/{id}/delete`.", |state, admin, id| {
    channels::admin::delete(&state, &admin.actor, id)
        .await
        .map(|()| Outcome { notice: Some(admin.user.layout.t("Channel deleted.").to_string()), ..Outcome::default() })
});

/// `POST /admin/channels/test`: probes every channel.
pub async fn test_all(State(state): State<AppState>, admin: AdminUser, HxRequest(hx): HxRequest) -> Response {
    match channels::admin::test_all(&state, &admin.actor).await {
        Ok(results) => answer(&state, admin, hx, Outcome { results, ..Outcome::default() }).await,
        Err(e) => ConsoleError::internal("a channel page", e).into_response(),
    }
}

//! `/admin/channels`: the channel list (status with the reason of an automatic disable, type,
//! priority, weight, models, used amount, last error, last test latency) and its row actions —
//! test, test all, enable, disable, copy, delete. The create / edit / import forms are in
//! `form`. Everything goes through `services::channel_admin` (audited, as the API). Upstream
//! keys are write-only: the page shows the last 4 characters at most.
//!
//! htmx posts answer the `#channels` section; without JavaScript the whole page.

mod form;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AdminUser;
use crate::console::Layout;
use crate::console::auth::NoticePage;
use crate::console::error::ConsoleError;
use crate::console::htmx::{HxRequest, vary};
use crate::domain::money::Money;
use crate::routes::Routes;
use crate::services::channel_admin::{self, TestLine};
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
    form::routes(routes)
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
}

impl From<ChannelView> for Row {
    fn from(c: ChannelView) -> Self {
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
    let rows = match channels::list(state).await {
        Ok(list) => list.into_iter().map(Row::from).collect(),
        Err(e) => return ConsoleError::internal("a channel page", e).into_response(),
    };
    let layout = admin.user.layout;
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

fn id_of(raw: &str) -> Option<i64> {
    raw.parse().ok()
}

/// Runs `action` on the channel of the path and answers the list with its outcome.
macro_rules! row_action {
    ($name:ident, $doc:literal, |$state:ident, $admin:ident, $id:ident| $body:expr) => {
        #[doc = $doc]
        pub async fn $name(
            State($state): State<AppState>,
            $admin: AdminUser,
            HxRequest(hx): HxRequest,
            Path(raw): Path<String>,
        ) -> Response {
            let Some($id) = id_of(&raw) else {
                return not_found(&$admin);
            };
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
    match channel_admin::test(&state, &admin.actor, id).await {
        Ok(result) => {
            let name = channels::get(&state, id).await.map(|c| c.name).unwrap_or_default();
            Ok(Outcome { results: vec![TestLine { id, name, result }], ..Outcome::default() })
        }
        Err(e) => Err(e),
    }
});

row_action!(enable, "`POST /admin/channels/{id}/enable`.", |state, admin, id| {
    channel_admin::set_enabled(&state, &admin.actor, id, true).await.map(|c| Outcome {
        notice: Some(admin.user.layout.t("Channel {name} enabled.").replace("{name}", &c.name)),
        ..Outcome::default()
    })
});

row_action!(disable, "`POST /admin/channels/{id}/disable`.", |state, admin, id| {
    channel_admin::set_enabled(&state, &admin.actor, id, false).await.map(|c| Outcome {
        notice: Some(admin.user.layout.t("Channel {name} disabled.").replace("{name}", &c.name)),
        ..Outcome::default()
    })
});

row_action!(copy, "`POST /admin/channels/{id}/copy`: the copy is created disabled.", |state, admin, id| {
    channel_admin::copy(&state, &admin.actor, id).await.map(|c| Outcome {
        notice: Some(admin.user.layout.t("Created {name}, disabled until you enable it.").replace("{name}", &c.name)),
        ..Outcome::default()
    })
});

row_action!(delete, "`POST /admin/channels/{id}/delete`.", |state, admin, id| {
    channel_admin::delete(&state, &admin.actor, id)
        .await
        .map(|()| Outcome { notice: Some(admin.user.layout.t("Channel deleted.").to_string()), ..Outcome::default() })
});

/// `POST /admin/channels/test`: probes every channel.
pub async fn test_all(State(state): State<AppState>, admin: AdminUser, HxRequest(hx): HxRequest) -> Response {
    match channel_admin::test_all(&state, &admin.actor).await {
        Ok(results) => answer(&state, admin, hx, Outcome { results, ..Outcome::default() }).await,
        Err(e) => ConsoleError::internal("a channel page", e).into_response(),
    }
}

/// This page's texts in Chinese.
pub const ZH: &[(&str, &str)] = &[
    ("Upstream providers the gateway routes requests to.", "网关转发请求的上游服务。"),
    ("Add channel", "添加渠道"),
    ("Bulk import", "批量导入"),
    ("Test all", "全部测试"),
    ("Type", "类型"),
    ("Priority", "优先级"),
    ("Weight", "权重"),
    ("Used amount", "已用金额"),
    ("Last error", "最近错误"),
    ("Last test", "最近测试"),
    ("enabled", "已启用"),
    ("auto-disabled", "已自动停用"),
    ("keys", "个密钥"),
    ("Test", "测试"),
    ("More", "更多"),
    ("Delete this channel?", "删除此渠道？"),
    ("No channels yet.", "还没有渠道。"),
    (
        "Add a channel with an upstream key, or import many keys at once. Users' requests are routed to enabled channels.",
        "添加带有上游密钥的渠道，或一次导入多个密钥。用户的请求会被转发到已启用的渠道。",
    ),
    ("Test results", "测试结果"),
    ("passed", "通过"),
    ("failed", "失败"),
    ("Channel {name} enabled.", "渠道 {name} 已启用。"),
    ("Channel {name} disabled.", "渠道 {name} 已停用。"),
    ("Created {name}, disabled until you enable it.", "已创建 {name}，启用前不会处理请求。"),
    ("Channel deleted.", "渠道已删除。"),
    ("No such channel", "没有这个渠道"),
    ("The channel was deleted or never existed.", "该渠道已被删除或不存在。"),
    ("New channel", "新建渠道"),
    ("Edit channel", "编辑渠道"),
    ("Base URL", "基础 URL"),
    ("Leave blank for the type's default.", "留空则使用该类型的默认地址。"),
    ("Upstream key", "上游密钥"),
    (
        "One key per line; several keys are used in rotation. Write-only: it is never shown again.",
        "每行一个密钥；多个密钥轮流使用。只写：保存后不再显示。",
    ),
    ("Leave blank to keep the current key.", "留空则保留当前密钥。"),
    ("Current key", "当前密钥"),
    ("One per line or separated by commas.", "每行一个，或用逗号分隔。"),
    ("Model mapping", "模型映射"),
    (
        "One per line: requested=upstream. For Azure, map each model to its deployment name.",
        "每行一条：请求模型=上游模型。Azure 请将每个模型映射到其部署名称。",
    ),
    ("Azure api-version", "Azure api-version"),
    ("Azure only, e.g. 2024-10-21.", "仅 Azure，例如 2024-10-21。"),
    ("Bedrock region", "Bedrock 区域"),
    (
        "Bedrock only, e.g. us-east-1. The key is ACCESS_KEY_ID:SECRET_ACCESS_KEY (or an API key).",
        "仅 Bedrock，例如 us-east-1。密钥格式为 ACCESS_KEY_ID:SECRET_ACCESS_KEY（或 API 密钥）。",
    ),
    ("Enabled", "启用"),
    ("Save channel", "保存渠道"),
    ("Create channel", "创建渠道"),
    ("Fetch models", "获取模型列表"),
    (
        "Asks the upstream's /models for its model list (OpenAI-compatible types) and puts it in the field: review it, then save.",
        "从上游的 /models 获取模型列表（OpenAI 兼容类型）并填入上方：检查后保存。",
    ),
    ("Fetched {n} models: review them, then save.", "已获取 {n} 个模型：检查后保存。"),
    ("Channel saved.", "渠道已保存。"),
    ("The channel's key is needed again to save this.", "保存此更改需要重新输入渠道密钥。"),
    (
        "The base URL, type or region changed: enter the key again. The current key is never sent to a new address.",
        "基础 URL、类型或区域已更改：请重新输入密钥。当前密钥绝不会发送到新的地址。",
    ),
    ("Keys", "密钥"),
    ("One key per line.", "每行一个密钥。"),
    ("Import as", "导入方式"),
    ("one channel per key", "每个密钥一个渠道"),
    ("one channel using the keys in rotation", "一个渠道，轮流使用这些密钥"),
    ("Import", "导入"),
    ("Imported {n} channels.", "已导入 {n} 个渠道。"),
    (
        "Import many upstream keys with the same settings: one channel per key, or one channel rotating through them.",
        "以相同设置导入多个上游密钥：每个密钥一个渠道，或一个渠道轮流使用它们。",
    ),
    ("priority must be a whole number", "优先级必须是整数"),
    ("weight must be a whole number", "权重必须是整数"),
    ("Back to channels", "返回渠道列表"),
];

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

/// This page's texts in Chinese.
pub const ZH: &[(&str, &str)] = &[
    ("Every setting applies at once, without a restart.", "每项设置立即生效，无需重启。"),
    ("General", "常规"),
    ("How the site presents itself.", "站点的对外展示。"),
    ("Site name", "站点名称"),
    ("Public URL", "公开地址"),
    (
        "Used in email, invitation and quick-start links. Empty: the configured URL.",
        "用于邮件、邀请和快速开始中的链接。留空：使用配置的地址。",
    ),
    ("Currency", "货币"),
    ("A three-letter code, shown with amounts.", "三个字母的代码，与金额一同显示。"),
    ("Announcement", "公告"),
    ("Shown on top of every page. Empty: none.", "显示在每个页面顶部。留空：不显示。"),
    ("Signups", "注册"),
    ("Who may create an account, and what they get.", "谁可以创建账户，以及他们获得什么。"),
    ("Signup mode", "注册模式"),
    ("Open", "开放"),
    ("Invitation only", "仅限邀请"),
    ("Closed", "关闭"),
    ("Allowed email domains", "允许的邮箱域名"),
    ("Comma-separated, like example.com. Empty: any.", "用逗号分隔，如 example.com。留空：不限。"),
    ("Email verification", "邮箱验证"),
    ("When SMTP is configured", "配置了 SMTP 时"),
    ("Always", "始终"),
    ("Not required", "不要求"),
    ("Default routing strategy", "默认路由策略"),
    ("Connect timeout (seconds)", "连接超时（秒）"),
    ("1 to 300.", "1 到 300。"),
    ("Key cache (seconds)", "密钥缓存（秒）"),
    (
        "How long a key's lookup is trusted; changes made on other replicas show within it.",
        "密钥查询结果的信任时长；其他副本上的更改会在此时间内生效。",
    ),
    ("How a channel is picked among those of the same priority.", "在同一优先级的渠道中如何选择。"),
    ("Weighted random", "按权重随机"),
    ("Round robin", "轮询"),
    ("Failover (in order)", "故障转移（按顺序）"),
    ("Welcome credit", "注册赠送额度"),
    ("Credited once the address is verified.", "邮箱验证后入账。"),
    ("Invitations", "邀请"),
    ("Rewards for inviting people.", "邀请他人的奖励。"),
    ("Inviter reward", "邀请人奖励"),
    ("Invitee reward", "被邀请人奖励"),
    ("Top-up reward (%)", "充值返利（%）"),
    ("Of the invitee's first top-up, to the inviter.", "被邀请人首次充值金额的比例，返给邀请人。"),
    ("Mail (SMTP)", "邮件（SMTP）"),
    (
        "Verification, password-reset and notification mail. Overrides the environment.",
        "验证、重置密码和通知邮件。优先于环境变量。",
    ),
    ("SMTP host", "SMTP 主机"),
    ("Empty: no mail.", "留空：不发送邮件。"),
    ("Port", "端口"),
    ("Empty: the usual port for the security mode.", "留空：使用该安全模式的常用端口。"),
    ("Security", "安全"),
    ("None (plain)", "无（明文）"),
    ("Username", "用户名"),
    ("Password", "密码"),
    ("Sender", "发件人"),
    ("Like BurnCloud <noreply@example.com>.", "如 BurnCloud <noreply@example.com>。"),
    ("Payments (Stripe)", "支付（Stripe）"),
    ("Stored encrypted and never shown again.", "加密保存，不会再次显示。"),
    ("Top-ups", "充值"),
    ("What users can pay on the top-up page, and what it credits.", "用户在充值页面可以支付的金额，以及到账的额度。"),
    ("Payment currency", "支付货币"),
    (
        "The three-letter code Stripe charges in, like usd. Amounts below are in it.",
        "Stripe 收款使用的三字母货币代码，例如 usd。下方金额均以该货币计。",
    ),
    ("Preset amounts", "预设金额"),
    ("Up to 12, separated by commas, like 5, 10, 20.", "最多 12 个，用逗号分隔，例如 5, 10, 20。"),
    ("Smallest custom amount", "自定义金额下限"),
    ("Largest custom amount", "自定义金额上限"),
    ("Credit per unit paid", "每单位支付到账额度"),
    (
        "Balance credited for one unit of the payment currency (1.00 USD, say).",
        "每支付一单位货币（例如 1.00 USD）到账的余额。",
    ),
    ("Bonus by group (%)", "分组充值加成（%）"),
    (
        "Extra credit (or less, when negative) per group, like vip=10, trial=-5. Empty: none.",
        "按分组额外赠送的额度（负数表示减少），例如 vip=10, trial=-5。留空表示无。",
    ),
    ("Secret key", "密钥"),
    ("Webhook signing secret", "Webhook 签名密钥"),
    ("Gateway", "网关"),
    ("Applied to the next request, without a restart.", "从下一个请求起生效，无需重启。"),
    ("Channels tried per request", "每个请求尝试的渠道数"),
    ("1 to 20; 1 means no failover.", "1 到 20；1 表示不故障转移。"),
    ("First-byte timeout (seconds)", "首字节超时（秒）"),
    ("Stream idle timeout (seconds)", "流空闲超时（秒）"),
    ("Largest request body (bytes)", "请求体上限（字节）"),
    ("Client stall cut (seconds)", "客户端停滞断开（秒）"),
    (
        "A streaming client that takes no data for this long is cut and billed for what it received.",
        "流式客户端超过此时长未接收数据即被断开，并按已收到的内容计费。",
    ),
    ("Free use of models without a price", "未定价模型免费使用"),
    ("No", "否"),
    ("Yes", "是"),
    ("Notifications", "通知"),
    ("Email sent to users by the site.", "站点发给用户的邮件。"),
    ("Low-balance email below", "余额低于此值时发邮件"),
    ("One email when a balance falls below this amount. 0: off.", "余额低于该金额时发送一封邮件。0：关闭。"),
    ("Unknown section.", "未知的设置分组。"),
    ("Nothing changed.", "没有改动。"),
    ("Saved.", "已保存。"),
    ("Test email sent. Check your inbox.", "测试邮件已发送，请查收。"),
    ("Send a test email", "发送测试邮件"),
    ("To your address:", "发往你的邮箱："),
    ("Set", "已设置"),
    ("Not set", "未设置"),
    ("Leave blank to keep the stored value.", "留空则保留已保存的值。"),
    ("Remove the stored value", "删除已保存的值"),
    ("Mail on", "邮件已开启"),
    ("Mail off", "邮件未开启"),
    (
        "SMTP is not configured: new accounts are not email-verified, passwords cannot be reset by email and no notification is sent.",
        "未配置 SMTP：新账户不做邮箱验证，无法通过邮件重置密码，也不会发送通知。",
    ),
    ("Test email", "测试邮件"),
    (
        "This is a test message from your site's settings: mail is working.",
        "这是站点设置发出的测试邮件：邮件工作正常。",
    ),
    ("Open the settings", "打开设置"),
    ("You receive this because an operator asked for a test email.", "你收到这封邮件，是因为运营者请求发送测试邮件。"),
];

//! The console's languages: English and Simplified Chinese. Templates write their English text
//! through `layout.t("…")`; the English text is the key into the Chinese table (gettext-style),
//! so templates stay readable and a missing translation falls back to English. A test checks
//! that every `t("…")` in `templates/` has a Chinese entry.

use std::collections::HashMap;
use std::sync::LazyLock;

/// A console language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// `en` or `zh` (cookie values and `<html lang>`).
    pub fn parse(code: &str) -> Option<Self> {
        match code.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Self::En),
            "zh" | "zh-cn" | "zh-hans" => Some(Self::Zh),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Zh => "zh-CN",
        }
    }

    /// The best match for an `Accept-Language` header: the first language by quality that is
    /// English or any Chinese variant; English when neither is asked for.
    pub fn from_accept_language(header: &str) -> Self {
        let mut ranked: Vec<(f32, &str)> = header
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let tag = pieces.next()?.trim();
                let quality = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                (!tag.is_empty() && quality > 0.0).then_some((quality, tag))
            })
            .collect();
        // Stable: equal qualities keep the header's order.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, tag) in ranked {
            let primary = tag.split('-').next().unwrap_or(tag).to_ascii_lowercase();
            match primary.as_str() {
                "zh" => return Self::Zh,
                "en" => return Self::En,
                _ => {}
            }
        }
        Self::En
    }

    /// `text` in this language (`text` itself in English or when no translation exists).
    pub fn t(self, text: &str) -> &str {
        match self {
            Self::En => text,
            Self::Zh => ZH_INDEX.get(text).copied().unwrap_or(text),
        }
    }
}

/// Every table: the user console's ([`ZH`]), each admin page's and the reseller page's.
fn tables() -> impl Iterator<Item = &'static [(&'static str, &'static str)]> {
    std::iter::once(ZH).chain(super::admin::ZH.iter().copied()).chain(std::iter::once(super::reseller::ZH))
}

static ZH_INDEX: LazyLock<HashMap<&'static str, &'static str>> =
    LazyLock::new(|| tables().flat_map(|t| t.iter().copied()).collect());

/// English → Simplified Chinese, grouped by where the text appears. A text used on several
/// pages is listed once, in the first group that uses it. `{name}` placeholders are filled in
/// by the caller (`.replace("{name}", …)`) and must appear in both languages.
pub const ZH: &[(&str, &str)] = &[
    // The layout: top bar, language / theme switch, footer (templates/base.html).
    ("Pricing", "价格"),
    ("Quick start", "快速开始"),
    ("Console", "控制台"),
    ("Log in", "登录"),
    ("Log out", "退出登录"),
    ("Sign up", "注册"),
    ("Language", "语言"),
    ("Theme", "主题"),
    ("Light", "浅色"),
    ("Dark", "深色"),
    ("System", "跟随系统"),
    ("Save", "保存"),
    ("Skip to content", "跳到正文"),
    ("Site", "站点"),
    ("Footer", "页脚"),
    ("Switch to the light theme", "切换到浅色主题"),
    ("Switch to the dark theme", "切换到深色主题"),
    ("One API for every model", "一个 API，调用所有模型"),
    (
        "One API for every model: an OpenAI- and Anthropic-compatible gateway with prepaid, pay-as-you-go billing.",
        "一个 API 调用所有模型：兼容 OpenAI 与 Anthropic 的大模型网关，预付费、按量计费。",
    ),
    // The console navigation (templates/console_nav.html).
    ("Dashboard", "仪表盘"),
    ("API keys", "API 密钥"),
    ("Usage", "用量"),
    ("Billing", "账单"),
    ("Invitations", "邀请"),
    ("Profile", "个人资料"),
    // Signup, verification, password reset and email change (pages, messages and mail).
    ("Confirm your email address", "确认你的邮箱地址"),
    (
        "Welcome! Confirm that this is your email address to finish creating your account.",
        "欢迎！请确认这是你的邮箱地址，以完成账户创建。",
    ),
    ("Confirm email address", "确认邮箱地址"),
    (
        "The link works once and expires in 24 hours. If you did not sign up, ignore this email.",
        "该链接仅可使用一次，24 小时内有效。如果你没有注册，请忽略此邮件。",
    ),
    ("You already have an account", "你已经有账户了"),
    (
        "Someone tried to sign up with this email address, but it already has an account. If it was you, log in — or reset your password if you have forgotten it.",
        "有人尝试用这个邮箱地址注册，但该地址已有账户。如果是你本人，请直接登录；如果忘记了密码，可以重置密码。",
    ),
    (
        "If it was not you, you can ignore this email: nothing was changed.",
        "如果不是你本人，请忽略此邮件：账户没有任何变更。",
    ),
    ("Reset your password", "重置密码"),
    (
        "Someone asked to reset the password of your account. Choose a new password with the link below.",
        "有人请求重置你的账户密码。请通过下面的链接设置新密码。",
    ),
    ("Choose a new password", "设置新密码"),
    (
        "The link works once and expires in one hour. If you did not ask for it, ignore this email: your password stays as it is.",
        "该链接仅可使用一次，1 小时内有效。如果不是你本人请求，请忽略此邮件，你的密码不会改变。",
    ),
    ("Confirm your new email address", "确认你的新邮箱地址"),
    ("Confirm that this address should become the email of your account.", "请确认将此地址设为你账户的邮箱。"),
    ("Confirm new address", "确认新地址"),
    (
        "The link works once and expires in 24 hours. If you did not ask for this, ignore this email.",
        "该链接仅可使用一次，24 小时内有效。如果不是你本人请求，请忽略此邮件。",
    ),
    (
        "Sign-ups are closed on this site. Ask its operators for an account.",
        "本站已关闭注册。请联系站点运营者开通账户。",
    ),
    ("This site is invite-only: enter an invitation code.", "本站仅限邀请注册：请输入邀请码。"),
    ("This invitation code is not valid.", "邀请码无效。"),
    (
        "Sign-ups are limited to some email domains, and this address is not at one of them.",
        "本站仅允许部分邮箱域名注册，此地址不在其中。",
    ),
    ("An account with this email already exists; log in instead.", "该邮箱已有账户，请直接登录。"),
    ("An account with this email already exists.", "该邮箱已有账户。"),
    (
        "This link is not valid any more: it was used or has expired. Ask for a new one.",
        "该链接已失效：已被使用或已过期。请重新获取。",
    ),
    ("The current password is not right.", "当前密码不正确。"),
    ("This is already your email address.", "这已经是你的邮箱地址。"),
    ("Incorrect email or password.", "邮箱或密码不正确。"),
    ("Home", "首页"),
    // Errors (console/error.rs, templates/error.html).
    ("Not found", "未找到"),
    ("Something went wrong", "出错了"),
    (
        "Something went wrong on our side. Please try again; if it keeps happening, contact the site's operator.",
        "我们这边出了问题。请重试；如果一直出现，请联系站点运营者。",
    ),
    ("Email", "邮箱"),
    ("Password", "密码"),
    ("Forgot your password?", "忘记密码？"),
    ("New here?", "第一次来？"),
    ("Create an account", "创建账户"),
    ("Create your account", "创建你的账户"),
    ("Invitation code (optional)", "邀请码（可选）"),
    ("Have an account?", "已有账户？"),
    ("One click and this address is confirmed.", "点击一下即可确认此地址。"),
    (
        "Enter the email address of your account and we will send you a link to choose a new password.",
        "输入你账户的邮箱地址，我们会发送一个设置新密码的链接。",
    ),
    ("Send the link", "发送链接"),
    ("Back to log in", "返回登录"),
    ("New password", "新密码"),
    ("Set the new password", "设置新密码"),
    ("Every session of your account will be signed out.", "你账户的所有会话都将退出登录。"),
    ("Check your inbox", "请查收邮件"),
    (
        "We sent a link to the address you gave. Open it to confirm your email, then log in.",
        "我们已向你填写的地址发送了一个链接。打开它确认邮箱，然后登录。",
    ),
    (
        "Your email address is not confirmed yet. We sent you a new link: open it, then log in.",
        "你的邮箱地址尚未确认。我们已发送新的链接：打开它，然后登录。",
    ),
    ("Your email address is confirmed. Log in to continue.", "你的邮箱地址已确认。请登录以继续。"),
    (
        "Your password was changed and every session signed out. Log in with the new password.",
        "密码已修改，所有会话均已退出。请使用新密码登录。",
    ),
    ("This link has expired", "链接已失效"),
    ("Display name", "显示名称"),
    ("Rewards earned", "已获奖励"),
    ("Signed in as", "当前登录"),
    ("Your name", "你的名字"),
    ("Copy", "复制"),
    (
        "This site sends no email (no SMTP server is configured): new accounts are not verified and passwords cannot be reset by email. Set BURNCLOUD_SMTP_HOST to turn mail on.",
        "本站不发送邮件（未配置 SMTP 服务器）：新账户不会验证邮箱，也无法通过邮件重置密码。设置 BURNCLOUD_SMTP_HOST 即可开启邮件。",
    ),
    ("Copied", "已复制"),
    (
        "This site does not send email, so passwords cannot be reset by email. Ask the site's operators to reset yours.",
        "本站不发送邮件，因此无法通过邮件重置密码。请联系站点运营者为你重置。",
    ),
    ("For each friend who confirms their email", "每位好友确认邮箱后"),
    ("you get", "你获得"),
    ("they get", "对方获得"),
    ("Change email", "修改邮箱"),
    ("New email", "新邮箱"),
    ("Current password", "当前密码"),
    ("Change password", "修改密码"),
    ("Sessions", "会话"),
    ("Signed in places, this one included:", "已登录的位置（包括当前）："),
    ("Sign out everywhere else", "退出其他所有位置"),
    ("Your new email address is confirmed.", "你的新邮箱地址已确认。"),
    ("The display name is at most 64 characters.", "显示名称最多 64 个字符。"),
    ("Saved.", "已保存。"),
    (
        "We sent a link to the new address. Your email changes when you open it.",
        "我们已向新地址发送链接。打开链接后邮箱即会更改。",
    ),
    ("Your email address was changed.", "你的邮箱地址已更改。"),
    ("Password changed. Every other session was signed out.", "密码已修改。其他所有会话均已退出。"),
    ("Also revoke my access tokens", "同时吊销我的访问令牌"),
    (
        "Password changed. Every other session was signed out and your access tokens were revoked.",
        "密码已修改。其他所有会话均已退出，你的访问令牌也已吊销。",
    ),
    (
        "If an account exists for that address, we sent it a link to choose a new password. The link expires in one hour.",
        "如果该地址有对应的账户，我们已向其发送设置新密码的链接。链接 1 小时内有效。",
    ),
    // The landing page (templates/landing.html).
    ("OpenAI- and Anthropic-compatible LLM gateway", "兼容 OpenAI 与 Anthropic 的大模型 API 网关"),
    (
        "Call GPT, Claude, Gemini and more with one key and one bill. Change the base URL, keep your code, and pay only for the tokens you use.",
        "一个密钥、一份账单，畅用 GPT、Claude、Gemini 等模型。只需更换 Base URL，代码无需改动，按实际使用的 Token 付费。",
    ),
    ("Open the console", "进入控制台"),
    ("Read the quick start", "查看快速开始"),
    ("Create a free account", "免费注册"),
    ("View pricing", "查看价格"),
    ("Already have an account?", "已有账号？"),
    ("API base URL:", "API 地址："),
    ("Everything you need to ship with LLMs", "构建大模型应用所需的一切"),
    (
        "A gateway your existing code already speaks, with the controls a team needs.",
        "现有代码直接可用的网关，外加团队所需的各项管控。",
    ),
    ("Drop-in compatible", "即插即用"),
    (
        "Works with the official OpenAI and Anthropic SDKs, LangChain, Claude Code and curl. Only the base URL changes.",
        "支持 OpenAI 与 Anthropic 官方 SDK、LangChain、Claude Code 和 curl，只需更换 Base URL。",
    ),
    ("Many providers, one key", "多家厂商，一个密钥"),
    (
        "Models from OpenAI, Anthropic, Google and other providers behind a single key. The pricing page lists every model on offer.",
        "一个密钥即可调用 OpenAI、Anthropic、Google 等厂商的模型，价格页列出了全部可用模型。",
    ),
    ("Reliable routing", "稳定可靠的路由"),
    (
        "Requests are spread over upstream channels by priority and weight, and retried on another channel when one fails.",
        "请求按优先级和权重分发到各上游通道，某个通道出错时自动换用其他通道重试。",
    ),
    ("Pay as you go", "按量付费"),
    (
        "A prepaid balance and per-token prices. No subscription, no minimum, and every charge is itemised.",
        "预付余额，按 Token 计价。无需订阅，没有最低消费，每笔扣费都有明细。",
    ),
    ("Keys under control", "密钥尽在掌控"),
    (
        "A key for every app or teammate, each with its own spend limit. Disable or delete one at any time.",
        "为每个应用或成员单独创建密钥并设置消费上限，随时可以停用或删除。",
    ),
    ("Usage you can read", "用量一目了然"),
    (
        "Every request with its tokens, cost and latency, a daily spend chart, and CSV export.",
        "每次请求的 Token 数、费用和延迟均有记录，并提供每日消费图表和 CSV 导出。",
    ),
    ("Start in three steps", "三步即可开始"),
    ("Sign up with your email. It takes a minute.", "使用邮箱注册，一分钟即可完成。"),
    ("Create an API key", "创建 API 密钥"),
    (
        "Name it after the app that uses it, and set a spend limit if you like.",
        "以使用它的应用命名，还可以按需设置消费上限。",
    ),
    ("Change the base URL", "更换 Base URL"),
    (
        "Point your SDK at the API base URL above and send your first request.",
        "将 SDK 指向上方的 API 地址，发出你的第一个请求。",
    ),
    ("Ready to build?", "准备好开始了吗？"),
    ("Sign up, create a key and make your first request in minutes.", "注册、创建密钥，几分钟内即可发出第一个请求。"),
    // Pricing (templates/pricing.html).
    (
        "Pay only for what you use. Prices are per 1M tokens or per request, in:",
        "用多少付多少。按每百万 Token 或每次请求计费，货币：",
    ),
    ("Search models", "搜索模型"),
    ("e.g. gpt, claude", "例如 gpt、claude"),
    ("Search", "搜索"),
    ("Prices for your group:", "当前显示你所在分组的价格："),
    ("No models match.", "没有匹配的模型。"),
    ("Try another search, or clear it to see every model.", "换个关键词试试，或清空搜索以查看全部模型。"),
    ("Model", "模型"),
    ("Input / 1M tokens", "输入 / 百万 Token"),
    ("Cached input / 1M tokens", "缓存输入 / 百万 Token"),
    ("Output / 1M tokens", "输出 / 百万 Token"),
    ("Per request", "每次请求"),
    ("“—” means that part is not charged.", "“—” 表示该项不收费。"),
    // Quick start (templates/quickstart.html).
    ("From zero to your first request in a few minutes.", "几分钟内，从零开始发出第一个请求。"),
    ("Done: you are logged in.", "已完成：你已登录。"),
    (
        "Keys start with sk-. Copy yours when it is created: it is shown only once.",
        "密钥以 sk- 开头。请在创建时立即复制，它只会显示一次。",
    ),
    ("Go to API keys", "前往 API 密钥"),
    ("Set the base URL", "设置 Base URL"),
    (
        "Point any OpenAI-compatible client at this address, with your key. Nothing else changes.",
        "将任意兼容 OpenAI 的客户端指向此地址并填入你的密钥，其余无需任何改动。",
    ),
    ("Examples", "示例代码"),
    (
        "Replace sk-… with your key, or set BURNCLOUD_API_KEY in your environment.",
        "将 sk-… 替换为你的密钥，或在环境变量中设置 BURNCLOUD_API_KEY。",
    ),
    ("Claude Code and the Anthropic SDKs", "Claude Code 与 Anthropic SDK"),
    (
        "The Anthropic SDKs take the site address without /v1 as their base URL, and your key as the API key:",
        "Anthropic SDK 以不带 /v1 的站点地址作为 Base URL，并以你的密钥作为 API Key：",
    ),
    ("your API key", "你的 API 密钥"),
    (
        "For a model other than Claude, name it for the main and the background tasks:",
        "使用 Claude 以外的模型时，为主任务和后台任务都指定该模型：",
    ),
    (
        "Codex speaks the Responses API, which OpenAI models serve here. Add this provider to ~/.codex/config.toml (web search is a tool the provider bills per call, which this site does not relay):",
        "Codex 使用 Responses API，本站由 OpenAI 模型提供。将以下提供方加入 ~/.codex/config.toml（网页搜索是上游按次计费的工具，本站不转发）：",
    ),
    ("Model names and prices:", "模型名称与价格："),
    // Usage log (templates/logs.html, src/console/logs.rs).
    ("Every request made with your keys, newest first.", "你的密钥发出的每一个请求，最新的在前。"),
    ("Export CSV", "导出 CSV"),
    ("Filter requests", "筛选请求"),
    ("From", "开始日期"),
    ("To", "结束日期"),
    ("Any model", "全部模型"),
    ("Key", "密钥"),
    ("Any key", "全部密钥"),
    ("Status", "状态"),
    ("All", "全部"),
    ("Succeeded", "成功"),
    ("Failed", "失败"),
    ("Filter", "筛选"),
    ("Reset", "重置"),
    ("Requests", "请求记录"),
    ("Times are UTC. Up to 50 requests a page.", "时间为 UTC，每页最多 50 条。"),
    ("No requests match.", "没有匹配的请求。"),
    (
        "Requests made with your API keys show here a few seconds after they finish.",
        "使用 API 密钥发出的请求完成后，几秒内就会显示在这里。",
    ),
    ("Time", "时间"),
    ("Tokens in / out", "Token 输入 / 输出"),
    ("Cost", "费用"),
    ("Latency", "延迟"),
    ("stream", "流式"),
    ("← Newest", "← 最新"),
    ("Older →", "更早 →"),
    ("From: enter a date like 2026-11-27.", "开始日期：请输入形如 2026-11-27 的日期。"),
    ("To: enter a date like 2026-11-27.", "结束日期：请输入形如 2026-11-27 的日期。"),
    // Billing (templates/billing.html, src/console/billing.rs).
    ("Your balance, redemption codes and every change to your balance.", "账户余额、兑换码，以及每一笔余额变动。"),
    ("Balance", "余额"),
    ("Prepaid credit for requests made with any of your keys.", "预付额度，可用于你任一密钥发出的请求。"),
    ("Unpaid balance", "欠款"),
    (
        "A request cost more than your balance. Your next credit pays this first; until then your keys are refused.",
        "有请求的费用超过了你的余额。下一笔充值会先偿还这笔欠款；在此之前你的密钥将被拒绝。",
    ),
    ("Debt", "欠款"),
    ("Debt paid", "偿还欠款"),
    ("Redeem a code", "兑换码充值"),
    ("Redemption code", "兑换码"),
    ("Redeem", "兑换"),
    (
        "Each code works once. Its amount is added to your balance at once.",
        "每个兑换码只能使用一次，面额会立即计入余额。",
    ),
    ("Activity", "余额变动"),
    (
        "Top-ups, codes, rewards, refunds and adjustments. Times are UTC.",
        "充值、兑换、奖励、退款和调整记录。时间为 UTC。",
    ),
    ("No top-ups, codes or adjustments yet.", "暂无充值、兑换或调整记录。"),
    ("Description", "说明"),
    ("Amount", "金额"),
    ("Balance after", "变动后余额"),
    ("Usage charges per day", "每日用量扣费"),
    ("Monthly statement", "月度对账单"),
    ("Month (UTC)", "月份（UTC）"),
    ("Download statement", "下载对账单"),
    (
        "A CSV of every change to your balance in that month, request charges included, between its opening and closing balance.",
        "CSV 文件，列出该月余额的每一笔变动（含请求扣费），以及月初和月末余额。",
    ),
    ("Choose a month as YYYY-MM, for example 2026-11.", "请按 YYYY-MM 格式选择月份，例如 2026-11。"),
    ("Last 30 days, UTC days.", "最近 30 天，按 UTC 日期统计。"),
    ("No charges yet.", "暂无扣费。"),
    ("Day", "日期"),
    ("Charged", "扣费金额"),
    ("Top-up", "充值"),
    ("Redeemed code", "兑换码充值"),
    ("Invitation reward", "邀请奖励"),
    ("Welcome credit", "注册赠送额度"),
    ("Refund", "退款"),
    ("Adjustment", "余额调整"),
    ("Other", "其他"),
    ("Too many attempts. Try again later.", "尝试次数过多，请稍后再试。"),
    ("The server is busy. Try again in a moment.", "服务器繁忙，请稍后再试。"),
    ("This form was refused", "表单被拒绝"),
    ("This form has expired. Go back, reload the page and try again.", "表单已过期。请返回、刷新页面后重试。"),
    (
        "This form was sent from another site, so it was refused. Open this site directly and try again.",
        "该表单来自其他网站，已被拒绝。请直接打开本站后重试。",
    ),
    ("Redeemed: {amount} added to your balance.", "兑换成功：{amount} 已计入你的余额。"),
    ("This code is not valid, has expired or was already used.", "该兑换码无效、已过期或已被使用。"),
    // Invitations (templates/invitations.html).
    (
        "Invite people with your own link. Everyone who signs up through it is listed below.",
        "用你的专属链接邀请他人，通过它注册的用户都会列在下方。",
    ),
    ("Your invitation code", "你的邀请码"),
    ("Your invitation link", "你的邀请链接"),
    (
        "Click the link to select it, then copy and share it. Whoever signs up through it joins with your code.",
        "点击链接即可全选，复制后分享给他人。通过该链接注册的用户会自动填入你的邀请码。",
    ),
    ("People who joined with your code", "通过你的邀请码注册的用户"),
    ("Emails are partly hidden.", "邮箱已部分隐藏。"),
    ("Nobody yet.", "还没有人通过你的邀请注册。"),
    ("Share your link: people who sign up through it show here.", "分享你的链接，通过它注册的用户会显示在这里。"),
    ("Joined", "注册时间"),
    // ---- user-features branch (key limits, dashboard charts, access tokens): start ----
    ("Your new key", "你的新密钥"),
    ("copy it now: it will not be shown again.", "请立即复制：它不会再次显示。"),
    ("Create key", "创建密钥"),
    ("No keys yet.", "还没有密钥。"),
    ("Name", "名称"),
    ("Spent / limit", "已用 / 上限"),
    ("Expires", "过期时间"),
    ("Last used", "最近使用"),
    ("Actions", "操作"),
    ("e.g. laptop", "例如：笔记本"),
    ("Spend limit", "消费上限"),
    ("no limit", "不限"),
    ("Works through (UTC day)", "有效至（UTC 日期）"),
    ("Requests per minute", "每分钟请求数"),
    ("requests per minute", "次请求/分钟"),
    ("Models", "模型"),
    ("every model", "全部模型"),
    ("IP addresses or CIDR blocks", "IP 地址或 CIDR 网段"),
    ("IPs", "IP"),
    ("anywhere", "不限来源"),
    ("Blank means no limit. Separate models and addresses with commas.", "留空表示不限制。多个模型或地址用逗号分隔。"),
    ("disabled", "已停用"),
    ("expired", "已过期"),
    ("active", "可用"),
    ("never", "从未"),
    ("Edit", "编辑"),
    ("Disable", "停用"),
    ("Enable", "启用"),
    ("Delete", "删除"),
    ("Edit key", "编辑密钥"),
    ("Cancel", "取消"),
    ("Spent today", "今日消费"),
    ("Last 7 days", "近 7 天"),
    ("Last 30 days", "近 30 天"),
    ("Requests today", "今日请求"),
    ("Spend per day, last 14 days (UTC)", "每日消费，近 14 天（UTC）"),
    ("Spend per day over the last 14 days", "近 14 天每日消费"),
    ("Requests per minute, last hour (UTC)", "每分钟请求数，近 1 小时（UTC）"),
    ("Requests per minute over the last hour", "近 1 小时每分钟请求数"),
    ("total", "合计"),
    ("requests", "次请求"),
    ("Tokens by model, last 7 days (UTC)", "各模型 Token 用量，近 7 天（UTC）"),
    ("Input and output tokens by model over the last 7 days", "近 7 天各模型的输入与输出 Token"),
    ("input", "输入"),
    ("output", "输出"),
    ("input tokens", "输入 Token"),
    ("output tokens", "输出 Token"),
    ("No requests in the last 7 days.", "近 7 天没有请求。"),
    ("Access tokens", "访问令牌"),
    (
        "For scripts and tools using the /api/me API: send a token as Authorization: Bearer <token>. A token can read your account and usage and manage your API keys, so keep it secret.",
        "供使用 /api/me API 的脚本和工具使用：以 Authorization: Bearer <令牌> 发送。令牌可以读取你的账户和用量并管理你的 API 密钥，请妥善保管。",
    ),
    ("Your new token", "你的新令牌"),
    ("e.g. deploy script", "例如：部署脚本"),
    ("Create token", "创建令牌"),
    ("No tokens yet.", "还没有令牌。"),
    ("Token", "令牌"),
    ("Works through", "有效至"),
    ("Created", "创建时间"),
    ("Revoke", "撤销"),
    ("Back to your profile", "返回个人资料"),
    // ---- user-features branch: end ----
    // ---- top-ups (issue 7) ----
    ("Top up", "充值"),
    (
        "Add prepaid credit to your balance with a card payment through Stripe.",
        "通过 Stripe 刷卡支付，为余额充入预付额度。",
    ),
    ("Your payments", "我的支付"),
    ("Payment cancelled. Nothing was charged.", "支付已取消，未扣任何费用。"),
    ("Your group gets a bonus on top-ups:", "你所在的分组充值可获赠："),
    ("Your group pays a fee on top-ups:", "你所在的分组充值需支付手续费："),
    (
        "Your balance is credited as soon as Stripe confirms the payment, usually within seconds.",
        "Stripe 确认支付后余额立即到账，通常只需几秒。",
    ),
    ("Other amount", "其他金额"),
    ("Pay", "支付"),
    ("From {min} to {max} {currency}.", "金额范围：{min} 至 {max} {currency}。"),
    ("Top-ups are not available on this site yet.", "本站暂未开放充值。"),
    ("Ask the operators, or redeem a code on the billing page.", "请联系运营人员，或在账单页兑换兑换码。"),
    ("Choose an amount", "选择金额"),
    ("You pay on Stripe's secure page, then come back here.", "你将在 Stripe 的安全页面完成支付，然后返回这里。"),
    ("You pay", "支付金额"),
    ("Credited", "到账额度"),
    ("Enter an amount like 10 or 12.50.", "请输入金额，例如 10 或 12.50。"),
    ("The amount is below the minimum.", "金额低于最低限额。"),
    ("The amount is above the maximum.", "金额高于最高限额。"),
    ("The payment page could not be opened. Try again in a moment.", "无法打开支付页面，请稍后再试。"),
    ("No such payment", "没有此支付记录"),
    ("This payment does not exist or is not yours.", "这笔支付不存在或不属于你。"),
    ("Thank you", "谢谢"),
    ("Payment received, crediting…", "已收到支付，正在入账…"),
    ("This page updates by itself once Stripe confirms the payment.", "Stripe 确认支付后，本页会自动更新。"),
    ("Your balance has been credited.", "余额已到账。"),
    ("This payment did not go through. Nothing was credited.", "这笔支付未成功，没有入账。"),
    ("This payment was refunded.", "这笔支付已退款。"),
    ("Payment", "支付"),
    ("Card payments for top-ups, newest first. Times are UTC.", "充值的刷卡支付记录，最新的在前。时间为 UTC。"),
    ("No payments yet.", "还没有支付记录。"),
    ("Continue to payment", "继续支付"),
    ("Awaiting payment", "等待支付"),
    ("Paid", "已支付"),
    ("Refunded", "已退款"),
    ("Partially refunded", "部分退款"),
    ("Unknown", "未知"),
    ("Payment received", "已收到付款"),
    (
        "Thank you. Your payment was received and your balance has been credited.",
        "谢谢！我们已收到你的付款，余额已到账。",
    ),
    (
        "Stripe sends its own receipt for the card payment. Keep this email for your records.",
        "Stripe 会另行发送刷卡收据。请保留本邮件备查。",
    ),
    ("Amount paid", "支付金额"),
    (
        "Too many unfinished payments. Finish one, or try again in an hour.",
        "未完成的支付过多。请先完成其中一笔，或一小时后再试。",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9,zh;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR, zh-TW;q=0.5"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("fr, de;q=0.5"), Lang::En);
        assert_eq!(Lang::from_accept_language("en;q=0.1, zh;q=0.9"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("zh;q=0, en"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_accept_language(";;,q=,;q=abc"), Lang::En);
    }

    #[test]
    fn unknown_text_falls_back_to_english() {
        assert_eq!(Lang::Zh.t("Log in"), "登录");
        assert_eq!(Lang::Zh.t("no such text"), "no such text");
        assert_eq!(Lang::En.t("Log in"), "Log in");
    }

    /// A `{name}` placeholder in the English text is in its translation too, and no translation
    /// is left empty.
    #[test]
    fn translations_keep_their_placeholders() {
        for (en, zh) in ZH {
            assert!(!zh.trim().is_empty(), "{en}");
            for piece in en.split('{').skip(1) {
                let name = piece.split('}').next().unwrap();
                assert!(zh.contains(&format!("{{{name}}}")), "{{{name}}} missing in the translation of {en:?}");
            }
        }
    }

    /// Every `.t("…")` in the templates and the console's handlers has a Chinese entry.
    #[test]
    fn every_template_text_is_translated() {
        let mut used = std::collections::BTreeSet::new();
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("templates"), root.join("src/console")];
        while let Some(path) = files.pop() {
            if path.ends_with("i18n.rs") {
                continue;
            }
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split(".t(\"").skip(1) {
                if let Some(end) = piece.find("\")") {
                    used.insert(piece[..end].to_string());
                }
            }
        }
        let missing: Vec<_> = used.iter().filter(|t| !ZH_INDEX.contains_key(t.as_str())).collect();
        assert!(missing.is_empty(), "texts without a Chinese entry: {missing:#?}");
        // A text may appear in several tables (pages are written apart), but always the same way.
        let mut seen = HashMap::new();
        for (en, zh) in tables().flat_map(|t| t.iter().copied()) {
            let first = *seen.entry(en).or_insert(zh);
            assert_eq!(first, zh, "{en:?} is translated two ways");
        }
    }
}

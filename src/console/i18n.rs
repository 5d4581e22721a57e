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
    pub fn t(self, text: &'static str) -> &'static str {
        match self {
            Self::En => text,
            Self::Zh => ZH_INDEX.get(text).copied().unwrap_or(text),
        }
    }
}

static ZH_INDEX: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| ZH.iter().copied().collect());

/// English → Simplified Chinese.
pub const ZH: &[(&str, &str)] = &[
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
    ("Dashboard", "仪表盘"),
    ("API keys", "API 密钥"),
    ("Usage", "用量"),
    ("Billing", "账单"),
    ("Invitations", "邀请"),
    ("Profile", "个人资料"),
    ("Skip to content", "跳到正文"),
    ("Site", "站点"),
    // ---- user-features branch (key limits, dashboard charts, access tokens): start ----
    ("Your new key", "你的新密钥"),
    ("copy it now: it will not be shown again.", "请立即复制：它不会再次显示。"),
    ("Create key", "创建密钥"),
    ("No keys yet.", "还没有密钥。"),
    ("Name", "名称"),
    ("Key", "密钥"),
    ("Status", "状态"),
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
    ("Balance", "余额"),
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
        let duplicates = ZH.len() - ZH_INDEX.len();
        assert_eq!(duplicates, 0, "the Chinese table has duplicate keys");
    }
}

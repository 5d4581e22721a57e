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
    (
        "If an account exists for that address, we sent it a link to choose a new password. The link expires in one hour.",
        "如果该地址有对应的账户，我们已向其发送设置新密码的链接。链接 1 小时内有效。",
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

//! Chinese for the admin pages: the texts they share, then one table per page.

/// The texts every admin page shares (navigation, access).
pub const ADMIN: &[(&str, &str)] = &[
    ("Operators only", "仅限运营者"),
    ("Admin", "管理后台"),
    ("Reseller", "分销"),
    ("Overview", "概览"),
    ("Channels", "渠道"),
    ("Users", "用户"),
    ("Groups", "分组"),
    ("Codes", "兑换码"),
    ("Settings", "设置"),
    ("Logs", "日志"),
    ("Audit", "审计"),
    (
        "This page is for the site's operators. Your account can use the console.",
        "此页面仅供站点运营者使用。你的账户可以使用控制台。",
    ),
    ("Not allowed", "不允许"),
    ("Only the root account can change an admin or the root account.", "只有 root 账户可以修改管理员或 root 账户。"),
];

/// The admin pages' texts in Chinese, one table per page (see `console::i18n`).
pub const ALL: &[&[(&str, &str)]] = &[
    ADMIN,
    super::overview::ZH,
    super::channels::ZH,
    super::users::ZH,
    super::groups::ZH,
    super::pricing::ZH,
    super::capabilities::ZH,
    super::codes::ZH,
    super::payments::ZH,
    super::settings::ZH,
    super::logs::ZH,
    super::audit::ZH,
];

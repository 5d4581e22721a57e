//! Chinese for the admin logs page (`src/console/admin/logs.rs`).

/// The texts in Chinese.
pub const ZH: &[(&str, &str)] = &[
    ("Every user's requests, newest first.", "所有用户的请求，最新的在前。"),
    ("User", "用户"),
    ("Any user", "任意用户"),
    ("Requests of every user show here a few seconds after they finish.", "所有用户的请求在完成几秒后显示在这里。"),
];

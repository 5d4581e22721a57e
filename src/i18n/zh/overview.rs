//! Chinese for the admin overview page (`src/console/admin/overview.rs`).

/// The texts in Chinese.
pub const ZH: &[(&str, &str)] = &[
    ("The state of the site at a glance.", "站点运行状况一览。"),
    ("Last hour", "最近一小时"),
    ("Last day", "最近一天"),
    ("Last week", "最近一周"),
    ("Tokens per second", "每秒 token 数"),
    ("Spend", "消费"),
    ("Error rate", "错误率"),
    ("p50 latency", "p50 延迟"),
    ("p95 latency", "p95 延迟"),
    ("Requests over time (UTC)", "请求数随时间变化（UTC）"),
    ("Tokens over time (UTC)", "token 数随时间变化（UTC）"),
    ("tokens", "个 token"),
    ("By model", "按模型"),
    ("By channel", "按渠道"),
    ("Channel", "渠道"),
    ("Tokens", "Token"),
    ("No requests in this period.", "此时间段内没有请求。"),
    ("Channel health", "渠道健康"),
    ("Manage channels", "管理渠道"),
    ("No channels yet: add one so users' requests can be served.", "还没有渠道：添加一个以便处理用户请求。"),
    ("Time range", "时间范围"),
    ("Refreshes every 30 seconds.", "每 30 秒刷新。"),
];

//! Chinese for the admin audit page (`src/console/admin/audit.rs`).

/// The texts in Chinese.
pub const ZH: &[(&str, &str)] = &[
    ("Audit log", "审计日志"),
    (
        "Every operator and reseller action: who, what, which target, and the changed fields.",
        "每一次运营者和分销商的操作：谁、做了什么、对象是什么，以及改动的字段。",
    ),
    ("Filter the audit log", "筛选审计日志"),
    ("Actor", "操作者"),
    ("Any actor", "任意操作者"),
    ("Action", "操作"),
    ("Any action", "任意操作"),
    ("Target", "对象"),
    ("Any target", "任意对象"),
    ("Changes", "改动"),
    ("Times are UTC. Up to 50 rows a page.", "时间为 UTC。每页最多 50 行。"),
    ("No actions match.", "没有匹配的操作。"),
    ("Changes made in the admin console or the API show here.", "在管理后台或 API 中所做的改动会显示在这里。"),
];

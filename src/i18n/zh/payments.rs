//! Chinese for the admin payments page (`src/console/admin/payments.rs`).

/// The texts in Chinese.
pub const ZH: &[(&str, &str)] = &[
    ("Payments", "支付"),
    (
        "Every top-up: what was charged, what it credits, and what became of it.",
        "每一笔充值：收取了多少、到账多少额度，以及它的结果。",
    ),
    ("Filter the payments", "筛选支付记录"),
    ("Payer's email", "付款人邮箱"),
    ("Part of an email", "邮箱的一部分"),
    ("Amount charged", "收款金额"),
    ("Balance credit", "到账额度"),
    ("Details", "详情"),
    ("Refunded amount", "已退款金额"),
    ("Not taken back", "未能收回"),
    ("Stripe session", "Stripe 会话"),
    ("Mark failed", "标记为失败"),
    (
        "Mark this payment failed? It will credit nothing, even if Stripe confirms it later.",
        "将此支付标记为失败？即使 Stripe 之后确认付款，也不会到账。",
    ),
    ("Payment marked failed.", "已将该支付标记为失败。"),
    ("No such payment", "没有此支付记录"),
    ("This payment does not exist.", "此支付记录不存在。"),
    (
        "Only a pending payment can be marked failed; this one is no longer pending.",
        "只有待支付的记录可以标记为失败；这一笔已不再是待支付状态。",
    ),
    ("No payments match.", "没有匹配的支付记录。"),
    ("Top-ups users start on the top-up page show here.", "用户在充值页面发起的充值会显示在这里。"),
    (
        "Times are UTC. Up to 50 rows a page. A payment marked failed credits nothing, even if Stripe confirms it later: refund it in Stripe.",
        "时间为 UTC。每页最多 50 行。标记为失败的支付不会到账，即使 Stripe 之后确认付款：请在 Stripe 中退款。",
    ),
];

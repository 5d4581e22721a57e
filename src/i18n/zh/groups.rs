//! Chinese for the admin groups page (`src/console/admin/groups.rs`).

/// The texts in Chinese.
pub const ZH: &[(&str, &str)] = &[
    ("Price multipliers and the models each group may use.", "各分组的价格倍率及可用模型。"),
    ("Multiplier", "倍率"),
    ("Members", "成员"),
    ("Every model", "全部模型"),
    ("New group", "新建分组"),
    ("Edit group", "编辑分组"),
    ("Group name", "分组名称"),
    ("Letters, digits, - or _.", "字母、数字、- 或 _。"),
    ("Price multiplier", "价格倍率"),
    ("1 is list price; 0.8 is 20% off.", "1 为原价；0.8 即八折。"),
    ("Allowed models", "允许的模型"),
    ("One per line. Empty: every model the group's channels serve.", "每行一个。留空：该分组渠道提供的全部模型。"),
    ("Save group", "保存分组"),
    ("Cap output by balance", "按余额限制输出"),
    ("Output capped by balance", "输出按余额限制"),
    (
        "A request without an output limit gets the largest one the member's balance can pay for, so no request costs more than the balance.",
        "未设置输出上限的请求将获得成员余额可支付的最大上限，因此任何请求的费用都不会超过余额。",
    ),
    ("Group saved.", "分组已保存。"),
    ("Group deleted.", "分组已删除。"),
    ("No such group.", "没有此分组。"),
    ("Delete this group?", "删除此分组？"),
    ("In use", "使用中"),
    ("Fallback models", "备用模型"),
    ("Fallback", "备用"),
    (
        "A line per model: when every channel of it fails, these models answer in turn, each billed at its own price. Empty: none.",
        "每行一个模型：它的所有渠道都失败时，依次由这些模型回答，各按自己的价格计费。留空：无。",
    ),
    ("Each member's limits", "每个成员的限额"),
    (
        "Every member of the group gets these, counted for each member alone; a member's own limits replace them. A budget starts again each period: calendar periods at midnight in the site's budget time zone, rolling ones from when the budget was set.",
        "分组的每个成员都获得这些限额，按成员各自计数；成员自己的限额会取代它们。预算每个周期重新开始：日历周期在站点预算时区的午夜开始，滚动周期从设置预算时起算。",
    ),
    ("Per-model limits", "按模型限额"),
    (
        "A line per model: rpm, rpd, tpm and concurrency for each member on that model, on top of the limits above. Empty: none.",
        "每行一个模型：每个成员在该模型上的 rpm、rpd、tpm 和并发，叠加在上面的限额之上。留空：无。",
    ),
];

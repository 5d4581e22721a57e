//! Chinese for the admin pricing page (`src/console/admin/pricing.rs`).

/// The texts in Chinese.
pub const ZH: &[(&str, &str)] = &[
    (
        "What each model costs, per 1M tokens or per request, and each group's own prices.",
        "各模型的价格（每 1M token 或每次请求）及各分组的专属价格。",
    ),
    ("Search models", "搜索模型"),
    ("Model prices", "模型价格"),
    (
        "Per 1M tokens; empty cached and cache-write prices use the input price. Currency:",
        "每 1M token；缓存读取与缓存写入留空时按输入价计。货币：",
    ),
    ("Input", "输入"),
    ("Output", "输出"),
    ("Cached input", "缓存输入"),
    ("Cache write", "缓存写入"),
    ("Per request", "每次请求"),
    ("No prices yet.", "还没有价格。"),
    (
        "Add one below, import One API ratios, or apply the default price list.",
        "在下方添加，导入 One API 倍率，或应用默认价格表。",
    ),
    ("Add a price", "添加价格"),
    ("Save price", "保存价格"),
    ("Group prices", "分组价格"),
    ("A group's own price replaces the model price times its multiplier.", "分组专属价格将替代“模型价格 × 分组倍率”。"),
    ("No group prices.", "没有分组价格。"),
    ("Import ratios", "导入倍率"),
    (
        "Paste One API / New API JSON with ModelRatio, CompletionRatio and GroupRatio. Ratio 1 = $0.002 per 1K tokens.",
        "粘贴含 ModelRatio、CompletionRatio 和 GroupRatio 的 One API / New API JSON。倍率 1 = 每 1K token $0.002。",
    ),
    ("Import", "导入"),
    ("Export ratios", "导出倍率"),
    ("Default price list", "默认价格表"),
    (
        "Public list prices of common OpenAI, Anthropic, Gemini, DeepSeek, Qwen and Mistral models, in USD.",
        "OpenAI、Anthropic、Gemini、DeepSeek、通义千问和 Mistral 常用模型的公开价格（美元）。",
    ),
    ("Also replace prices already set", "同时覆盖已设置的价格"),
    ("Apply defaults", "应用默认价格"),
    ("Price saved.", "价格已保存。"),
    ("Price removed.", "价格已删除。"),
    ("Group price saved.", "分组价格已保存。"),
    ("Group price removed.", "分组价格已删除。"),
    ("Ratios imported.", "倍率已导入。"),
    ("Default prices applied.", "默认价格已应用。"),
    ("Save group price", "保存分组价格"),
];

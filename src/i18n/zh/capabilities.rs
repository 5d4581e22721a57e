//! Chinese for the admin capabilities page (`src/console/admin/capabilities.rs`).

/// The texts in Chinese.
pub const ZH: &[(&str, &str)] = &[
    ("Model capabilities", "模型能力"),
    (
        "What each model can do. The gateway lowers output caps above a model's limit and refuses tools, images or audio a model is known not to take; unknown values are never used to clamp or refuse.",
        "各模型的能力。网关会把超过模型上限的输出上限降到上限，并拒绝模型明确不支持的工具、图片或音频；未知的值不用于限制或拒绝。",
    ),
    ("Context", "上下文"),
    ("Max output", "最大输出"),
    ("Tools", "工具"),
    ("Vision", "视觉"),
    ("Audio", "音频"),
    ("Reasoning", "推理"),
    ("Source", "来源"),
    ("Custom", "自定义"),
    ("Default", "默认"),
    ("Yes", "是"),
    ("No", "否"),
    ("Unknown", "未知"),
    ("Reset to default", "恢复默认"),
    ("Set a model's capabilities", "设置模型能力"),
    (
        "Any model name, including an upstream's name a channel maps to. Empty means unknown.",
        "任意模型名称，包括渠道映射到的上游名称。留空表示未知。",
    ),
    ("Save capabilities", "保存能力"),
    ("Capabilities saved.", "能力已保存。"),
    ("Capabilities reset to the default.", "能力已恢复默认。"),
];

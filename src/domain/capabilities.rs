//! What a model can do: its output cap, context window, and whether it takes tools, images,
//! audio and reasoning hints. The gateway clamps an output cap to the model's limit, refuses
//! clearly what a model cannot do, and maps reasoning hints only where they mean something.
//!
//! Every field is optional: `None` is "not known", and an unknown capability is never used to
//! clamp or refuse (the upstream decides, as it would without a gateway). Operators edit the
//! stored table (`model_capabilities`); the defaults below apply to models it has no row for.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The most output tokens one answer may have (the provider's hard limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<i64>,
    /// Prompt plus output, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<i64>,
    /// Takes a reasoning effort or thinking budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<bool>,
    /// Takes tool (function) definitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<bool>,
    /// Takes images in the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vision: Option<bool>,
    /// Takes audio in the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<bool>,
}

impl Capabilities {
    /// Nothing known.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `requested` output tokens, lowered to the model's limit when it is known and lower.
    pub fn clamp_output(&self, requested: i64) -> i64 {
        match self.max_output_tokens {
            Some(limit) if limit > 0 && requested > limit => limit,
            _ => requested,
        }
    }

    /// Known not to take tools (unknown is not a refusal).
    pub fn refuses_tools(&self) -> bool {
        self.tools == Some(false)
    }

    pub fn refuses_images(&self) -> bool {
        self.vision == Some(false)
    }

    pub fn refuses_audio(&self) -> bool {
        self.audio == Some(false)
    }

    /// Known to take reasoning hints (unknown models get none: they may refuse the field).
    pub fn takes_reasoning(&self) -> bool {
        self.reasoning == Some(true)
    }
}

const fn caps(max_output: i64, context: i64, reasoning: bool, tools: bool, vision: bool, audio: bool) -> Capabilities {
    Capabilities {
        max_output_tokens: if max_output > 0 { Some(max_output) } else { None },
        context_window: if context > 0 { Some(context) } else { None },
        reasoning: Some(reasoning),
        tools: Some(tools),
        vision: Some(vision),
        audio: Some(audio),
    }
}

/// The shipped defaults for the models of the default price list (`services::pricing::defaults`),
/// from each provider's model pages as of late 2025: `(model, capabilities)`. An output of 0
/// means no limit is published.
pub const DEFAULT_CAPABILITIES: &[(&str, Capabilities)] = &[
    // OpenAI
    ("gpt-5", caps(128_000, 400_000, true, true, true, false)),
    ("gpt-5-mini", caps(128_000, 400_000, true, true, true, false)),
    ("gpt-5-nano", caps(128_000, 400_000, true, true, true, false)),
    ("gpt-4.1", caps(32_768, 1_047_576, false, true, true, false)),
    ("gpt-4.1-mini", caps(32_768, 1_047_576, false, true, true, false)),
    ("gpt-4.1-nano", caps(32_768, 1_047_576, false, true, true, false)),
    ("gpt-4o", caps(16_384, 128_000, false, true, true, false)),
    ("gpt-4o-mini", caps(16_384, 128_000, false, true, true, false)),
    ("o3", caps(100_000, 200_000, true, true, true, false)),
    ("o3-mini", caps(100_000, 200_000, true, true, false, false)),
    ("o4-mini", caps(100_000, 200_000, true, true, true, false)),
    ("text-embedding-3-small", caps(0, 8_191, false, false, false, false)),
    ("text-embedding-3-large", caps(0, 8_191, false, false, false, false)),
    // Anthropic
    ("claude-opus-4-1", caps(32_000, 200_000, true, true, true, false)),
    ("claude-opus-4-20250514", caps(32_000, 200_000, true, true, true, false)),
    ("claude-sonnet-4-5", caps(64_000, 200_000, true, true, true, false)),
    ("claude-sonnet-4-20250514", caps(64_000, 200_000, true, true, true, false)),
    ("claude-3-7-sonnet-20250219", caps(64_000, 200_000, true, true, true, false)),
    ("claude-haiku-4-5", caps(64_000, 200_000, true, true, true, false)),
    ("claude-3-5-haiku-20241022", caps(8_192, 200_000, false, true, true, false)),
    // Google Gemini
    ("gemini-2.5-pro", caps(65_536, 1_048_576, true, true, true, true)),
    ("gemini-2.5-flash", caps(65_536, 1_048_576, true, true, true, true)),
    ("gemini-2.5-flash-lite", caps(65_536, 1_048_576, true, true, true, true)),
    ("gemini-2.0-flash", caps(8_192, 1_048_576, false, true, true, true)),
    ("text-embedding-004", caps(0, 2_048, false, false, false, false)),
    // DeepSeek
    ("deepseek-chat", caps(8_192, 128_000, false, true, false, false)),
    ("deepseek-reasoner", caps(64_000, 128_000, true, true, false, false)),
    // Qwen (thinking is switched by its own field, not a reasoning effort)
    ("qwen-max", caps(8_192, 32_768, false, true, false, false)),
    ("qwen-plus", caps(8_192, 131_072, false, true, false, false)),
    ("qwen-turbo", caps(8_192, 1_000_000, false, true, false, false)),
    // Mistral
    ("mistral-large-latest", caps(0, 128_000, false, true, false, false)),
    ("mistral-medium-latest", caps(0, 128_000, false, true, true, false)),
    ("mistral-small-latest", caps(0, 128_000, false, true, true, false)),
    ("codestral-latest", caps(0, 256_000, false, true, false, false)),
];

/// The shipped default for `model`: its exact name, or the name without a date suffix
/// (`gpt-4o-2024-08-06` → `gpt-4o`, `claude-haiku-4-5-20251001` → `claude-haiku-4-5`).
pub fn default_for(model: &str) -> Option<Capabilities> {
    let exact = |name: &str| DEFAULT_CAPABILITIES.iter().find(|(m, _)| *m == name).map(|(_, c)| *c);
    exact(model).or_else(|| exact(without_date(model)?))
}

/// `model` without a trailing `-YYYY-MM-DD` or `-YYYYMMDD`.
fn without_date(model: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((head, tail)) = model.rsplit_once('-')
        && tail.len() == 8
        && digits(tail)
    {
        return Some(head);
    }
    let mut parts = model.rsplitn(4, '-');
    let (day, month, year, head) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (year.len() == 4 && month.len() == 2 && day.len() == 2 && digits(year) && digits(month) && digits(day))
        .then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_snapshots_take_their_family_default() {
        assert_eq!(default_for("gpt-4o-2024-08-06").and_then(|c| c.max_output_tokens), Some(16_384));
        assert_eq!(default_for("claude-haiku-4-5-20251001").and_then(|c| c.max_output_tokens), Some(64_000));
        assert_eq!(default_for("deepseek-chat").and_then(|c| c.max_output_tokens), Some(8_192));
        assert_eq!(default_for("my-own-model"), None);
        assert_eq!(default_for("gpt-4o-20240806x"), None);
    }

    #[test]
    fn unknown_limits_never_clamp_or_refuse() {
        let unknown = Capabilities::default();
        assert_eq!(unknown.clamp_output(1_000_000), 1_000_000);
        assert!(!unknown.refuses_tools() && !unknown.refuses_images() && !unknown.takes_reasoning());
        let known = default_for("gpt-4o").unwrap();
        assert_eq!((known.clamp_output(32_000), known.clamp_output(100)), (16_384, 100));
    }
}

//! A ready price list for the common models of the supported providers, in US dollars per 1M
//! tokens (input, output, cached input, cache write). Source: each provider's public pricing
//! page (openai.com/api/pricing, anthropic.com/pricing, ai.google.dev/pricing,
//! api-docs.deepseek.com/quick_start/pricing, alibabacloud.com Model Studio (international),
//! mistral.ai/pricing), standard tier, short-context rates, as of late 2025. Operators should
//! check them against their own contracts; applying them never overwrites a price unless asked.

/// `(model, input, output, cached input, cache write)`, decimal USD per 1M tokens.
pub type DefaultPrice = (&'static str, &'static str, &'static str, Option<&'static str>, Option<&'static str>);

pub const DEFAULT_PRICES: &[DefaultPrice] = &[
    // OpenAI
    ("gpt-5", "1.25", "10", Some("0.125"), None),
    ("gpt-5-mini", "0.25", "2", Some("0.025"), None),
    ("gpt-5-nano", "0.05", "0.40", Some("0.005"), None),
    ("gpt-4.1", "2", "8", Some("0.50"), None),
    ("gpt-4.1-mini", "0.40", "1.60", Some("0.10"), None),
    ("gpt-4.1-nano", "0.10", "0.40", Some("0.025"), None),
    ("gpt-4o", "2.50", "10", Some("1.25"), None),
    ("gpt-4o-mini", "0.15", "0.60", Some("0.075"), None),
    ("o3", "2", "8", Some("0.50"), None),
    ("o3-mini", "1.10", "4.40", Some("0.55"), None),
    ("o4-mini", "1.10", "4.40", Some("0.275"), None),
    ("text-embedding-3-small", "0.02", "0", None, None),
    ("text-embedding-3-large", "0.13", "0", None, None),
    // Anthropic (cache write: 5-minute cache)
    ("claude-opus-4-1", "15", "75", Some("1.50"), Some("18.75")),
    ("claude-opus-4-20250514", "15", "75", Some("1.50"), Some("18.75")),
    ("claude-sonnet-4-5", "3", "15", Some("0.30"), Some("3.75")),
    ("claude-sonnet-4-20250514", "3", "15", Some("0.30"), Some("3.75")),
    ("claude-3-7-sonnet-20250219", "3", "15", Some("0.30"), Some("3.75")),
    ("claude-haiku-4-5", "1", "5", Some("0.10"), Some("1.25")),
    ("claude-3-5-haiku-20241022", "0.80", "4", Some("0.08"), Some("1")),
    // Google Gemini (prompts up to 200k tokens)
    ("gemini-2.5-pro", "1.25", "10", None, None),
    ("gemini-2.5-flash", "0.30", "2.50", None, None),
    ("gemini-2.5-flash-lite", "0.10", "0.40", None, None),
    ("gemini-2.0-flash", "0.10", "0.40", Some("0.025"), None),
    ("text-embedding-004", "0", "0", None, None),
    // DeepSeek
    ("deepseek-chat", "0.28", "0.42", Some("0.028"), None),
    ("deepseek-reasoner", "0.28", "0.42", Some("0.028"), None),
    // Qwen (Alibaba Cloud Model Studio, international)
    ("qwen-max", "1.60", "6.40", None, None),
    ("qwen-plus", "0.40", "1.20", None, None),
    ("qwen-turbo", "0.05", "0.20", None, None),
    // Mistral
    ("mistral-large-latest", "2", "6", None, None),
    ("mistral-medium-latest", "0.40", "2", None, None),
    ("mistral-small-latest", "0.10", "0.30", None, None),
    ("codestral-latest", "0.30", "0.90", None, None),
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_default_price_has_capabilities() {
        for (model, ..) in super::DEFAULT_PRICES {
            assert!(crate::domain::capabilities::default_for(model).is_some(), "{model} has no default capabilities");
        }
    }
}

//! OpenAI-compatible vendors as data. Adding a vendor is adding a row.

/// How the upstream wants its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
}

/// Whether a streamed answer carries usage, and how to get it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamUsage {
    /// Only when asked with `stream_options: {"include_usage": true}` (OpenAI's behaviour).
    OnRequest,
    /// Always sent in the last chunk; the vendor rejects or ignores `stream_options`.
    Always,
}

#[derive(Debug)]
pub struct VendorPreset {
    /// The channel `type` string.
    pub name: &'static str,
    /// Human name for the console.
    pub label: &'static str,
    /// Base URL including the version segment, used when a channel gives none.
    pub default_base_url: Option<&'static str>,
    pub auth: Auth,
    pub stream_usage: StreamUsage,
    /// The protocol spoken: OpenAI's for the vendors, another for the adapters' channel types.
    pub protocol: Protocol,
    /// Serves OpenAI's Responses API (`/v1/responses`, which Codex speaks). A vendor without it
    /// answers 404; the gateway refuses such a request clearly instead of passing it through.
    pub responses: bool,
}

const fn preset(
    name: &'static str,
    label: &'static str,
    base: Option<&'static str>,
    stream_usage: StreamUsage,
) -> VendorPreset {
    VendorPreset {
        name,
        label,
        default_base_url: base,
        auth: Auth::Bearer,
        stream_usage,
        protocol: Protocol::OpenAi,
        responses: true,
    }
}

/// A vendor whose API has no `/v1/responses`.
const fn without_responses(preset: VendorPreset) -> VendorPreset {
    VendorPreset { responses: false, ..preset }
}

use super::Protocol;
use StreamUsage::{Always, OnRequest};

pub static PRESETS: &[VendorPreset] = &[
    preset("openai", "OpenAI", Some("https://api.openai.com/v1"), OnRequest),
    preset("openai-compatible", "Any OpenAI-compatible API", None, OnRequest),
    without_responses(preset("deepseek", "DeepSeek", Some("https://api.deepseek.com/v1"), OnRequest)),
    without_responses(preset(
        "qwen",
        "Qwen (DashScope compatible mode)",
        Some("https://dashscope.aliyuncs.com/compatible-mode/v1"),
        OnRequest,
    )),
    without_responses(preset("moonshot", "Moonshot (Kimi)", Some("https://api.moonshot.cn/v1"), OnRequest)),
    without_responses(preset("zhipu", "Zhipu GLM", Some("https://open.bigmodel.cn/api/paas/v4"), Always)),
    without_responses(preset("mistral", "Mistral", Some("https://api.mistral.ai/v1"), Always)),
    preset("groq", "Groq", Some("https://api.groq.com/openai/v1"), OnRequest),
    preset("xai", "xAI (Grok)", Some("https://api.x.ai/v1"), OnRequest),
    preset("openrouter", "OpenRouter", Some("https://openrouter.ai/api/v1"), OnRequest),
    without_responses(preset("together", "Together AI", Some("https://api.together.xyz/v1"), OnRequest)),
    without_responses(preset("siliconflow", "SiliconFlow", Some("https://api.siliconflow.cn/v1"), OnRequest)),
    preset("ollama", "Ollama", Some("http://127.0.0.1:11434/v1"), OnRequest),
    preset("vllm", "vLLM", Some("http://127.0.0.1:8000/v1"), OnRequest),
    // Protocol adapters (src/providers/<protocol>.rs). Their base URLs have no version segment.
    VendorPreset {
        name: "anthropic",
        label: "Anthropic (Claude)",
        default_base_url: Some("https://api.anthropic.com"),
        auth: Auth::Bearer,
        stream_usage: Always,
        protocol: Protocol::Anthropic,
        responses: false,
    },
    VendorPreset {
        name: "gemini",
        label: "Google Gemini (AI Studio)",
        default_base_url: Some("https://generativelanguage.googleapis.com"),
        auth: Auth::Bearer,
        stream_usage: Always,
        protocol: Protocol::Gemini,
        responses: false,
    },
    VendorPreset {
        name: "azure",
        label: "Azure OpenAI",
        // Each resource has its own: https://{resource}.openai.azure.com
        default_base_url: None,
        auth: Auth::Bearer,
        stream_usage: OnRequest,
        protocol: Protocol::Azure,
        responses: true,
    },
    VendorPreset {
        name: "bedrock",
        label: "AWS Bedrock",
        // https://bedrock-runtime.{config.region}.amazonaws.com
        default_base_url: None,
        auth: Auth::Bearer,
        stream_usage: Always,
        protocol: Protocol::Bedrock,
        responses: false,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_urls_versioned() {
        let mut names: Vec<_> = PRESETS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PRESETS.len());
        for p in PRESETS {
            if let Some(url) = p.default_base_url {
                assert!(url.starts_with("http") && !url.ends_with('/'), "{}", p.name);
            }
        }
    }
}

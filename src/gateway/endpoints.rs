//! The OpenAI endpoints the gateway relays, and what each means for streaming and billing.

use crate::domain::pricing::Usage;
use crate::providers::openai::RequestPeek;

/// The output assumed for a reasoning model's request that sets no cap.
pub const REASONING_DEFAULT_MAX_TOKENS: i64 = 32_768;

/// Models that reason before answering, by name: OpenAI's o-series and GPT-5, DeepSeek's
/// reasoner and R1, Qwen's QwQ, and any `…thinking…` variant.
pub(crate) fn is_reasoning_model(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| name.starts_with(p))
        || ["reasoner", "thinking", "deepseek-r1", "qwq"].iter().any(|p| name.contains(p))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Moderations,
    ImagesGenerations,
    ImagesEdits,
    AudioSpeech,
    AudioTranscriptions,
    AudioTranslations,
    Responses,
    /// Anthropic's Messages API, in front of any channel.
    Messages,
    /// Gemini's own `generateContent` / `streamGenerateContent`, to Gemini channels.
    GeminiGenerate,
}

impl Endpoint {
    /// The client-facing path.
    pub fn path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Completions => "/v1/completions",
            Self::Embeddings => "/v1/embeddings",
            Self::Moderations => "/v1/moderations",
            Self::ImagesGenerations => "/v1/images/generations",
            Self::ImagesEdits => "/v1/images/edits",
            Self::AudioSpeech => "/v1/audio/speech",
            Self::AudioTranscriptions => "/v1/audio/transcriptions",
            Self::AudioTranslations => "/v1/audio/translations",
            Self::Responses => "/v1/responses",
            Self::Messages => "/v1/messages",
            Self::GeminiGenerate => "/v1beta/models/{model}:generateContent",
        }
    }

    /// The path appended to a channel's base URL (which already ends in its version, `/v1`).
    pub fn path_after_version(self) -> &'static str {
        self.path().trim_start_matches("/v1")
    }

    /// Non-stream answers are JSON (speech answers with audio bytes, transcriptions with
    /// whatever `response_format` asked for).
    pub fn answers_json(self) -> bool {
        !matches!(self, Self::AudioSpeech | Self::AudioTranscriptions | Self::AudioTranslations)
    }

    /// The request body is `multipart/form-data` (uploads), not JSON.
    pub fn multipart(self) -> bool {
        matches!(self, Self::ImagesEdits | Self::AudioTranscriptions | Self::AudioTranslations)
    }

    pub fn streams(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions | Self::Completions | Self::Responses | Self::Messages | Self::GeminiGenerate
        )
    }

    /// Endpoints whose streams report usage only when asked (`stream_options.include_usage`).
    pub fn injects_stream_usage(self) -> bool {
        matches!(self, Self::ChatCompletions | Self::Completions)
    }

    /// The output a request without a cap is assumed to write: reasoning models think at length
    /// before they answer, so they get at least [`REASONING_DEFAULT_MAX_TOKENS`].
    pub fn default_max_tokens(model: &str, peek: &RequestPeek<'_>, configured: i64) -> i64 {
        if peek.wants_reasoning() || is_reasoning_model(model) {
            configured.max(REASONING_DEFAULT_MAX_TOKENS)
        } else {
            configured
        }
    }

    /// The usage assumed for the hold, before the upstream answers.
    pub fn estimate(self, peek: &RequestPeek<'_>, prompt_tokens: i64, default_max_tokens: i64) -> Usage {
        let base = Usage { prompt_tokens, ..Usage::default() };
        match self {
            Self::ChatCompletions | Self::Completions | Self::Responses | Self::Messages | Self::GeminiGenerate => {
                let n = peek.choices().unwrap_or(1).clamp(1, 128);
                Usage { completion_tokens: peek.max_output().unwrap_or(default_max_tokens).saturating_mul(n), ..base }
            }
            Self::Embeddings | Self::Moderations => base,
            Self::ImagesGenerations | Self::ImagesEdits => {
                Usage { requests: peek.n.unwrap_or(1).clamp(1, 128), ..base }
            }
            // The upload's size says little about tokens: reserve the per-request price and a
            // default answer's worth of tokens.
            Self::AudioTranscriptions | Self::AudioTranslations => {
                Usage { completion_tokens: default_max_tokens, ..Usage::default() }
            }
            Self::AudioSpeech => {
                Usage { prompt_tokens: peek.input_chars().unwrap_or(prompt_tokens), ..Usage::default() }
            }
        }
    }

    /// Adjusts upstream-reported usage to what this endpoint bills: speech bills input characters
    /// as prompt tokens (priced per 1M characters); images bill per image.
    pub fn billable(self, usage: Usage, peek: &RequestPeek<'_>) -> Usage {
        match self {
            Self::AudioSpeech => Usage { prompt_tokens: peek.input_chars().unwrap_or(0), ..Usage::default() },
            Self::ImagesGenerations | Self::ImagesEdits => {
                Usage { requests: peek.n.unwrap_or(1).clamp(1, 128), ..usage }
            }
            _ => usage,
        }
    }
}

//! Token estimates with a real BPE, for holds (the prompt) and for billing what an upstream did
//! not report (the text it delivered). Every estimate counts with OpenAI's `o200k_base`, loaded on
//! first use (idle processes never pay its ~30 MB), then applies the model family's rule
//! ([`TokenRule::for_model`]); docs/gateway.md lists the rules. Pure: no I/O.

use tiktoken_rs::CoreBPE;

/// Text longer than this is counted exactly up to here and extrapolated beyond, at the ratio the
/// counted part showed (rounding up), so one huge prompt cannot hold a worker for long.
const EXACT_BYTES: usize = 256 * 1024;

/// A [`Tally`] tokenizes its text in pieces of about this size: per-piece counting sums to
/// nearly what counting the whole would, at a fraction of the per-call overhead of tiny deltas.
const TALLY_PIECE: usize = 512;

fn bpe() -> &'static CoreBPE {
    tiktoken_rs::o200k_base_singleton()
}

/// `o200k_base` tokens in `text` (exact up to [`EXACT_BYTES`], extrapolated past it).
pub fn count(text: &str) -> i64 {
    if text.is_empty() {
        return 0;
    }
    let exact_end = floor_char_boundary(text, EXACT_BYTES);
    let exact = to_i64(bpe().count_ordinary(&text[..exact_end]));
    if exact_end == text.len() {
        return exact;
    }
    let rest = to_i64(text.len() - exact_end);
    let counted = to_i64(exact_end).max(1);
    exact.saturating_add(rest.saturating_mul(exact).saturating_add(counted - 1) / counted)
}

/// How one model family's tokens relate to `o200k_base` counts: `tokens = ceil(o200k × num / den)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenRule {
    num: i64,
    den: i64,
}

impl TokenRule {
    /// OpenAI's current models tokenize with `o200k_base` itself.
    pub const EXACT: TokenRule = TokenRule { num: 1, den: 1 };
    /// Anthropic's tokenizer yields about a fifth more tokens than `o200k_base` on English text and
    /// code; estimating high bills a cut stream fairly and keeps holds on the safe side.
    pub const CLAUDE: TokenRule = TokenRule { num: 6, den: 5 };

    /// The rule for a model name (as the client asked for it or as the upstream serves it).
    /// Claude models use [`Self::CLAUDE`]; every other family (OpenAI, Gemini, DeepSeek, Qwen,
    /// Llama, Mistral, …) is counted as `o200k_base`, which is within a few percent of their own
    /// large-vocabulary BPEs on English and errs high on Chinese text.
    pub fn for_model(model: &str) -> TokenRule {
        let model = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
        // Bedrock ids carry a vendor prefix: `anthropic.claude-…`, `us.anthropic.claude-…`.
        if model.starts_with("claude") || model.contains("anthropic.claude") { Self::CLAUDE } else { Self::EXACT }
    }

    /// Applies the rule to an `o200k_base` count, rounding up.
    pub fn apply(self, o200k_tokens: i64) -> i64 {
        let scaled = o200k_tokens.saturating_mul(self.num);
        scaled / self.den + i64::from(scaled % self.den != 0)
    }
}

/// Counts text that arrives in pieces (a stream's deltas) without keeping it: the pending tail
/// is tokenized once it reaches [`TALLY_PIECE`] bytes, at a character boundary after whitespace
/// where there is one, so words are rarely split between pieces.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    tokens: i64,
    pending: String,
}

impl Tally {
    pub fn add(&mut self, text: &str) {
        self.pending.push_str(text);
        if self.pending.len() < TALLY_PIECE {
            return;
        }
        let cut = self.pending.rfind(char::is_whitespace).filter(|&at| at > 0).unwrap_or(self.pending.len());
        self.tokens = self.tokens.saturating_add(count(&self.pending[..cut]));
        self.pending.drain(..cut);
    }

    /// `o200k_base` tokens of everything added so far.
    pub fn tokens(&self) -> i64 {
        self.tokens.saturating_add(count(&self.pending))
    }

    /// Nothing was added.
    pub fn is_empty(&self) -> bool {
        self.tokens == 0 && self.pending.is_empty()
    }
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_openai() {
        // Reference counts from OpenAI's tiktoken (o200k_base).
        assert_eq!(count(""), 0);
        assert_eq!(count("Hello, world!"), 4);
        assert_eq!(count("hello world"), 2);
        // Never more tokens than characters, never none for text.
        let chinese = "你好，世界。今天天气很好。";
        let n = count(chinese);
        assert!(n > 0 && n <= i64::try_from(chinese.chars().count()).unwrap(), "{n}");
    }

    #[test]
    fn rules_by_family() {
        assert_eq!(TokenRule::for_model("gpt-4o-mini"), TokenRule::EXACT);
        assert_eq!(TokenRule::for_model("claude-sonnet-4-5"), TokenRule::CLAUDE);
        assert_eq!(TokenRule::for_model("us.anthropic.claude-3-5-haiku-20241022-v1:0"), TokenRule::CLAUDE);
        assert_eq!(TokenRule::for_model("anthropic/claude-3.7-sonnet"), TokenRule::CLAUDE);
        assert_eq!(TokenRule::for_model("gemini-2.5-pro"), TokenRule::EXACT);
        assert_eq!(TokenRule::CLAUDE.apply(10), 12);
        assert_eq!(TokenRule::CLAUDE.apply(11), 14);
        assert_eq!(TokenRule::EXACT.apply(7), 7);
        assert_eq!(TokenRule::CLAUDE.apply(i64::MAX), i64::MAX / 5 + 1);
    }

    #[test]
    fn a_tally_sums_close_to_the_whole() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(200);
        let mut tally = Tally::default();
        assert!(tally.is_empty());
        for piece in text.split_inclusive(' ') {
            tally.add(piece);
        }
        let whole = count(&text);
        let pieces = tally.tokens();
        assert!(pieces >= whole && pieces <= whole + whole / 50, "{pieces} vs {whole}");
        assert!(tally.pending.len() < TALLY_PIECE * 2);
    }

    #[test]
    fn huge_text_is_extrapolated_not_undercounted() {
        let text = "token ".repeat(EXACT_BYTES / 3);
        let exact = i64::try_from(bpe().count_ordinary(&text)).unwrap();
        let estimate = count(&text);
        assert!(estimate >= exact && estimate <= exact + exact / 100 + 1, "{estimate} vs {exact}");
        // A multi-byte character straddling the exact limit is not split.
        let straddle = format!("{}{}", "a".repeat(EXACT_BYTES - 1), "é".repeat(10));
        assert!(count(&straddle) > 0);
    }

    #[test]
    #[ignore = "measurement: cargo test --release --lib tokenizer::tests::speed -- --ignored --nocapture"]
    fn speed() {
        let started = std::time::Instant::now();
        let _ = count("warm up");
        println!("load: {:?}", started.elapsed());
        let text = "The quick brown fox jumps over the lazy dog, 1234. ".repeat(20_000);
        let started = std::time::Instant::now();
        let n = count(&text[..EXACT_BYTES]);
        println!("{} KiB -> {n} tokens in {:?}", EXACT_BYTES / 1024, started.elapsed());
        let started = std::time::Instant::now();
        let mut tally = Tally::default();
        for piece in text.split_inclusive(' ').take(10_000) {
            tally.add(piece);
        }
        println!("10000 deltas -> {} tokens in {:?}", tally.tokens(), started.elapsed());
    }
}

//! Pricing: what a request costs, in nano-units of the site currency, from token usage.
//!
//! Prices are nano-units per 1M tokens (or per request). A group multiplier (parts per million)
//! applies on top unless the group has its own price for the model. All arithmetic is integer
//! (i128 inside), and a fraction of a nano-unit is rounded up, so a request is never under-billed.

/// A model's price. `None` parts are "not priced this way".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Price {
    pub input_per_mtok: Option<i64>,
    pub output_per_mtok: Option<i64>,
    /// Price of prompt tokens read from the provider's cache; defaults to the input price.
    pub cached_input_per_mtok: Option<i64>,
    /// Price of prompt tokens written to the provider's cache; defaults to the input price.
    pub cache_write_per_mtok: Option<i64>,
    /// A flat price per request, added to any token price.
    pub per_request: Option<i64>,
}

/// Token usage of one request, normalised: `prompt_tokens` counts every prompt token, including
/// the `cached_tokens` read from and the `cache_write_tokens` written to the provider's cache;
/// `completion_tokens` includes `reasoning_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    /// Billable units for per-request prices (images: `n`); 0 counts as 1.
    pub requests: i64,
}

/// One million: prices are per 1M tokens; multipliers are parts per million.
pub const MILLION: i64 = 1_000_000;

impl Price {
    /// A price with at least one part set.
    pub fn is_set(&self) -> bool {
        self.input_per_mtok.is_some() || self.output_per_mtok.is_some() || self.per_request.is_some()
    }

    /// The cost of `usage` at this price, times `multiplier_ppm`, rounded up to a nano-unit.
    pub fn cost(&self, usage: &Usage, multiplier_ppm: i64) -> i64 {
        let input = i128::from(self.input_per_mtok.unwrap_or(0));
        let output = i128::from(self.output_per_mtok.unwrap_or(0));
        let cached_price = self.cached_input_per_mtok.map_or(input, i128::from);
        let write_price = self.cache_write_per_mtok.map_or(input, i128::from);
        let cached = i128::from(usage.cached_tokens.max(0));
        let written = i128::from(usage.cache_write_tokens.max(0));
        let plain_prompt = (i128::from(usage.prompt_tokens.max(0)) - cached - written).max(0);
        let completion = i128::from(usage.completion_tokens.max(0));

        // Σ tokens × price-per-1M, then × multiplier-per-1M: divide once, by 10^12, rounding up.
        let token_part = plain_prompt * input + cached * cached_price + written * write_price + completion * output;
        let units = i128::from(usage.requests.max(1));
        let request_part = i128::from(self.per_request.unwrap_or(0)) * units * i128::from(MILLION);
        let scaled = (token_part + request_part) * i128::from(multiplier_ppm.max(0));
        let divisor = i128::from(MILLION) * i128::from(MILLION);
        let cost = (scaled + divisor - 1) / divisor;
        i64::try_from(cost).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOLLAR: i64 = 1_000_000_000;

    fn gpt4o() -> Price {
        Price {
            input_per_mtok: Some(2 * DOLLAR + DOLLAR / 2),
            output_per_mtok: Some(10 * DOLLAR),
            cached_input_per_mtok: Some(DOLLAR + DOLLAR / 4),
            ..Price::default()
        }
    }

    #[test]
    fn token_prices_are_exact() {
        let usage = Usage { prompt_tokens: 1000, completion_tokens: 500, ..Usage::default() };
        // 1000 × $2.50/1M + 500 × $10/1M = $0.0025 + $0.005 = $0.0075
        assert_eq!(gpt4o().cost(&usage, MILLION), 7_500_000);
        // Group at 0.8x.
        assert_eq!(gpt4o().cost(&usage, 800_000), 6_000_000);
    }

    #[test]
    fn cached_and_cache_write_tokens_use_their_prices() {
        let usage = Usage { prompt_tokens: 1000, cached_tokens: 400, completion_tokens: 0, ..Usage::default() };
        // 600 × 2.5 + 400 × 1.25 = 1500 + 500 = 2000 ($ per 1M) → $0.002
        assert_eq!(gpt4o().cost(&usage, MILLION), 2_000_000);
        let claude = Price {
            input_per_mtok: Some(3 * DOLLAR),
            cache_write_per_mtok: Some(3 * DOLLAR + 3 * DOLLAR / 4),
            ..Price::default()
        };
        let usage = Usage { prompt_tokens: 100, cache_write_tokens: 100, ..Usage::default() };
        assert_eq!(claude.cost(&usage, MILLION), 375_000);
    }

    #[test]
    fn fractions_round_up_and_per_request_adds() {
        let cheap = Price { input_per_mtok: Some(1), ..Price::default() };
        assert_eq!(cheap.cost(&Usage { prompt_tokens: 1, ..Usage::default() }, MILLION), 1);
        assert_eq!(cheap.cost(&Usage::default(), MILLION), 0);
        let image = Price { per_request: Some(40_000_000), ..Price::default() };
        assert_eq!(image.cost(&Usage::default(), 1_500_000), 60_000_000);
        assert_eq!(image.cost(&Usage { requests: 3, ..Usage::default() }, MILLION), 120_000_000);
    }

    #[test]
    fn hostile_usage_cannot_overflow_or_go_negative() {
        let usage =
            Usage { prompt_tokens: i64::MAX, completion_tokens: i64::MAX, cached_tokens: -5, ..Usage::default() };
        assert_eq!(gpt4o().cost(&usage, MILLION), i64::MAX);
        let usage = Usage { prompt_tokens: -10, completion_tokens: -10, ..Usage::default() };
        assert_eq!(gpt4o().cost(&usage, MILLION), 0);
    }
}

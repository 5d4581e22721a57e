//! Token estimation before the upstream reports usage: the prompt counted locally (a real BPE,
//! the model family's rule), the hold's usage (the output a request may produce, lowered to what
//! the route's models can answer), an answer's output and embedded texts counted when the
//! upstream reports none,
//! and `billing.cap_output_by_balance`'s output cap.

use bytes::Bytes;

use super::auth::Grant;
use super::endpoints::Endpoint;
use super::error::{GatewayError, quota_error};
use crate::billing::BillingError;
use crate::domain::pricing::{Price, Usage};
use crate::domain::tokenizer::TokenRule;
use crate::providers::openai::{self, RequestPeek};
use crate::services::routing::{Route, RoutingTable};
use crate::state::AppState;

/// The prompt's tokens as the request is held and billed without upstream usage.
#[derive(Clone, Copy)]
pub(super) struct Prompt {
    /// How the requested model's family counts tokens.
    pub(super) rule: TokenRule,
    /// The tokens of the text the request carries.
    pub(super) estimate: i64,
    /// What the hold assumes: at least a token per four bytes of the whole body, which covers
    /// what the text count cannot see (tool schemas, images, JSON structure).
    pub(super) hold: i64,
}

impl Prompt {
    pub(super) fn of(model: &str, body: &[u8]) -> Self {
        let rule = TokenRule::for_model(model);
        let estimate = rule.apply(openai::text_tokens(body)).max(1);
        Self { rule, estimate, hold: estimate.max(bytes_floor(body.len())) }
    }
}

/// The usage the hold assumes. An output cap above what the model can answer is lowered on the
/// way (`attempts`): the hold covers what any channel of the route can answer, not what was asked.
pub(super) fn hold_usage(
    endpoint: Endpoint,
    peek: &RequestPeek<'_>,
    prompt: Prompt,
    default_max: i64,
    (route, table, model): (&Route, &RoutingTable, &str),
) -> Usage {
    let mut estimate = endpoint.estimate(peek, prompt.hold, default_max);
    if let Some(limit) = route.output_limit(table, model) {
        let n = peek.choices().unwrap_or(1).clamp(1, 128);
        estimate.completion_tokens = estimate.completion_tokens.min(limit.saturating_mul(n));
    }
    estimate
}

/// The tokens of texts to embed, for a provider that reports none.
pub(super) fn texts(rule: TokenRule, texts: &[String]) -> i64 {
    let tokens = texts.iter().map(|t| crate::domain::tokenizer::count(t)).fold(0, i64::saturating_add);
    rule.apply(tokens).max(1)
}

/// The output tokens of an answer whose upstream reported no usage (counted from its text).
pub(super) fn completion(rule: TokenRule, body: &[u8]) -> i64 {
    rule.apply(openai::text_tokens(body))
}

/// The output cap `billing.cap_output_by_balance` sets on a request of a group that has it on,
/// when the request sets none (per answer, for `n` answers) and the user's spendable balance
/// cannot pay the usual default: the most output tokens that balance pays for on top of the
/// prompt's hold. `None`: nothing to set (the setting is off, the request has its own cap, or
/// the balance pays the usual hold). Refused with `insufficient_quota` when not even one output
/// token can be paid.
#[allow(clippy::too_many_arguments)]
pub(super) async fn output_cap(
    state: &AppState,
    grant: &Grant,
    table: &RoutingTable,
    endpoint: Endpoint,
    peek: &RequestPeek<'_>,
    (price, multiplier): (&Price, i64),
    hold_prompt: i64,
    default_max: i64,
) -> Result<Option<i64>, GatewayError> {
    let caps = matches!(
        endpoint,
        Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Responses | Endpoint::GeminiGenerate
    );
    if !caps || peek.max_output().is_some() || !price.is_set() || !table.caps_output_by_balance(&grant.group) {
        return Ok(None);
    }
    let spendable = state.billing().spendable(grant.user_id).await.map_err(quota_error)?;
    let choices = peek.choices().unwrap_or(1).clamp(1, 128);
    let cost = |n: i64| {
        let usage =
            Usage { prompt_tokens: hold_prompt, completion_tokens: n.saturating_mul(choices), ..Usage::default() };
        price.cost(&usage, multiplier)
    };
    match affordable_output(cost, spendable, default_max) {
        None => Ok(None),
        Some(0) => Err(quota_error(BillingError::InsufficientBalance)),
        Some(cap) => Ok(Some(cap)),
    }
}

/// The most output tokens `spendable` pays for at `cost(tokens)` (which grows with the tokens),
/// below `default_max`: `None` when `default_max` itself is affordable, `Some(0)` when not one
/// token is.
fn affordable_output(cost: impl Fn(i64) -> i64, spendable: i64, default_max: i64) -> Option<i64> {
    if cost(default_max) <= spendable {
        return None;
    }
    // Binary search: `cost(affordable) <= spendable` (or `affordable` is 0), `cost(beyond) > spendable`.
    let (mut affordable, mut beyond) = (0i64, default_max);
    while beyond - affordable > 1 {
        let mid = affordable + (beyond - affordable) / 2;
        if cost(mid) <= spendable { affordable = mid } else { beyond = mid }
    }
    Some(if cost(affordable) <= spendable { affordable } else { 0 })
}

/// The request's JSON body with an output cap of `cap` tokens in the field its protocol reads
/// (`max_completion_tokens` for reasoning models on chat, whose upstreams refuse `max_tokens`).
/// A top-level field is written in front of the others, the rest of the bytes kept as they came;
/// a body that already names a cap field (as `null`) and Gemini's nested
/// `generationConfig.maxOutputTokens` go through a JSON value, so no key is ever written twice.
pub(super) fn with_output_cap(endpoint: Endpoint, model: &str, body: &Bytes, cap: i64) -> Bytes {
    const CAP_FIELDS: [&str; 3] = ["max_tokens", "max_completion_tokens", "max_output_tokens"];
    let field = match endpoint {
        Endpoint::ChatCompletions if super::endpoints::is_reasoning_model(model) => "max_completion_tokens",
        Endpoint::Responses => "max_output_tokens",
        Endpoint::GeminiGenerate => "generationConfig",
        _ => "max_tokens",
    };
    let text = body.as_ref();
    let named = |name: &str| memchr::memmem::find(text, format!("\"{name}\"").as_bytes()).is_some();
    if field == "generationConfig" || CAP_FIELDS.iter().any(|f| named(f)) {
        let mut value: serde_json::Value = serde_json::from_slice(text).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.retain(|k, v| !(v.is_null() && CAP_FIELDS.contains(&k.as_str())));
            if field == "generationConfig" {
                let config = object.entry(field).or_insert_with(|| serde_json::json!({}));
                if !config.is_object() {
                    *config = serde_json::json!({});
                }
                if let Some(config) = config.as_object_mut() {
                    config.insert("maxOutputTokens".into(), cap.into());
                }
            } else {
                object.insert(field.into(), cap.into());
            }
        }
        return serde_json::to_vec(&value).map(Bytes::from).unwrap_or_else(|_| body.clone());
    }
    let Some(open) = text.iter().position(|b| *b == b'{') else { return body.clone() };
    let rest = &text[open + 1..];
    let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut out = Vec::with_capacity(text.len() + field.len() + 24);
    out.extend_from_slice(&text[..=open]);
    out.extend_from_slice(format!("\"{field}\":{cap}{}", if empty { "" } else { "," }).as_bytes());
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// A token per four bytes, rounding up: the least a hold assumes for a body of this size.
fn bytes_floor(bytes: usize) -> i64 {
    i64::try_from(bytes.div_ceil(4)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(price: Price, multiplier: i64, prompt: i64) -> impl Fn(i64) -> i64 {
        move |n| price.cost(&Usage { prompt_tokens: prompt, completion_tokens: n, ..Usage::default() }, multiplier)
    }

    #[test]
    fn the_output_cap_is_the_largest_the_balance_pays_for_whatever_the_rounding() {
        // Prices and a multiplier that do not divide evenly: compare with counting up.
        let price = Price { input_per_mtok: Some(333_333), output_per_mtok: Some(7_777_777), ..Price::default() };
        for (multiplier, spendable) in [(1_500_000, 1_000), (1_000_000, 17_777), (333_333, 5), (2_000_000, 31_111)] {
            let cost = cost(price, multiplier, 9);
            let expected = (0..4096).take_while(|&n| cost(n) <= spendable).last().unwrap_or(0);
            assert!(expected > 0 || spendable == 5, "the cases cap: {multiplier} {spendable}");
            assert_eq!(affordable_output(&cost, spendable, 4096), Some(expected), "{multiplier} {spendable}");
        }
        let cost = cost(price, 1_000_000, 9);
        assert_eq!(affordable_output(&cost, i64::MAX, 4096), None, "the default fits: no cap");
        assert_eq!(affordable_output(&cost, cost(1) - 1, 4096), Some(0), "not one token");
        assert_eq!(affordable_output(&cost, cost(1), 1), None);
    }

    #[test]
    fn the_cap_is_written_once_in_the_protocols_field() {
        let chat = Bytes::from_static(br#" {"model":"m","messages":[]}"#);
        assert_eq!(
            with_output_cap(Endpoint::ChatCompletions, "gpt-4o", &chat, 7).as_ref(),
            br#" {"max_tokens":7,"model":"m","messages":[]}"#
        );
        let reasoning = with_output_cap(Endpoint::ChatCompletions, "o3-mini", &chat, 7);
        assert!(reasoning.starts_with(br#" {"max_completion_tokens":7,"#));
        let empty = with_output_cap(Endpoint::Responses, "m", &Bytes::from_static(b"{ }"), 3);
        assert_eq!(empty.as_ref(), br#"{"max_output_tokens":3 }"#);
        let null = with_output_cap(Endpoint::ChatCompletions, "m", &Bytes::from_static(br#"{"max_tokens":null}"#), 5);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&null).ok(),
            Some(serde_json::json!({ "max_tokens": 5 }))
        );
        let gemini = Bytes::from_static(br#"{"contents":[],"generationConfig":{"temperature":0.5}}"#);
        let capped: serde_json::Value =
            serde_json::from_slice(&with_output_cap(Endpoint::GeminiGenerate, "gemini-x", &gemini, 9)).unwrap();
        assert_eq!(capped["generationConfig"], serde_json::json!({ "temperature": 0.5, "maxOutputTokens": 9 }));
    }
}

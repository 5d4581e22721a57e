//! The operator's price table: list and search, set or remove a model's price and a group's
//! own price for a model (each with an audit row), import and export One API / New API ratio
//! JSON, and apply the default price list. Every change reloads the routing snapshot.
//!
//! Ratios: One API's unit is "ratio 1 = $0.002 per 1K tokens", so a model's input price per 1M
//! tokens is `ModelRatio × 2`, its output price `× CompletionRatio` more, and a `GroupRatio`
//! is a group's multiplier. The numbers are read from the JSON text as exact decimals (never
//! through floats) and turned into integer nano-units, rounding half a nano-unit up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::db::groups as db_groups;
use crate::db::prices;
use crate::domain::money::{Money, format_fixed};
use crate::domain::pricing::Price;
use crate::services::audit::{self, Actor};
use crate::services::changes::{self, Change};
use crate::services::pricing::defaults::DEFAULT_PRICES;
use crate::services::pricing::{self, PriceInput, PricingError};
use crate::state::AppState;

/// A price as the API and the pages show it: decimal strings per 1M tokens (or per request).
#[derive(Clone, Debug, Serialize)]
pub struct PriceView {
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub cached_input: Option<String>,
    pub cache_write: Option<String>,
    pub per_request: Option<String>,
}

impl PriceView {
    pub fn new(model: &str, group: Option<&str>, p: &Price) -> Self {
        let shown = |v: Option<i64>| v.map(|n| Money(n).to_string());
        Self {
            model: model.to_string(),
            group: group.map(str::to_string),
            input: shown(p.input_per_mtok),
            output: shown(p.output_per_mtok),
            cached_input: shown(p.cached_input_per_mtok),
            cache_write: shown(p.cache_write_per_mtok),
            per_request: shown(p.per_request),
        }
    }

    fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Model prices whose name contains `search` (case-insensitive), sorted by model.
pub async fn list(state: &AppState, search: Option<&str>) -> Result<Vec<PriceView>, PricingError> {
    let needle = search.map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase);
    Ok(prices::all_model_prices(state.db().pool())
        .await?
        .iter()
        .filter(|(model, _)| needle.as_ref().is_none_or(|n| model.to_lowercase().contains(n)))
        .map(|(model, p)| PriceView::new(model, None, p))
        .collect())
}

/// Every group's own prices, by group then model.
pub async fn overrides(state: &AppState) -> Result<Vec<PriceView>, PricingError> {
    let mut rows = prices::all_group_prices(state.db().pool()).await?;
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(rows.iter().map(|(g, m, p)| PriceView::new(m, Some(g), p)).collect())
}

pub async fn get(state: &AppState, model: &str) -> Result<Option<PriceView>, PricingError> {
    Ok(prices::model_price(state.db().pool(), model).await?.map(|p| PriceView::new(model, None, &p)))
}

/// Sets a model's price (audited with before and after).
pub async fn set(state: &AppState, actor: &Actor, model: &str, input: &PriceInput) -> Result<PriceView, PricingError> {
    let model = model.trim();
    let before = get(state, model).await?;
    pricing::set_price(state, model, input).await?;
    let after = get(state, model).await?.ok_or_else(|| PricingError::Internal("saved price vanished".into()))?;
    let details = audit::changes(&before.map(|b| b.json()).unwrap_or(json!({})), &after.json());
    audit::record(state, actor, "price.set", ("model", model), details).await;
    Ok(after)
}

/// Removes a model's price; false when it had none.
pub async fn delete(state: &AppState, actor: &Actor, model: &str) -> Result<bool, PricingError> {
    let Some(before) = get(state, model).await? else { return Ok(false) };
    db_groups::delete_model_price(state.db().writer(), model).await?;
    changes::publish(state, Change::Routing).await;
    audit::record(state, actor, "price.delete", ("model", model), json!({ "before": before.json() })).await;
    Ok(true)
}

async fn get_override(state: &AppState, group: &str, model: &str) -> Result<Option<PriceView>, PricingError> {
    Ok(overrides(state).await?.into_iter().find(|p| p.group.as_deref() == Some(group) && p.model == model))
}

/// Sets a group's own price for a model (its users pay exactly this, no multiplier).
pub async fn set_override(
    state: &AppState,
    actor: &Actor,
    group: &str,
    model: &str,
    input: &PriceInput,
) -> Result<PriceView, PricingError> {
    let (group, model) = (group.trim(), model.trim());
    let before = get_override(state, group, model).await?;
    pricing::set_group_price(state, group, model, input).await?;
    let after = get_override(state, group, model)
        .await?
        .ok_or_else(|| PricingError::Internal("saved price vanished".into()))?;
    let details = audit::changes(&before.map(|b| b.json()).unwrap_or(json!({})), &after.json());
    audit::record(state, actor, "group_price.set", ("group_price", &format!("{group}/{model}")), details).await;
    Ok(after)
}

pub async fn delete_override(state: &AppState, actor: &Actor, group: &str, model: &str) -> Result<bool, PricingError> {
    let Some(before) = get_override(state, group, model).await? else { return Ok(false) };
    db_groups::delete_group_price(state.db().writer(), group, model).await?;
    changes::publish(state, Change::Routing).await;
    let target = format!("{group}/{model}");
    audit::record(state, actor, "group_price.delete", ("group_price", &target), json!({ "before": before.json() }))
        .await;
    Ok(true)
}

// ---- exact decimals ----------------------------------------------------------------------------

/// `mantissa × 10^exponent`, exactly as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decimal {
    mantissa: i128,
    exponent: i32,
}

/// Parses a non-negative JSON-style number (`15`, `0.0375`, `1.5e-3`) exactly.
fn decimal(text: &str) -> Result<Decimal, String> {
    let bad = || format!("{text:?} is not a non-negative number");
    let t = text.trim();
    let (number, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (t, 0),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{int}{frac}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 || !(-30..=30).contains(&exp) {
        return Err(format!("{text:?} has too many digits"));
    }
    let mantissa = if digits.is_empty() { 0 } else { digits.parse::<i128>().map_err(|_| bad())? };
    let frac_len = i32::try_from(frac.len()).map_err(|_| bad())?;
    Ok(Decimal { mantissa, exponent: exp - frac_len })
}

/// `mantissa × 10^exponent` as an integer, rounding half up; `None` on overflow.
fn rounded(mantissa: i128, exponent: i32) -> Option<i64> {
    let value = if exponent >= 0 {
        mantissa.checked_mul(10i128.checked_pow(u32::try_from(exponent).ok()?)?)?
    } else {
        let divisor = 10i128.checked_pow(u32::try_from(-exponent).ok()?);
        match divisor {
            Some(d) => (mantissa + d / 2) / d,
            None => 0,
        }
    };
    i64::try_from(value).ok()
}

/// A ratio's number: a JSON number or a string holding one.
fn ratio_text(raw: &RawValue) -> Result<String, String> {
    let text = raw.get().trim();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text).map_err(|e| e.to_string())
    } else {
        Ok(text.to_string())
    }
}

/// A ratio table: a JSON object, or (New API's option format) a string holding one.
fn table(name: &str, raw: &RawValue) -> Result<BTreeMap<String, Decimal>, String> {
    let text = raw.get().trim();
    let inner;
    let object = if text.starts_with('"') {
        inner = serde_json::from_str::<String>(text).map_err(|e| format!("{name}: {e}"))?;
        inner.as_str()
    } else {
        text
    };
    let entries: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(object).map_err(|e| format!("{name}: expected an object of numbers ({e})"))?;
    entries
        .into_iter()
        .map(|(key, value)| {
            let number = ratio_text(&value).and_then(|t| decimal(&t)).map_err(|e| format!("{name}.{key}: {e}"))?;
            Ok((key, number))
        })
        .collect()
}

/// What an import changed.
#[derive(Debug, Default, Serialize)]
pub struct ImportSummary {
    pub models: usize,
    pub groups: usize,
}

/// What a ratio JSON describes: model prices and group multipliers (parts per million).
type Ratios = (Vec<(String, Price)>, Vec<(String, i64)>);

/// The prices and multipliers a ratio JSON describes, computed before anything is written.
fn read_ratios(body: &str) -> Result<Ratios, String> {
    let top: BTreeMap<String, Box<RawValue>> = serde_json::from_str(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let get = |name: &str| top.get(name).map(|raw| table(name, raw)).transpose();
    let model_ratio = get("ModelRatio")?.unwrap_or_default();
    let completion = get("CompletionRatio")?.unwrap_or_default();
    let model_price = get("ModelPrice")?.unwrap_or_default();
    let group_ratio = get("GroupRatio")?.unwrap_or_default();
    if model_ratio.is_empty() && model_price.is_empty() && group_ratio.is_empty() {
        return Err("nothing to import: give ModelRatio (with CompletionRatio), ModelPrice or GroupRatio".into());
    }
    let check = |model: &str| {
        if model.is_empty() || model.len() > 200 || model.chars().any(char::is_control) {
            Err(format!("{model:?} is not a model name"))
        } else {
            Ok(())
        }
    };
    let too_large = |name: &str| format!("{name}: too large");
    let mut prices: Vec<(String, Price)> = Vec::new();
    for (model, ratio) in &model_ratio {
        check(model)?;
        if model_price.contains_key(model) {
            continue; // New API: a fixed per-request price wins over the ratio.
        }
        let one = Decimal { mantissa: 1, exponent: 0 };
        let c = completion.get(model).copied().unwrap_or(one);
        // input = ratio × 2 × 10^9 nano-units; output = input × completion ratio.
        let input = rounded(ratio.mantissa * 2, ratio.exponent + 9).ok_or_else(|| too_large(model))?;
        let output = ratio
            .mantissa
            .checked_mul(c.mantissa)
            .and_then(|m| m.checked_mul(2))
            .and_then(|m| rounded(m, ratio.exponent + c.exponent + 9))
            .ok_or_else(|| too_large(model))?;
        prices.push((
            model.clone(),
            Price { input_per_mtok: Some(input), output_per_mtok: Some(output), ..Price::default() },
        ));
    }
    for (model, usd) in &model_price {
        check(model)?;
        let per_request = rounded(usd.mantissa, usd.exponent + 9).ok_or_else(|| too_large(model))?;
        prices.push((model.clone(), Price { per_request: Some(per_request), ..Price::default() }));
    }
    let mut groups = Vec::new();
    for (group, ratio) in &group_ratio {
        if group.is_empty()
            || group.len() > 64
            || !group.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("GroupRatio: {group:?} is not a group name (letters, digits, - or _)"));
        }
        let ppm = rounded(ratio.mantissa, ratio.exponent + 6).filter(|p| *p <= 1_000_000_000);
        groups.push((group.clone(), ppm.ok_or_else(|| format!("GroupRatio.{group}: from 0 to 1000"))?));
    }
    Ok((prices, groups))
}

/// Imports One API / New API `ModelRatio`, `CompletionRatio`, `ModelPrice` and `GroupRatio`
/// (objects, or strings holding objects). All or nothing: any bad entry changes nothing.
pub async fn import_ratios(state: &AppState, actor: &Actor, body: &str) -> Result<ImportSummary, PricingError> {
    let (model_prices, groups) = read_ratios(body).map_err(PricingError::Invalid)?;
    let mut tx = state.db().writer().begin().await?;
    for (model, price) in &model_prices {
        prices::upsert_model_price(&mut *tx, model, price).await?;
    }
    for (group, ppm) in &groups {
        prices::upsert_group(&mut *tx, group, None, *ppm).await?;
    }
    tx.commit().await?;
    changes::publish(state, Change::Routing).await;
    let summary = ImportSummary { models: model_prices.len(), groups: groups.len() };
    let details = json!({
        "models": model_prices.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        "groups": groups.iter().map(|(g, _)| g.as_str()).collect::<Vec<_>>(),
    });
    audit::record(state, actor, "prices.import", ("prices", "ratios"), details).await;
    Ok(summary)
}

/// A decimal string as a JSON number.
fn number(text: &str) -> Value {
    serde_json::from_str::<Value>(text).unwrap_or(Value::Null)
}

/// Our prices as One API / New API ratio JSON. Completion ratios are rounded to 6 decimals.
pub async fn export_ratios(state: &AppState) -> Result<Value, PricingError> {
    let mut model_ratio = serde_json::Map::new();
    let mut completion = serde_json::Map::new();
    let mut model_price = serde_json::Map::new();
    for (model, p) in prices::all_model_prices(state.db().pool()).await? {
        if let Some(per_request) = p.per_request.filter(|_| p.input_per_mtok.is_none()) {
            model_price.insert(model, number(&format_fixed(per_request, 9, 0)));
            continue;
        }
        let Some(input) = p.input_per_mtok else { continue };
        // ratio = input / (2 × 10^9) = input × 5 / 10^10, exactly.
        model_ratio.insert(model.clone(), number(&format_fixed(input.saturating_mul(5), 10, 0)));
        if let Some(output) = p.output_per_mtok.filter(|_| input > 0) {
            let ratio = (i128::from(output) * 1_000_000 + i128::from(input) / 2) / i128::from(input);
            completion.insert(model, number(&format_fixed(i64::try_from(ratio).unwrap_or(i64::MAX), 6, 0)));
        }
    }
    let group_ratio: serde_json::Map<String, Value> = prices::all_groups(state.db().pool())
        .await?
        .into_iter()
        .map(|g| (g.name, number(&format_fixed(g.multiplier_ppm, 6, 0))))
        .collect();
    Ok(json!({
        "ModelRatio": model_ratio,
        "CompletionRatio": completion,
        "ModelPrice": model_price,
        "GroupRatio": group_ratio,
    }))
}

/// What applying the default list did.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DefaultsSummary {
    pub applied: usize,
    pub kept: usize,
}

/// Applies the default price list: models without a price get one; with `overwrite`, existing
/// prices of the listed models are replaced too.
pub async fn apply_defaults(state: &AppState, actor: &Actor, overwrite: bool) -> Result<DefaultsSummary, PricingError> {
    let existing: std::collections::HashSet<String> =
        prices::all_model_prices(state.db().pool()).await?.into_iter().map(|(m, _)| m).collect();
    let usd = |s: &str| Money::parse(s).map(Money::nanos).map_err(PricingError::Internal);
    let mut summary = DefaultsSummary::default();
    let mut applied = Vec::new();
    let mut tx = state.db().writer().begin().await?;
    for (model, input, output, cached, write) in DEFAULT_PRICES {
        if existing.contains(*model) && !overwrite {
            summary.kept += 1;
            continue;
        }
        let price = Price {
            input_per_mtok: Some(usd(input)?),
            output_per_mtok: Some(usd(output)?),
            cached_input_per_mtok: cached.map(usd).transpose()?,
            cache_write_per_mtok: write.map(usd).transpose()?,
            per_request: None,
        };
        prices::upsert_model_price(&mut *tx, model, &price).await?;
        applied.push(*model);
    }
    tx.commit().await?;
    summary.applied = applied.len();
    changes::publish(state, Change::Routing).await;
    let details = json!({ "overwrite": overwrite, "models": applied });
    audit::record(state, actor, "prices.defaults", ("prices", "defaults"), details).await;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal("15").unwrap(), Decimal { mantissa: 15, exponent: 0 });
        assert_eq!(decimal("0.0375").unwrap(), Decimal { mantissa: 375, exponent: -4 });
        assert_eq!(decimal("1.5e-3").unwrap(), Decimal { mantissa: 15, exponent: -4 });
        assert!(decimal("-1").is_err() && decimal("abc").is_err() && decimal("").is_err() && decimal(".").is_err());
        assert_eq!(rounded(375, -4 + 9), Some(37_500_000));
        assert_eq!(rounded(15, -10), Some(0));
        assert_eq!(rounded(5, -1), Some(1), "half a unit rounds up");
    }

    #[test]
    fn ratios_follow_the_formula() {
        let body = r#"{"ModelRatio":{"gpt-4":15,"cheap":0.0375,"s":"1.5"},"CompletionRatio":{"gpt-4":2,"cheap":"1.333333"},
            "GroupRatio":"{\"vip\":0.8}","ModelPrice":{"dall-e-3":0.04}}"#;
        let (prices, groups) = read_ratios(body).unwrap();
        let find = |m: &str| prices.iter().find(|(n, _)| n == m).unwrap().1;
        assert_eq!(find("gpt-4").input_per_mtok, Some(30_000_000_000));
        assert_eq!(find("gpt-4").output_per_mtok, Some(60_000_000_000));
        assert_eq!(find("cheap").input_per_mtok, Some(75_000_000));
        assert_eq!(find("cheap").output_per_mtok, Some(99_999_975));
        assert_eq!(find("s").output_per_mtok, Some(3_000_000_000));
        assert_eq!(find("dall-e-3").per_request, Some(40_000_000));
        assert_eq!(groups, vec![("vip".to_string(), 800_000)]);
        assert!(read_ratios(r#"{"ModelRatio":{"x":-1}}"#).unwrap_err().contains("ModelRatio.x"));
        assert!(read_ratios("{}").is_err());
        assert!(read_ratios("[").unwrap_err().starts_with("invalid JSON"));
    }
}

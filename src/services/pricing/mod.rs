//! Prices and groups: set a model's price per 1M tokens (or per request) and a group's
//! multiplier, from decimal strings, then refresh the gateway's routing snapshot.

pub mod admin;
pub mod capabilities;
pub mod defaults;
pub mod groups;

use serde::{Deserialize, Serialize};

use crate::db::prices::{self, GroupRow};
use crate::domain::money::{Money, format_fixed, parse_fixed};
use crate::domain::pricing::Price;
use crate::services::changes::{self, Change};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for PricingError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

/// A price as the API takes and shows it: decimal strings in the site currency, per 1M tokens
/// (`per_request`: per call).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub cached_input: Option<String>,
    #[serde(default)]
    pub cache_write: Option<String>,
    #[serde(default)]
    pub per_request: Option<String>,
}

fn amount(field: &str, value: Option<&str>) -> Result<Option<i64>, PricingError> {
    value
        .map(|v| {
            let nanos = Money::parse(v).map_err(|e| PricingError::Invalid(format!("{field}: {e}")))?.nanos();
            if nanos < 0 {
                return Err(PricingError::Invalid(format!("{field}: must not be negative")));
            }
            Ok(nanos)
        })
        .transpose()
}

fn shown(value: Option<i64>) -> Option<String> {
    value.map(|n| Money(n).to_string())
}

/// The model-name rule of the price table (and of the capabilities table): 1 to 200 bytes.
pub fn check_model_name(model: &str) -> Result<(), PricingError> {
    if model.is_empty() || model.len() > 200 {
        return Err(PricingError::Invalid("model: 1 to 200 characters".into()));
    }
    Ok(())
}

fn validated(model: &str, input: &PriceInput) -> Result<Price, PricingError> {
    check_model_name(model)?;
    let price = Price {
        input_per_mtok: amount("input", input.input.as_deref())?,
        output_per_mtok: amount("output", input.output.as_deref())?,
        cached_input_per_mtok: amount("cached_input", input.cached_input.as_deref())?,
        cache_write_per_mtok: amount("cache_write", input.cache_write.as_deref())?,
        per_request: amount("per_request", input.per_request.as_deref())?,
    };
    if !price.is_set() {
        return Err(PricingError::Invalid("give at least input, output or per_request".into()));
    }
    Ok(price)
}

fn shown_price(price: &Price) -> PriceInput {
    PriceInput {
        input: shown(price.input_per_mtok),
        output: shown(price.output_per_mtok),
        cached_input: shown(price.cached_input_per_mtok),
        cache_write: shown(price.cache_write_per_mtok),
        per_request: shown(price.per_request),
    }
}

pub async fn set_price(state: &AppState, model: &str, input: &PriceInput) -> Result<PriceInput, PricingError> {
    let model = model.trim();
    let price = validated(model, input)?;
    prices::upsert_model_price(state.db().writer(), model, &price).await?;
    changes::publish(state, Change::Routing).await;
    Ok(shown_price(&price))
}

/// A group's own price for a model: its users pay exactly this (no multiplier on top).
pub async fn set_group_price(
    state: &AppState,
    group: &str,
    model: &str,
    input: &PriceInput,
) -> Result<PriceInput, PricingError> {
    let model = model.trim();
    let price = validated(model, input)?;
    if prices::group(state.db().pool(), group).await?.is_none() {
        return Err(PricingError::Invalid(format!("group {group:?} does not exist")));
    }
    prices::upsert_group_price(state.db().writer(), group, model, &price).await?;
    changes::publish(state, Change::Routing).await;
    Ok(shown_price(&price))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    /// A decimal factor such as "0.8".
    pub multiplier: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub name: String,
    pub description: String,
    pub multiplier: String,
}

pub async fn set_group(state: &AppState, name: &str, input: &GroupInput) -> Result<GroupView, PricingError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(PricingError::Invalid("group names are 1 to 64 letters, digits, - or _".into()));
    }
    let ppm = parse_fixed(&input.multiplier, 6).map_err(|e| PricingError::Invalid(format!("multiplier: {e}")))?;
    if !(0..=1_000_000_000).contains(&ppm) {
        return Err(PricingError::Invalid("multiplier: from 0 to 1000".into()));
    }
    prices::upsert_group(state.db().writer(), name, input.description.as_deref(), ppm).await?;
    changes::publish(state, Change::Routing).await;
    let row = prices::group(state.db().pool(), name).await?.unwrap_or(GroupRow {
        name: name.into(),
        description: String::new(),
        multiplier_ppm: ppm,
    });
    Ok(GroupView { name: row.name, description: row.description, multiplier: format_fixed(row.multiplier_ppm, 6, 1) })
}

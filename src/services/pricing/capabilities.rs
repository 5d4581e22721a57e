//! The model capabilities table: what each model can do (output cap, context window, reasoning,
//! tools, vision, audio), as the operator set it or as shipped (`domain::capabilities`). Set and
//! reset a model's row (each with an audit row, like price changes), list the effective values
//! with where they come from, and reload the routing snapshot after a change so the gateway
//! clamps and refuses by the new values at once (other replicas pick it up on their periodic
//! reload). No HTTP here: the API and the console parse their own inputs through the helpers below.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::db::{capabilities as db_caps, prices};
use crate::domain::capabilities::{Capabilities, DEFAULT_CAPABILITIES, default_for};
use crate::services::audit::{self, Actor};
use crate::services::changes::{self, Change};
use crate::services::pricing::{PricingError, check_model_name};
use crate::state::AppState;

/// The largest token count a row may hold (above any published model, below any overflow).
pub const MAX_TOKENS: i64 = 10_000_000;

/// The fields of a capabilities body, in the order pages show them.
pub const FIELDS: [&str; 6] = ["max_output_tokens", "context_window", "reasoning", "tools", "vision", "audio"];

/// Where a model's effective capabilities come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The operator's row.
    Custom,
    /// The shipped default.
    Default,
    /// Neither: nothing known.
    None,
}

/// A model's effective capabilities as the API and the pages show them (`null` = not known).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CapabilityView {
    pub model: String,
    pub max_output_tokens: Option<i64>,
    pub context_window: Option<i64>,
    pub reasoning: Option<bool>,
    pub tools: Option<bool>,
    pub vision: Option<bool>,
    pub audio: Option<bool>,
    pub source: Source,
    /// Whether the model has a price (only priced models can be called).
    pub priced: bool,
}

impl CapabilityView {
    fn new(model: &str, row: Option<Capabilities>, priced: bool) -> Self {
        let (caps, source) = match row {
            Some(c) => (c, Source::Custom),
            None => default_for(model).map_or((Capabilities::default(), Source::None), |c| (c, Source::Default)),
        };
        Self {
            model: model.to_string(),
            max_output_tokens: caps.max_output_tokens,
            context_window: caps.context_window,
            reasoning: caps.reasoning,
            tools: caps.tools,
            vision: caps.vision,
            audio: caps.audio,
            source,
            priced,
        }
    }

    /// The values alone.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_output_tokens: self.max_output_tokens,
            context_window: self.context_window,
            reasoning: self.reasoning,
            tools: self.tools,
            vision: self.vision,
            audio: self.audio,
        }
    }

    pub fn is_custom(&self) -> bool {
        self.source == Source::Custom
    }

    pub fn is_default(&self) -> bool {
        self.source == Source::Default
    }

    fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Checks a row before it is stored: token counts from 1 to [`MAX_TOKENS`], an output cap no
/// larger than the context window when both are known.
pub fn validate(caps: &Capabilities) -> Result<(), PricingError> {
    for (field, value) in [("max_output_tokens", caps.max_output_tokens), ("context_window", caps.context_window)] {
        if value.is_some_and(|v| !(1..=MAX_TOKENS).contains(&v)) {
            return Err(PricingError::Invalid(format!("{field}: from 1 to {MAX_TOKENS}, or empty for unknown")));
        }
    }
    if let (Some(output), Some(context)) = (caps.max_output_tokens, caps.context_window)
        && output > context
    {
        return Err(PricingError::Invalid(format!(
            "max_output_tokens: {output} is more than the context window ({context})"
        )));
    }
    Ok(())
}

/// A model name from a path or a form: trimmed, the price table's rule, no control characters.
fn model_name(model: &str) -> Result<&str, PricingError> {
    let model = model.trim();
    check_model_name(model)?;
    if model.chars().any(char::is_control) {
        return Err(PricingError::Invalid("model: no control characters".into()));
    }
    Ok(model)
}

/// A JSON body (`{"max_output_tokens": 8192, "tools": true, …}`, each field optional, `null` =
/// not known) as capabilities. Errors name the field.
pub fn from_json(body: &Value) -> Result<Capabilities, PricingError> {
    let bad = |m: String| PricingError::Invalid(m);
    let fields = body.as_object().ok_or_else(|| bad("the body must be a JSON object".into()))?;
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(format!("{unknown}: unknown field (expected {})", FIELDS.join(", "))));
    }
    let tokens = |name: &str| match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            v.as_i64().map(Some).ok_or_else(|| bad(format!("{name}: an integer from 1 to {MAX_TOKENS}, or null")))
        }
    };
    let flag = |name: &str| match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(format!("{name}: true, false or null"))),
    };
    let caps = Capabilities {
        max_output_tokens: tokens("max_output_tokens")?,
        context_window: tokens("context_window")?,
        reasoning: flag("reasoning")?,
        tools: flag("tools")?,
        vision: flag("vision")?,
        audio: flag("audio")?,
    };
    validate(&caps)?;
    Ok(caps)
}

/// A form's token count: empty for unknown, else an integer (range checked by [`validate`]).
pub fn parse_tokens(field: &str, text: &str) -> Result<Option<i64>, PricingError> {
    let text = text.trim().replace(['_', ','], "");
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<i64>()
        .map(Some)
        .map_err(|_| PricingError::Invalid(format!("{field}: an integer from 1 to {MAX_TOKENS}, or empty for unknown")))
}

/// A form's flag: `yes`, `no`, or empty for unknown.
pub fn parse_flag(field: &str, text: &str) -> Result<Option<bool>, PricingError> {
    match text.trim() {
        "" => Ok(None),
        "yes" | "true" | "1" => Ok(Some(true)),
        "no" | "false" | "0" => Ok(Some(false)),
        _ => Err(PricingError::Invalid(format!("{field}: yes, no or unknown"))),
    }
}

/// Every priced model, every model with a row and every model with a shipped default, with its
/// effective capabilities, by model name.
pub async fn list(state: &AppState) -> Result<Vec<CapabilityView>, PricingError> {
    let rows: BTreeMap<String, Capabilities> = db_caps::all(state.db().pool()).await?.into_iter().collect();
    let priced: BTreeSet<String> =
        prices::all_model_prices(state.db().pool()).await?.into_iter().map(|(m, _)| m).collect();
    let models: BTreeSet<&str> = priced
        .iter()
        .map(String::as_str)
        .chain(rows.keys().map(String::as_str))
        .chain(DEFAULT_CAPABILITIES.iter().map(|(m, _)| *m))
        .collect();
    Ok(models.into_iter().map(|m| CapabilityView::new(m, rows.get(m).copied(), priced.contains(m))).collect())
}

/// One model's effective capabilities (source `none` when nothing is known).
pub async fn get(state: &AppState, model: &str) -> Result<CapabilityView, PricingError> {
    let row = db_caps::all(state.db().pool()).await?.into_iter().find(|(m, _)| m == model).map(|(_, c)| c);
    let priced = prices::model_price(state.db().pool(), model).await?.is_some();
    Ok(CapabilityView::new(model, row, priced))
}

/// Stores `model`'s row (replacing the shipped default as a whole), audited with before and
/// after, and makes it live.
pub async fn set(
    state: &AppState,
    actor: &Actor,
    model: &str,
    caps: &Capabilities,
) -> Result<CapabilityView, PricingError> {
    let model = model_name(model)?;
    validate(caps)?;
    let before = get(state, model).await?;
    db_caps::upsert(state.db().writer(), model, caps).await?;
    changes::publish(state, Change::Routing).await;
    let after = get(state, model).await?;
    let details = audit::changes(&before.json(), &after.json());
    audit::record(state, actor, "capabilities.set", ("model", model), details).await;
    Ok(after)
}

/// Removes `model`'s row, back to the shipped default (or to nothing known); false when it had
/// no row.
pub async fn reset(state: &AppState, actor: &Actor, model: &str) -> Result<bool, PricingError> {
    let model = model.trim();
    let before = get(state, model).await?;
    if !before.is_custom() || !db_caps::delete(state.db().writer(), model).await? {
        return Ok(false);
    }
    changes::publish(state, Change::Routing).await;
    let after = get(state, model).await?;
    let details = json!({ "before": before.json(), "after": after.json() });
    audit::record(state, actor, "capabilities.reset", ("model", model), details).await;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_field_by_field() {
        let ok = from_json(&json!({ "max_output_tokens": 8192, "context_window": null, "tools": false })).unwrap();
        assert_eq!(
            (ok.max_output_tokens, ok.context_window, ok.tools, ok.vision),
            (Some(8192), None, Some(false), None)
        );
        let err = |body: Value| match from_json(&body) {
            Err(PricingError::Invalid(m)) => m,
            other => panic!("{body} gave {other:?}"),
        };
        assert!(err(json!({ "max_output_tokens": 0 })).starts_with("max_output_tokens:"));
        assert!(err(json!({ "context_window": -5 })).starts_with("context_window:"));
        assert!(err(json!({ "context_window": 10_000_001 })).starts_with("context_window:"));
        assert!(err(json!({ "max_output_tokens": "8192" })).starts_with("max_output_tokens:"));
        assert!(err(json!({ "max_output_tokens": 1.5 })).starts_with("max_output_tokens:"));
        assert!(err(json!({ "vision": "yes" })).starts_with("vision:"));
        assert!(err(json!({ "max_output_tokens": 9, "context_window": 8 })).contains("more than the context window"));
        assert!(err(json!({ "colour": 1 })).starts_with("colour: unknown field"));
        assert!(err(json!([1])).contains("JSON object"));
    }

    #[test]
    fn form_values_parse() {
        assert_eq!(parse_tokens("x", " 128_000 ").unwrap(), Some(128_000));
        assert_eq!(parse_tokens("x", "").unwrap(), None);
        assert!(parse_tokens("x", "12k").is_err());
        assert_eq!((parse_flag("t", "yes").unwrap(), parse_flag("t", "no").unwrap()), (Some(true), Some(false)));
        assert_eq!(parse_flag("t", "").unwrap(), None);
        assert!(parse_flag("t", "maybe").is_err());
        assert!(model_name(" a\u{7}b ").is_err() && model_name("").is_err() && model_name(" gpt-4o ").is_ok());
    }
}

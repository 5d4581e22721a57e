//! The capabilities table as the pricing page shows it (`/admin/pricing`): its rows, the row open
//! as a form, and the capabilities form itself. Both the page (`pricing.rs`) and the section's
//! handlers (`capabilities.rs`) build on it, so neither needs the other's view types.

use serde::Deserialize;

use crate::domain::capabilities::Capabilities;
use crate::services::pricing::PricingError;
use crate::services::pricing::capabilities::{self, CapabilityView, parse_flag, parse_tokens};
use crate::state::AppState;

/// What the pricing page shows of the capabilities table.
#[derive(Default)]
pub struct CapsSection {
    pub rows: Vec<CapabilityView>,
    /// The model whose row is open as a form (without JavaScript).
    pub editing: Option<String>,
    /// The "any model" form as sent (a refused save).
    pub form: CapsForm,
}

impl CapsSection {
    pub fn is_editing(&self, model: &str) -> bool {
        self.editing.as_deref() == Some(model)
    }

    /// The form values of `row` (to open it for editing).
    pub fn form_of(&self, row: &CapabilityView) -> CapsForm {
        CapsForm::from(row)
    }
}

/// The section's data, read through the service: models whose name contains `search`
/// (case-insensitive), like the price table above it.
pub async fn section(state: &AppState, search: &str) -> Result<CapsSection, PricingError> {
    let needle = search.trim().to_lowercase();
    let mut rows = capabilities::list(state).await?;
    rows.retain(|r| r.model.to_lowercase().contains(&needle));
    Ok(CapsSection { rows, ..CapsSection::default() })
}

/// A capabilities form: token counts as text (empty = unknown), flags as `yes`, `no` or empty.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CapsForm {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub max_output_tokens: String,
    #[serde(default)]
    pub context_window: String,
    #[serde(default)]
    pub reasoning: String,
    #[serde(default)]
    pub tools: String,
    #[serde(default)]
    pub vision: String,
    #[serde(default)]
    pub audio: String,
}

impl CapsForm {
    pub(super) fn parse(&self) -> Result<Capabilities, PricingError> {
        Ok(Capabilities {
            max_output_tokens: parse_tokens("max_output_tokens", &self.max_output_tokens)?,
            context_window: parse_tokens("context_window", &self.context_window)?,
            reasoning: parse_flag("reasoning", &self.reasoning)?,
            tools: parse_flag("tools", &self.tools)?,
            vision: parse_flag("vision", &self.vision)?,
            audio: parse_flag("audio", &self.audio)?,
        })
    }
}

impl From<&CapabilityView> for CapsForm {
    fn from(view: &CapabilityView) -> Self {
        let tokens = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        let flag = |v: Option<bool>| match v {
            Some(true) => "yes".to_string(),
            Some(false) => "no".to_string(),
            None => String::new(),
        };
        Self {
            model: view.model.clone(),
            max_output_tokens: tokens(view.max_output_tokens),
            context_window: tokens(view.context_window),
            reasoning: flag(view.reasoning),
            tools: flag(view.tools),
            vision: flag(view.vision),
            audio: flag(view.audio),
        }
    }
}

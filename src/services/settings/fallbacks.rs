//! A group's fallback models (`routing.fallback.<group>.<model>`, docs/gateway.md#fallback-models)
//! as the group's console form reads and writes them: one text, a line per requested model,
//! `gpt-4o = claude-sonnet-4-5, gpt-4o-mini`. Each line is one setting, written through
//! [`super::set`] (checked, audited, applied at once).

use std::collections::{BTreeMap, HashMap};

use super::SettingError;
use crate::config::{FALLBACK_SETTING_PREFIX, parse_fallbacks};
use crate::db;
use crate::services::audit::Actor;
use crate::state::AppState;

/// Fallback lists by requested model.
pub type Fallbacks = BTreeMap<String, Vec<String>>;

/// Every group's fallback lists (empty ones left out).
pub async fn all(state: &AppState) -> Result<HashMap<String, Fallbacks>, SettingError> {
    let stored = db::settings::with_prefix(state.db().pool(), FALLBACK_SETTING_PREFIX)
        .await
        .map_err(|e| SettingError::Internal(e.to_string()))?;
    let mut groups: HashMap<String, Fallbacks> = HashMap::new();
    for (key, value) in stored {
        let Some((group, model)) = key.strip_prefix(FALLBACK_SETTING_PREFIX).and_then(|t| t.split_once('.')) else {
            continue;
        };
        match parse_fallbacks(&value, Some(model)) {
            Ok(models) if !models.is_empty() => {
                groups.entry(group.to_string()).or_default().insert(model.to_string(), models);
            }
            _ => {}
        }
    }
    Ok(groups)
}

/// The lists as the form shows them: `model = a, b`, a line each.
pub fn to_text(fallbacks: &Fallbacks) -> String {
    fallbacks.iter().map(|(model, to)| format!("{model} = {}\n", to.join(", "))).collect()
}

/// The form's text as settings values by requested model, or why a line cannot be one.
pub fn parse_text(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut lists = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((model, to)) = line.split_once('=') else {
            return Err(format!("{line:?}: write a model, `=`, then its fallback models (gpt-4o = gpt-4o-mini)"));
        };
        let model = model.trim();
        if model.is_empty() || model.chars().any(char::is_whitespace) {
            return Err(format!("{line:?}: {model:?} is not a model name"));
        }
        let models = parse_fallbacks(to, Some(model)).map_err(|why| format!("{model}: {why}"))?;
        if lists.insert(model.to_string(), models.join(", ")).is_some() {
            return Err(format!("{model} has two lines"));
        }
    }
    Ok(lists)
}

/// Replaces a group's fallback lists with the form's text: changed lines are written, lines taken
/// out are emptied. Nothing is written when a line is refused.
pub async fn replace(state: &AppState, actor: &Actor, group: &str, text: &str) -> Result<(), SettingError> {
    let wanted = parse_text(text).map_err(SettingError::Invalid)?;
    let current = all(state).await?.remove(group).unwrap_or_default();
    for (model, value) in &wanted {
        if current.get(model).map(|to| to.join(", ")).as_ref() != Some(value) {
            super::set(state, actor, &format!("{FALLBACK_SETTING_PREFIX}{group}.{model}"), value).await?;
        }
    }
    for model in current.keys().filter(|m| !wanted.contains_key(*m)) {
        super::set(state, actor, &format!("{FALLBACK_SETTING_PREFIX}{group}.{model}"), "").await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_reads_a_line_per_model_and_refuses_what_cannot_be_a_list() {
        let parsed = parse_text("gpt-4o = claude-sonnet-4-5, gpt-4o-mini\n\n  o3 =o4-mini \n").unwrap();
        assert_eq!(parsed["gpt-4o"], "claude-sonnet-4-5, gpt-4o-mini");
        assert_eq!(parsed["o3"], "o4-mini");
        let lists: Fallbacks = parsed.iter().map(|(m, v)| (m.clone(), parse_fallbacks(v, None).unwrap())).collect();
        assert_eq!(to_text(&lists), "gpt-4o = claude-sonnet-4-5, gpt-4o-mini\no3 = o4-mini\n");
        assert!(parse_text("gpt-4o claude").is_err());
        assert!(parse_text("gpt-4o = gpt-4o").is_err());
        assert!(parse_text("a = b\na = c").is_err());
        assert!(parse_text("bad model = b").is_err());
        assert!(parse_text("a = b, c, d, e, f, g").is_err());
    }
}

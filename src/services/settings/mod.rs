//! The operator's settings as the console's settings page and `/api/admin/settings` edit them:
//! list (secrets masked), change one (validated, secrets encrypted, audited without their value,
//! applied at once), and send a test email. The in-memory snapshot itself is `services::settings::site`.

pub mod fallbacks;
pub mod site;

use serde::Serialize;
use serde_json::json;

use crate::config::{FALLBACK_SETTING_PREFIX, STRATEGY_SETTING_PREFIX, parse_fallbacks};
use crate::config::{Strategy, runtime};
use crate::db::settings;
use crate::mail::ActionMail;
use crate::services::audit::{self, Actor};
use crate::services::changes::{self, Change};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    #[error("{0}")]
    Invalid(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// One setting as shown: secrets have no value, only whether one is set.
#[derive(Clone, Debug, Serialize)]
pub struct SettingView {
    pub key: String,
    pub value: Option<String>,
    pub secret: bool,
    pub set: bool,
}

/// Every site setting with its current value (secrets masked).
pub fn list(state: &AppState) -> Vec<SettingView> {
    let site = state.site();
    runtime::TABLE
        .iter()
        .map(|setting| {
            let (key, secret) = (setting.key, setting.is_secret());
            SettingView {
                key: key.to_string(),
                value: if secret { None } else { site.value_of(key) },
                secret,
                set: if secret { site.secret_is_set(key) } else { true },
            }
        })
        .collect()
}

/// Validates and stores one setting, applies it at once, and writes an audit row (for a secret,
/// only that it changed). Answers the setting as shown afterwards.
pub async fn set(state: &AppState, actor: &Actor, key: &str, value: &str) -> Result<SettingView, SettingError> {
    let value = value.trim();
    let secret = runtime::find(key).is_some_and(runtime::RuntimeSetting::is_secret);
    let before;
    if key.starts_with(STRATEGY_SETTING_PREFIX) {
        if Strategy::parse(value).is_none() {
            return Err(SettingError::Invalid(format!("{key}: {}", Strategy::accepted())));
        }
        before = None;
    } else if let Some(target) = key.strip_prefix(FALLBACK_SETTING_PREFIX) {
        // `<group>.<model>`: a group name has no dot, so the model is what follows the first.
        let requested = target.split_once('.').map(|(_, model)| model).filter(|m| !m.is_empty());
        if requested.is_none() {
            return Err(SettingError::Invalid(format!("{key}: name it {FALLBACK_SETTING_PREFIX}<group>.<model>")));
        }
        parse_fallbacks(value, requested).map_err(|why| SettingError::Invalid(format!("{key}: {why}")))?;
        before = None;
    } else {
        let current = state.site();
        before = current.value_of(key);
        (*current).clone().apply(key, value).map_err(|message| SettingError::Invalid(format!("{key}: {message}")))?;
    }
    let stored = if secret && !value.is_empty() {
        site::seal(state.secret_key(), value).map_err(SettingError::Internal)?
    } else {
        value.to_string()
    };
    settings::set(state.db().writer(), key, &stored).await.map_err(|e| SettingError::Internal(e.to_string()))?;
    // The site first: the routing table reads its default strategy from it.
    changes::publish(state, Change::Settings).await;
    changes::publish(state, Change::Routing).await;
    let details = if secret {
        json!({ "changed": true, "cleared": value.is_empty() })
    } else {
        audit::changes(&json!({ "value": before }), &json!({ "value": value }))
    };
    audit::record(state, actor, "setting.update", ("setting", key), details).await;
    let shown = list(state).into_iter().find(|s| s.key == key);
    // A routing strategy or fallback list is not one of the listed site settings: shown as given.
    Ok(shown.unwrap_or(SettingView { key: key.to_string(), value: Some(value.to_string()), secret: false, set: true }))
}

/// Sends a test message to `to` through the current mailer, now (not in the background: the
/// operator wants to see the SMTP server's answer).
pub async fn send_test_email(
    state: &AppState,
    actor: &Actor,
    to: &str,
    lang: crate::i18n::Lang,
) -> Result<(), SettingError> {
    let mailer = state.mailer();
    if !mailer.is_configured() {
        return Err(SettingError::Invalid("SMTP is not configured: set a host and a sender address first".into()));
    }
    let mut link = state.public_url();
    link.set_path("/admin/settings");
    let mail = ActionMail {
        lang,
        site_name: state.site().site_name.clone(),
        subject: "Test email",
        intro: "This is a test message from your site's settings: mail is working.",
        action: "Open the settings",
        link: link.to_string(),
        footnote: "You receive this because an operator asked for a test email.",
        details: Vec::new(),
    };
    let result = mailer.send(to, &mail).await;
    audit::record(state, actor, "setting.test_email", ("setting", "smtp"), json!({ "ok": result.is_ok() })).await;
    result.map_err(|e| SettingError::Invalid(format!("the SMTP server refused the message: {e}")))
}

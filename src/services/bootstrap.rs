//! Bootstrap files (`burncloud serve --bootstrap FILE.toml`): declare groups, channels, prices,
//! users (with a balance) and their keys, and settings; applied at start as upserts, so the same
//! file can be applied on every start. The format is documented in docs/bootstrap.md.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::channels::{self, ChannelInput};
use super::keys::{self, NewKeyInput};
use super::pricing::{self, GroupInput, PriceInput};
use super::users::{self, NewUserInput};
use crate::db::limits::Owner;
use crate::db::{api_keys, settings, users as db_users};
use crate::domain::api_key;
use crate::domain::email::Email;
use crate::domain::money::Money;
use crate::domain::password;
use crate::services::changes::{self, Change};
use crate::services::limits::{self, LimitsPatch};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapFile {
    #[serde(default)]
    pub groups: Vec<GroupEntry>,
    #[serde(default)]
    pub channels: Vec<ChannelInput>,
    #[serde(default)]
    pub prices: Vec<PriceEntry>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub name: String,
    pub multiplier: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Each member's default budget and rate limits.
    #[serde(default)]
    pub limits: Option<LimitsPatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    pub model: String,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub email: String,
    /// Optional: without it the account gets a random password (reset it to sign in).
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// The balance to have after bootstrap, a decimal string; set through a ledger adjustment.
    #[serde(default)]
    pub balance: Option<String>,
    #[serde(default)]
    pub keys: Vec<NewKeyInput>,
    /// The user's own budget and rate limits (over their group's).
    #[serde(default)]
    pub limits: Option<LimitsPatch>,
}

/// A failure, naming the entry.
#[derive(Debug, thiserror::Error)]
#[error("bootstrap {file}: {entry}: {message}")]
pub struct BootstrapError {
    pub file: String,
    pub entry: String,
    pub message: String,
}

pub async fn apply_file(state: &AppState, path: &Path) -> Result<(), BootstrapError> {
    let fail = |entry: &str, message: String| BootstrapError {
        file: path.display().to_string(),
        entry: entry.to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail("file", format!("cannot read: {e}")))?;
    let file: BootstrapFile = toml::from_str(&text).map_err(|e| fail("file", format!("invalid: {}", e.message())))?;
    apply(state, file).await.map_err(|(entry, message)| fail(&entry, message))
}

/// Applies a parsed file; `Err((entry, message))` on the first failure.
pub async fn apply(state: &AppState, file: BootstrapFile) -> Result<(), (String, String)> {
    for (i, g) in file.groups.into_iter().enumerate() {
        let group = GroupInput { multiplier: g.multiplier, description: g.description };
        let entry = || format!("groups[{i}] {}", g.name);
        pricing::set_group(state, &g.name, &group).await.map_err(|e| (entry(), e.to_string()))?;
        if let Some(patch) = &g.limits {
            set_limits(state, Owner::Group(g.name.trim()), patch).await.map_err(|m| (entry(), m))?;
        }
    }
    for (i, c) in file.channels.into_iter().enumerate() {
        let entry = format!("channels[{i}] {}", c.name.clone().unwrap_or_default());
        channels::upsert_by_name(state, c).await.map_err(|e| (entry, e.to_string()))?;
    }
    for (i, p) in file.prices.into_iter().enumerate() {
        let price = PriceInput {
            input: p.input,
            output: p.output,
            cached_input: p.cached_input,
            cache_write: p.cache_write,
            per_request: p.per_request,
        };
        pricing::set_price(state, &p.model, &price)
            .await
            .map_err(|e| (format!("prices[{i}] {}", p.model), e.to_string()))?;
    }
    for (i, u) in file.users.into_iter().enumerate() {
        let entry = format!("users[{i}] {}", u.email);
        apply_user(state, u).await.map_err(|m| (entry, m))?;
    }
    for (key, value) in &file.settings {
        if let Some(target) = key.strip_prefix(crate::config::FALLBACK_SETTING_PREFIX) {
            let requested = target.split_once('.').map(|(_, model)| model);
            crate::config::parse_fallbacks(value, requested).map_err(|m| (format!("settings.{key}"), m))?;
        } else if !key.starts_with(crate::config::STRATEGY_SETTING_PREFIX) {
            (*state.site()).clone().apply(key, value).map_err(|m| (format!("settings.{key}"), m))?;
        }
        settings::set(state.db().writer(), key, value).await.map_err(|e| (format!("settings.{key}"), e.to_string()))?;
    }
    // Settings first: the routing snapshot reads its default strategy from them.
    changes::publish(state, Change::Settings).await;
    changes::publish(state, Change::Routing).await;
    changes::publish(state, Change::AllKeys).await;
    Ok(())
}

async fn apply_user(state: &AppState, u: UserEntry) -> Result<(), String> {
    let email = Email::parse(&u.email)?;
    let id = match db_users::id_by_email(state.db().pool(), &email).await.map_err(|e| e.to_string())? {
        Some(id) => {
            if let Some(group) = u.group.as_deref() {
                crate::db::prices::group(state.db().pool(), group)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("group {group:?} does not exist"))?;
                db_users::set_group(state.db().writer(), id, group).await.map_err(|e| e.to_string())?;
            }
            id
        }
        None => {
            let input = NewUserInput {
                email: email.to_string(),
                password: u.password.clone().unwrap_or_else(password::generate),
                group: u.group.clone(),
                role: u.role.clone(),
            };
            users::create(state, input).await.map_err(|e| e.to_string())?.id
        }
    };
    if let Some(patch) = &u.limits {
        set_limits(state, Owner::User(id), patch).await?;
    }
    if let Some(balance) = u.balance.as_deref() {
        let target = Money::parse(balance).map_err(|e| format!("balance: {e}"))?;
        users::set_balance(state, id, target, "bootstrap balance").await.map_err(|e| e.to_string())?;
    }
    for (k, key) in u.keys.into_iter().enumerate() {
        if let Some(fixed) = key.key.as_deref() {
            match api_keys::owner_by_hash(state.db().pool(), &api_key::hash(fixed)).await.map_err(|e| e.to_string())? {
                Some((_, owner)) if owner == id => continue,
                Some(_) => return Err(format!("keys[{k}]: this key belongs to another user")),
                None => {}
            }
        }
        keys::create_key(state, id, key).await.map_err(|e| format!("keys[{k}]: {e}"))?;
    }
    Ok(())
}

async fn set_limits(state: &AppState, owner: Owner<'_>, patch: &LimitsPatch) -> Result<(), String> {
    let mut tx = state.db().writer().begin().await.map_err(|e| e.to_string())?;
    match limits::patch(&mut tx, owner, patch).await.map_err(|e| e.to_string())? {
        Some(Ok(_)) => tx.commit().await.map_err(|e| e.to_string()),
        Some(Err(why)) => Err(format!("limits.{why}")),
        None => Err("vanished while its limits were set".into()),
    }
}

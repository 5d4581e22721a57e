//! Channel administration: create, update, delete, probe, automatic disable and re-enable, and
//! the routing reload that follows every change. Upstream keys are encrypted before they reach
//! the database and never leave this module in clear except toward the upstream itself.

pub mod admin;
pub mod keys;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::db::channel_keys as db_keys;
use crate::db::channels::{self as db_channels, ChannelRow, ChannelWrite};
use crate::providers::ChannelType;
use crate::services::changes::{self, Change};
use crate::services::routing::health::ChannelHealthView;
use crate::services::routing::keys::fingerprint;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such channel")]
    NotFound,
    /// An update would send the channel's stored key to a new destination (another base URL,
    /// or the default host of another type or Bedrock region): the key must be entered again.
    #[error("{0}")]
    KeyRequired(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for ChannelError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

/// A channel as the API accepts it. On update every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub base_url: Option<String>,
    /// One key, or several separated by newlines (used in rotation). Write-only.
    pub key: Option<String>,
    pub models: Option<Vec<String>>,
    pub model_mapping: Option<BTreeMap<String, String>>,
    pub groups: Option<Vec<String>>,
    pub priority: Option<i64>,
    pub weight: Option<i64>,
    pub config: Option<serde_json::Value>,
    /// `enabled` or `disabled`.
    pub status: Option<String>,
}

/// A channel as the API shows it: never the key, only its last characters.
#[derive(Debug, Serialize)]
pub struct ChannelView {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub base_url: String,
    pub key_hint: String,
    /// How many keys the channel rotates through.
    pub key_count: usize,
    pub models: Vec<String>,
    pub model_mapping: BTreeMap<String, String>,
    pub groups: Vec<String>,
    pub priority: i64,
    pub weight: i64,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub config: serde_json::Value,
    pub test_latency_ms: Option<i64>,
    pub tested_at: Option<i64>,
    /// The last failure seen (a failed test or an automatic disable), and when.
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Spend routed through the channel (a decimal string in the API, like every amount).
    #[serde(serialize_with = "crate::domain::money::as_decimal")]
    pub used_amount: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// How it has been answering on this replica (moving time to first token, latency, error
    /// rate, requests in flight) and its circuit breaker.
    pub health: ChannelHealthView,
}

/// The validated, complete form of a channel.
struct Valid {
    name: String,
    kind: String,
    base_url: String,
    keys: Vec<String>,
    models: Vec<String>,
    model_mapping: BTreeMap<String, String>,
    groups: Vec<String>,
    priority: i64,
    weight: i64,
    config: serde_json::Value,
    status: String,
}

fn invalid(message: impl Into<String>) -> ChannelError {
    ChannelError::Invalid(message.into())
}

fn clean_list(field: &str, items: Vec<String>) -> Result<Vec<String>, ChannelError> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let item = item.trim().to_string();
        if item.is_empty() || item.len() > 200 {
            return Err(invalid(format!("{field}: entries must be 1 to 200 characters")));
        }
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

/// Where a channel's requests (and so its key) go: the base URL, or the type's default host (for
/// Bedrock, the region's endpoint), normalised so that case, a default port or a trailing slash
/// are no change.
fn destination(channel_type: &ChannelType, base_url: &str, config: &serde_json::Value) -> String {
    let base = base_url.trim();
    let base = if !base.is_empty() {
        base.to_string()
    } else if channel_type.protocol == crate::providers::Protocol::Bedrock {
        // As the gateway does: the region's endpoint, us-east-1 when none is set.
        let region = config.get("region").and_then(serde_json::Value::as_str).unwrap_or("us-east-1");
        crate::providers::bedrock::endpoint(region)
    } else {
        channel_type.preset.default_base_url.unwrap_or_default().to_string()
    };
    match url::Url::parse(&base) {
        Ok(url) => url.as_str().trim_end_matches('/').to_string(),
        Err(_) => base.trim_end_matches('/').to_ascii_lowercase(),
    }
}

/// The message of [`ChannelError::KeyRequired`].
pub const KEY_REQUIRED: &str = "key: enter the channel's key again to change where it sends requests (base_url, type or region): a stored key is never sent to a new host";

fn validate(input: ChannelInput, existing: Option<(&ChannelRow, Vec<String>)>) -> Result<Valid, ChannelError> {
    let old = existing.as_ref().map(|(row, _)| *row);
    let keeps_stored_keys = existing.is_some() && input.key.is_none();
    let name = input.name.or_else(|| old.map(|r| r.name.clone())).unwrap_or_default().trim().to_string();
    if name.is_empty() || name.len() > 100 {
        return Err(invalid("name: required, at most 100 characters"));
    }
    let kind = input.kind.or_else(|| old.map(|r| r.kind.clone())).unwrap_or_default();
    let channel_type = ChannelType::parse(&kind).ok_or_else(|| {
        invalid(format!(
            "type: {kind:?} is not a channel type (one of: {})",
            ChannelType::names().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let base_url = input
        .base_url
        .or_else(|| old.map(|r| r.base_url.clone()))
        .unwrap_or_default()
        .trim()
        .trim_end_matches('/')
        .to_string();
    let bedrock = channel_type.protocol == crate::providers::Protocol::Bedrock;
    if base_url.is_empty() {
        // Bedrock's endpoint follows from the region in `config`.
        if channel_type.preset.default_base_url.is_none() && !bedrock {
            return Err(invalid(format!("base_url: required for type {kind}")));
        }
    } else {
        let url = url::Url::parse(&base_url).map_err(|_| invalid("base_url: not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid("base_url: must be an http:// or https:// URL"));
        }
    }
    let keys = match input.key {
        Some(k) => k.lines().map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect(),
        None => existing.as_ref().map(|(_, keys)| keys.clone()).unwrap_or_default(),
    };
    if keys.is_empty() {
        return Err(invalid("key: required"));
    }
    if keys.len() > self::keys::MAX_KEYS {
        return Err(invalid(format!("key: a channel holds at most {} keys", self::keys::MAX_KEYS)));
    }
    let models = match input.models {
        Some(m) => clean_list("models", m)?,
        None => old.map(|r| serde_json::from_str(&r.models).unwrap_or_default()).unwrap_or_default(),
    };
    if models.is_empty() {
        return Err(invalid("models: list at least one model"));
    }
    let model_mapping = match input.model_mapping {
        Some(m) => m,
        None => old.map(|r| serde_json::from_str(&r.model_mapping).unwrap_or_default()).unwrap_or_default(),
    };
    if model_mapping.iter().any(|(k, v)| k.trim().is_empty() || v.trim().is_empty()) {
        return Err(invalid("model_mapping: names must not be empty"));
    }
    let groups = match input.groups {
        Some(g) => clean_list("groups", g)?,
        None => {
            old.map(|r| serde_json::from_str(&r.groups).unwrap_or_default()).unwrap_or_else(|| vec!["default".into()])
        }
    };
    if groups.is_empty() {
        return Err(invalid("groups: list at least one group"));
    }
    let priority = input.priority.or(old.map(|r| r.priority)).unwrap_or(0);
    let weight = input.weight.or(old.map(|r| r.weight)).unwrap_or(1);
    if !(0..=1_000_000).contains(&weight) {
        return Err(invalid("weight: 0 to 1000000"));
    }
    let config = match input.config {
        Some(c) => c,
        None => {
            old.map(|r| serde_json::from_str(&r.config).unwrap_or_default()).unwrap_or_else(|| serde_json::json!({}))
        }
    };
    if !config.is_object() {
        return Err(invalid("config: must be a JSON object"));
    }
    if let Err(e) = serde_json::from_value::<crate::providers::wire::ChannelConfig>(config.clone()) {
        return Err(invalid(format!("config: {e}")));
    }
    if bedrock {
        let region = config.get("region").and_then(serde_json::Value::as_str).unwrap_or_default();
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(invalid("config.region: required for type bedrock, e.g. \"us-east-1\""));
        }
    }
    if keeps_stored_keys && let Some(row) = old {
        let before = ChannelType::parse(&row.kind).map(|t| {
            let config = serde_json::from_str(&row.config).unwrap_or_else(|_| serde_json::json!({}));
            destination(&t, &row.base_url, &config)
        });
        if before.as_deref() != Some(destination(&channel_type, &base_url, &config).as_str()) {
            return Err(ChannelError::KeyRequired(KEY_REQUIRED.into()));
        }
    }
    let status = match input.status.as_deref() {
        None => old.map(|r| r.status.clone()).unwrap_or_else(|| "enabled".into()),
        Some("enabled") => "enabled".into(),
        Some("disabled") => "manually_disabled".into(),
        Some(other) => return Err(invalid(format!("status: {other:?} must be enabled or disabled"))),
    };
    Ok(Valid { name, kind, base_url, keys, models, model_mapping, groups, priority, weight, config, status })
}

pub(crate) fn decrypt_keys(state: &AppState, row: &ChannelRow) -> Vec<String> {
    crypto::decrypt(state.secret_key(), &row.keys_encrypted)
        .ok()
        .and_then(|plain| serde_json::from_slice(&plain).ok())
        .unwrap_or_default()
}

fn key_hint(keys: &[String]) -> String {
    keys.first().map_or_else(|| "…".into(), |k| keys::hint(k))
}

fn view(state: &AppState, row: ChannelRow) -> ChannelView {
    let keys = decrypt_keys(state, &row);
    ChannelView {
        id: row.id,
        key_hint: key_hint(&keys),
        key_count: keys.len(),
        models: serde_json::from_str(&row.models).unwrap_or_default(),
        model_mapping: serde_json::from_str(&row.model_mapping).unwrap_or_default(),
        groups: serde_json::from_str(&row.groups).unwrap_or_default(),
        config: serde_json::from_str(&row.config).unwrap_or_default(),
        name: row.name,
        kind: row.kind,
        base_url: row.base_url,
        priority: row.priority,
        weight: row.weight,
        status: row.status,
        disabled_reason: row.disabled_reason,
        test_latency_ms: row.test_latency_ms,
        tested_at: row.tested_at,
        last_error: row.last_error,
        last_error_at: row.last_error_at,
        used_amount: row.used_amount,
        created_at: row.created_at,
        updated_at: row.updated_at,
        health: state.routing().health().find_channel(row.id).map(|h| h.view()).unwrap_or_default(),
    }
}

async fn write(state: &AppState, id: Option<i64>, valid: &Valid) -> Result<i64, ChannelError> {
    let keys_json = serde_json::to_vec(&valid.keys).map_err(|e| ChannelError::Internal(e.to_string()))?;
    let sealed = crypto::encrypt(state.secret_key(), &keys_json).map_err(|e| ChannelError::Internal(e.to_string()))?;
    let (models, mapping, groups, config) =
        (to_json(&valid.models), to_json(&valid.model_mapping), to_json(&valid.groups), valid.config.to_string());
    let columns = ChannelWrite {
        name: &valid.name,
        kind: &valid.kind,
        base_url: &valid.base_url,
        keys_encrypted: &sealed,
        models: &models,
        model_mapping: &mapping,
        groups: &groups,
        priority: valid.priority,
        weight: valid.weight,
        status: &valid.status,
        config: &config,
    };
    let mut tx = state.db().writer().begin().await?;
    let id = match id {
        Some(id) => {
            if !db_channels::update(&mut *tx, id, &columns).await? {
                return Err(ChannelError::NotFound);
            }
            id
        }
        None => db_channels::insert(&mut *tx, &columns).await?,
    };
    let fingerprints: Vec<String> = valid.keys.iter().map(|k| fingerprint(k)).collect();
    db_keys::prune(&mut tx, id, &fingerprints).await?;
    db_channels::replace_abilities(
        &mut tx,
        id,
        &valid.groups,
        &valid.models,
        valid.priority,
        valid.weight,
        valid.status == "enabled",
    )
    .await?;
    tx.commit().await?;
    state.routing().resume(id);
    changes::publish(state, Change::Routing).await;
    Ok(id)
}

/// JSON text of a list or map column.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub async fn create(state: &AppState, input: ChannelInput) -> Result<ChannelView, ChannelError> {
    let valid = validate(input, None)?;
    let id = write(state, None, &valid).await?;
    get(state, id).await
}

pub async fn update(state: &AppState, id: i64, input: ChannelInput) -> Result<ChannelView, ChannelError> {
    let row = db_channels::get(state.db().pool(), id).await?.ok_or(ChannelError::NotFound)?;
    let keys = decrypt_keys(state, &row);
    let valid = validate(input, Some((&row, keys)))?;
    write(state, Some(id), &valid).await?;
    get(state, id).await
}

/// Creates the channel, or updates the one with the same name (bootstrap files).
pub async fn upsert_by_name(state: &AppState, input: ChannelInput) -> Result<ChannelView, ChannelError> {
    let name = input.name.clone().unwrap_or_default();
    match db_channels::id_by_name(state.db().pool(), name.trim()).await? {
        Some(id) => update(state, id, input).await,
        None => create(state, input).await,
    }
}

pub async fn get(state: &AppState, id: i64) -> Result<ChannelView, ChannelError> {
    let row = db_channels::get(state.db().pool(), id).await?.ok_or(ChannelError::NotFound)?;
    Ok(view(state, row))
}

pub async fn list(state: &AppState) -> Result<Vec<ChannelView>, ChannelError> {
    Ok(db_channels::list(state.db().pool()).await?.into_iter().map(|r| view(state, r)).collect())
}

pub async fn delete(state: &AppState, id: i64) -> Result<(), ChannelError> {
    if !db_channels::delete(state.db().writer(), id).await? {
        return Err(ChannelError::NotFound);
    }
    changes::publish(state, Change::Routing).await;
    Ok(())
}

/// Rebuilds the gateway's routing snapshot from the database (after any change).
/// A failed reload is retried a few times: until one succeeds, the change it carries is not live.
pub use crate::state::ProbeOutcome;

/// The outcome of a channel probe.
#[derive(Debug, Serialize)]
pub struct TestResult {
    pub ok: bool,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// The start of the upstream's reply when the probe passed.
    pub sample: Option<String>,
}

/// Sends one tiny chat completion through the channel (one key it would pick now) and measures
/// it. A passing probe of an automatically disabled channel re-enables it.
pub async fn test(state: &AppState, id: i64) -> Result<TestResult, ChannelError> {
    keys::probe(state, id, None).await
}

/// `text` with every occurrence of the channel's keys replaced.
pub(crate) fn redact(text: &str, keys: &[String]) -> String {
    keys.iter().filter(|k| k.len() >= 4).fold(text.to_string(), |t, k| t.replace(k.as_str(), "[redacted]"))
}

/// Probes every automatically disabled channel once, then every automatically disabled key of
/// the enabled ones (the periodic re-test).
pub async fn retest_auto_disabled(state: &AppState) {
    let Ok(rows) = db_channels::list(state.db().pool()).await else {
        return;
    };
    for row in rows.into_iter().filter(|r| r.status == "auto_disabled") {
        if let Err(e) = test(state, row.id).await {
            tracing::warn!(channel = row.id, error = %e, "re-test failed");
        }
    }
    keys::retest_auto_disabled(state).await;
}

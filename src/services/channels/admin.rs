//! The operator's channel actions, shared by `/admin/channels` and `/api/admin/channels*`: each
//! one calls `services::channels` and writes its audit row (never a key: the audit details are
//! the channel's view without its key hint, and a key change is recorded as `"[redacted]"`).

use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::db::channels as db_channels;
use crate::providers::{ChannelType, Protocol};
use crate::services::audit::{self, Actor};
use crate::services::channels::keys::{self, KeyView};
use crate::services::channels::{self, ChannelError, ChannelInput, ChannelView, TestResult};
use crate::state::AppState;

/// At most this many keys in one bulk import.
pub const MAX_IMPORT_KEYS: usize = 500;
/// How many probes "test all" runs at once.
const TEST_ALL_CONCURRENCY: usize = 4;
/// How long fetching an upstream's model list may take.
const FETCH_MODELS_TIMEOUT: Duration = Duration::from_secs(20);
/// At most this many model names are taken from an upstream's list.
const MAX_FETCHED_MODELS: usize = 1000;

/// What the audit log keeps of a channel: everything shown except the key hint.
fn audited(view: &ChannelView) -> Value {
    let mut v = serde_json::to_value(view).unwrap_or(Value::Null);
    if let Some(fields) = v.as_object_mut() {
        for name in ["key_hint", "updated_at", "created_at", "tested_at", "test_latency_ms", "used_amount"] {
            fields.remove(name);
        }
    }
    audit::without_secrets(&v)
}

fn target(id: i64) -> String {
    id.to_string()
}

pub async fn create(state: &AppState, actor: &Actor, input: ChannelInput) -> Result<ChannelView, ChannelError> {
    let view = channels::create(state, input).await?;
    audit::record(state, actor, "channel.create", ("channel", &target(view.id)), audited(&view)).await;
    Ok(view)
}

/// Updates the fields given; a blank or missing key keeps the channel's keys.
pub async fn update(
    state: &AppState,
    actor: &Actor,
    id: i64,
    mut input: ChannelInput,
) -> Result<ChannelView, ChannelError> {
    if input.key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        input.key = None;
    }
    let key_changed = input.key.is_some();
    let before = channels::get(state, id).await?;
    let after = channels::update(state, id, input).await?;
    let mut details = audit::changes(&audited(&before), &audited(&after));
    if key_changed {
        details["before"]["key"] = json!("[redacted]");
        details["after"]["key"] = json!("[redacted]");
    }
    audit::record(state, actor, "channel.update", ("channel", &target(id)), details).await;
    Ok(after)
}

/// Enables, or disables by hand (an enabled channel also clears an automatic disable's reason).
pub async fn set_enabled(state: &AppState, actor: &Actor, id: i64, enabled: bool) -> Result<ChannelView, ChannelError> {
    let before = channels::get(state, id).await?;
    let status = if enabled { "enabled" } else { "disabled" };
    let after =
        channels::update(state, id, ChannelInput { status: Some(status.into()), ..ChannelInput::default() }).await?;
    let action = if enabled { "channel.enable" } else { "channel.disable" };
    let details = audit::changes(&audited(&before), &audited(&after));
    audit::record(state, actor, action, ("channel", &target(id)), details).await;
    Ok(after)
}

pub async fn delete(state: &AppState, actor: &Actor, id: i64) -> Result<(), ChannelError> {
    let before = channels::get(state, id).await?;
    channels::delete(state, id).await?;
    audit::record(state, actor, "channel.delete", ("channel", &target(id)), audited(&before)).await;
    Ok(())
}

/// Probes the channel (latency and the start of the reply); the outcome is audited too, since
/// a passing probe may re-enable the channel.
pub async fn test(state: &AppState, actor: &Actor, id: i64) -> Result<TestResult, ChannelError> {
    let result = channels::test(state, id).await?;
    let details = json!({ "ok": result.ok, "latency_ms": result.latency_ms, "error": result.error });
    audit::record(state, actor, "channel.test", ("channel", &target(id)), details).await;
    Ok(result)
}

/// Enables one of the channel's keys, or disables it by hand; its view after.
pub async fn set_key_enabled(
    state: &AppState,
    actor: &Actor,
    id: i64,
    key: &str,
    enabled: bool,
) -> Result<KeyView, ChannelError> {
    keys::set_enabled(state, id, key, enabled).await?;
    let action = if enabled { "channel.key_enable" } else { "channel.key_disable" };
    audit::record(state, actor, action, ("channel", &target(id)), json!({ "key": key })).await;
    keys::list(state, id).await?.into_iter().find(|k| k.fingerprint == key).ok_or(ChannelError::NotFound)
}

/// Probes the channel through one of its keys (a passing probe re-enables it).
pub async fn test_key(state: &AppState, actor: &Actor, id: i64, key: &str) -> Result<TestResult, ChannelError> {
    keys::known(state, id, key).await?;
    let result = keys::probe(state, id, Some(key)).await?;
    let details = json!({ "key": key, "ok": result.ok, "latency_ms": result.latency_ms, "error": result.error });
    audit::record(state, actor, "channel.key_test", ("channel", &target(id)), details).await;
    Ok(result)
}

/// Adds keys to the channel in bulk (one per line); the channel after, and how many were new.
pub async fn add_keys(
    state: &AppState,
    actor: &Actor,
    id: i64,
    text: &str,
) -> Result<(ChannelView, usize), ChannelError> {
    let (view, added) = keys::add(state, id, text).await?;
    let details = json!({ "added": added, "keys": view.key_count });
    audit::record(state, actor, "channel.keys_add", ("channel", &target(id)), details).await;
    Ok((view, added))
}

/// One line of "test all".
#[derive(Debug, Serialize)]
pub struct TestLine {
    pub id: i64,
    pub name: String,
    #[serde(flatten)]
    pub result: TestResult,
}

/// Probes every channel, a few at a time, in id order.
pub async fn test_all(state: &AppState, actor: &Actor) -> Result<Vec<TestLine>, ChannelError> {
    let list = channels::list(state).await?;
    let mut lines: Vec<TestLine> = futures_util::stream::iter(list)
        .map(|c| async move {
            let result = channels::test(state, c.id).await;
            result.ok().map(|result| TestLine { id: c.id, name: c.name, result })
        })
        .buffer_unordered(TEST_ALL_CONCURRENCY)
        .filter_map(|line| async move { line })
        .collect()
        .await;
    lines.sort_by_key(|l| l.id);
    let summary: Vec<Value> = lines.iter().map(|l| json!({ "id": l.id, "ok": l.result.ok })).collect();
    audit::record(state, actor, "channel.test_all", ("channel", "*"), json!({ "results": summary })).await;
    Ok(lines)
}

/// A copy of the channel (same keys, models and settings), named "<name> (copy)" and disabled
/// so it serves nothing until the operator has looked at it.
pub async fn copy(state: &AppState, actor: &Actor, id: i64) -> Result<ChannelView, ChannelError> {
    let row = db_channels::get(state.db().pool(), id).await?.ok_or(ChannelError::NotFound)?;
    let keys = channels::decrypt_keys(state, &row);
    let source = channels::get(state, id).await?;
    let mut name: String = source.name.chars().take(93).collect();
    name.push_str(" (copy)");
    let input = ChannelInput {
        name: Some(name),
        kind: Some(source.kind),
        base_url: Some(source.base_url),
        key: Some(keys.join("\n")),
        models: Some(source.models),
        model_mapping: Some(source.model_mapping),
        groups: Some(source.groups),
        priority: Some(source.priority),
        weight: Some(source.weight),
        config: Some(source.config),
        status: Some("disabled".into()),
    };
    let view = channels::create(state, input).await?;
    let mut details = audited(&view);
    details["copied_from"] = json!(id);
    audit::record(state, actor, "channel.copy", ("channel", &target(view.id)), details).await;
    Ok(view)
}

/// A bulk import: the channel's fields once, and many keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportInput {
    /// The channel's fields; its `key` is ignored (the keys come from `keys`).
    pub channel: ChannelInput,
    /// One key per line.
    pub keys: String,
    /// `separate` (default): one channel per key, named "<name> #1", "#2"…;
    /// `rotation`: one channel holding every key, used in rotation.
    #[serde(default)]
    pub mode: Option<String>,
}

/// Creates the channels of a bulk import (all or, on the first invalid one, those before it).
pub async fn import(state: &AppState, actor: &Actor, input: ImportInput) -> Result<Vec<ChannelView>, ChannelError> {
    let keys: Vec<String> = input.keys.lines().map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect();
    if keys.is_empty() {
        return Err(ChannelError::Invalid("keys: one key per line, at least one".into()));
    }
    if keys.len() > MAX_IMPORT_KEYS {
        return Err(ChannelError::Invalid(format!("keys: at most {MAX_IMPORT_KEYS} in one import")));
    }
    let rotation = match input.mode.as_deref() {
        None | Some("separate") => false,
        Some("rotation") => true,
        Some(other) => return Err(ChannelError::Invalid(format!("mode: {other:?} must be separate or rotation"))),
    };
    let base = input.channel;
    let name = base.name.clone().unwrap_or_default().trim().to_string();
    let make = |key: String, name: String| ChannelInput {
        name: Some(name),
        kind: base.kind.clone(),
        base_url: base.base_url.clone(),
        key: Some(key),
        models: base.models.clone(),
        model_mapping: base.model_mapping.clone(),
        groups: base.groups.clone(),
        priority: base.priority,
        weight: base.weight,
        config: base.config.clone(),
        status: base.status.clone(),
    };
    let inputs: Vec<ChannelInput> = if rotation {
        vec![make(keys.join("\n"), name)]
    } else {
        let short: String = name.chars().take(90).collect();
        keys.into_iter().zip(1..).map(|(key, n)| make(key, format!("{short} #{n}"))).collect()
    };
    let mut created = Vec::with_capacity(inputs.len());
    for input in inputs {
        created.push(channels::create(state, input).await?);
    }
    let ids: Vec<i64> = created.iter().map(|c| c.id).collect();
    let details = json!({ "mode": if rotation { "rotation" } else { "separate" }, "channels": ids,
        "keys": created.iter().map(|c| c.key_count).sum::<usize>() });
    audit::record(state, actor, "channel.import", ("channel", "*"), details).await;
    Ok(created)
}

/// The model names the channel's upstream lists at `GET {base_url}/models` (OpenAI-compatible
/// channels only), sorted. With `save`, they become the channel's models.
pub async fn fetch_models(state: &AppState, actor: &Actor, id: i64, save: bool) -> Result<Vec<String>, ChannelError> {
    let row = db_channels::get(state.db().pool(), id).await?.ok_or(ChannelError::NotFound)?;
    let kind = ChannelType::parse(&row.kind).ok_or_else(|| ChannelError::Invalid("unknown channel type".into()))?;
    if kind.protocol != Protocol::OpenAi {
        return Err(ChannelError::Invalid(format!(
            "type {}: fetching the model list needs an OpenAI-compatible upstream",
            row.kind
        )));
    }
    let base = if row.base_url.is_empty() { kind.preset.default_base_url.unwrap_or_default() } else { &row.base_url };
    let keys = channels::decrypt_keys(state, &row);
    let key = keys.first().cloned().unwrap_or_default();
    let unreachable = || ChannelError::Invalid("the upstream's model list could not be fetched".into());
    // The gateway's own client: no redirects followed, the gateway's connect timeout.
    let response = state
        .upstream()
        .client()
        .get(format!("{}/models", base.trim_end_matches('/')))
        .bearer_auth(&key)
        .timeout(FETCH_MODELS_TIMEOUT)
        .send()
        .await
        .map_err(|_| unreachable())?;
    if !response.status().is_success() {
        return Err(ChannelError::Invalid(format!(
            "the upstream answered HTTP {} to GET /models",
            response.status().as_u16()
        )));
    }
    let body: Value = response.json().await.map_err(|_| unreachable())?;
    let mut models: Vec<String> = body
        .get("data")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str))
                .filter(|m| !m.trim().is_empty() && m.len() <= 200 && !keys.iter().any(|k| m.contains(k.as_str())))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    models.sort();
    models.dedup();
    models.truncate(MAX_FETCHED_MODELS);
    if save && !models.is_empty() {
        update(state, actor, id, ChannelInput { models: Some(models.clone()), ..ChannelInput::default() }).await?;
    }
    Ok(models)
}

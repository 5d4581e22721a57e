//! The upstream keys of one channel, each on its own: its health (stored state, this replica's
//! counters and cooldown), disabling and enabling it by hand, probing it, and adding keys in
//! bulk. A key is named by its fingerprint; the key itself never leaves in clear.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ChannelError, ChannelView, ProbeOutcome, TestResult, decrypt_keys, invalid, redact};
use crate::db::channel_keys::{self as db_keys, KeyStateRow};
use crate::db::channels as db_channels;
use crate::domain::time::now_ms;
use crate::services::changes::{self, Change};
use crate::services::routing::health::HealthView;
use crate::services::routing::keys::fingerprint;
use crate::state::AppState;

/// At most this many keys in one channel.
pub const MAX_KEYS: usize = 1000;

/// One key as the API and the console show it: never the key, only its last characters.
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// Its place in the channel's list, from 1.
    pub index: usize,
    pub fingerprint: String,
    pub hint: String,
    /// `active`, `auto_disabled` or `manually_disabled`.
    pub status: String,
    /// Why it was disabled automatically.
    pub reason: Option<String>,
    pub changed_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub tested_at: Option<i64>,
    pub test_latency_ms: Option<i64>,
    /// Attempts through the key on this replica since it started, how many failed, and its
    /// moving time to first token, latency and error rate.
    #[serde(flatten)]
    pub health: HealthView,
    /// Until when (unix ms) this replica sends the key nothing: an upstream's `Retry-After`,
    /// or a refusal not yet in its routing snapshot.
    pub cooling_until: Option<i64>,
}

/// The last 4 characters of a key long enough to keep the rest unguessable, else nothing.
pub(super) fn hint(key: &str) -> String {
    if key.chars().count() < 12 {
        return "…".into();
    }
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

/// The channel's keys with their health, in the channel's order.
pub async fn list(state: &AppState, id: i64) -> Result<Vec<KeyView>, ChannelError> {
    let row = db_channels::get(state.db().pool(), id).await?.ok_or(ChannelError::NotFound)?;
    let stored = db_keys::of_channel(state.db().pool(), id).await?;
    let now = now_ms();
    let views = decrypt_keys(state, &row)
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let fingerprint = fingerprint(key);
            let row: Option<&KeyStateRow> = stored.iter().find(|s| s.fingerprint == fingerprint);
            let stats = state.routing().health().find_key(id, &fingerprint);
            KeyView {
                index: i + 1,
                hint: hint(key),
                status: row.map_or_else(|| "active".to_string(), |r| r.status.clone()),
                reason: row.and_then(|r| r.reason.clone()),
                changed_at: row.map(|r| r.changed_at),
                last_error: row.and_then(|r| r.last_error.clone()),
                last_error_at: row.and_then(|r| r.last_error_at),
                tested_at: row.and_then(|r| r.tested_at),
                test_latency_ms: row.and_then(|r| r.test_latency_ms),
                health: stats.as_ref().map(|s| s.health.view()).unwrap_or_default(),
                cooling_until: stats.as_ref().and_then(|s| s.held_until(now)),
                fingerprint,
            }
        })
        .collect();
    Ok(views)
}

/// The channel's key of that fingerprint, or `NotFound`.
pub(super) async fn known(state: &AppState, id: i64, key: &str) -> Result<(), ChannelError> {
    let row = db_channels::get(state.db().pool(), id).await?.ok_or(ChannelError::NotFound)?;
    if decrypt_keys(state, &row).iter().any(|k| fingerprint(k) == key) { Ok(()) } else { Err(ChannelError::NotFound) }
}

/// Enables a key, or disables it by hand (a disabled key gets no traffic and no automatic
/// re-test). Effective on the next request.
pub async fn set_enabled(state: &AppState, id: i64, key: &str, enabled: bool) -> Result<(), ChannelError> {
    known(state, id, key).await?;
    let mut conn = state.db().writer().acquire().await?;
    db_keys::set_status(&mut conn, id, key, if enabled { "active" } else { "manually_disabled" }).await?;
    drop(conn);
    if enabled && let Some(stats) = state.routing().health().find_key(id, key) {
        stats.release();
    }
    changes::publish(state, Change::Routing).await;
    Ok(())
}

/// Probes the channel through one key (`None`: one it would pick now) and records the outcome on
/// the key and the channel. A passing probe re-enables an automatically disabled key and channel.
pub async fn probe(state: &AppState, id: i64, key: Option<&str>) -> Result<TestResult, ChannelError> {
    let row = db_channels::get(state.db().pool(), id).await?.ok_or(ChannelError::NotFound)?;
    let models: Vec<String> = serde_json::from_str(&row.models).unwrap_or_default();
    let model = models.first().cloned().unwrap_or_default();
    let started = Instant::now();
    let timeout = state.site().gateway.first_byte_timeout.min(Duration::from_secs(30));
    let probe = state.upstream().probe_channel(state, &row, &model, key);
    let (probed, sample, error) = match tokio::time::timeout(timeout, probe).await {
        Ok(ProbeOutcome::Unusable(why)) => return Err(invalid(why)),
        // An upstream may quote the key it refused: never pass it on.
        Ok(ProbeOutcome::Done { keys, key, result: Ok(sample) }) => (Some(key), Some(redact(&sample, &keys)), None),
        Ok(ProbeOutcome::Done { keys, key, result: Err(e) }) => (Some(key), None, Some(redact(&e, &keys))),
        Err(_) => (key.map(str::to_string), None, Some("the upstream did not answer in time".to_string())),
    };
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let mut conn = state.db().writer().acquire().await?;
    if let Some(probed) = &probed {
        let outcome = match &error {
            None => Ok(latency_ms),
            Some(e) => Err(e.as_str()),
        };
        db_keys::record_test(&mut conn, id, probed, outcome).await?;
    }
    match &error {
        None => {
            db_channels::record_test(&mut *conn, id, latency_ms).await?;
            if db_channels::reenable_auto_disabled(&mut conn, id).await? {
                tracing::info!(channel = id, "channel re-enabled after a passing probe");
            }
            if let Some(probed) = &probed {
                if db_keys::reenable_auto_disabled(&mut conn, id, probed).await? {
                    tracing::info!(channel = id, key = %probed, "upstream key re-enabled after a passing probe");
                }
                if let Some(stats) = state.routing().health().find_key(id, probed) {
                    stats.release();
                }
            }
            state.routing().resume(id);
            drop(conn);
            changes::publish(state, Change::Routing).await;
        }
        Some(error) => db_channels::record_error(&mut *conn, id, error).await?,
    }
    Ok(TestResult { ok: error.is_none(), latency_ms, error, sample })
}

/// Adds keys to the channel (one per line; those it holds already are skipped); returns how
/// many were added.
pub async fn add(state: &AppState, id: i64, text: &str) -> Result<(ChannelView, usize), ChannelError> {
    let row = db_channels::get(state.db().pool(), id).await?.ok_or(ChannelError::NotFound)?;
    let mut keys = decrypt_keys(state, &row);
    let before = keys.len();
    let new: Vec<&str> = text.lines().map(str::trim).filter(|k| !k.is_empty()).collect();
    if new.is_empty() {
        return Err(invalid("keys: one key per line, at least one"));
    }
    if new.iter().any(|k| k.len() > 4096) {
        return Err(invalid("keys: a key is at most 4096 characters"));
    }
    for key in new {
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_string());
        }
    }
    if keys.len() > MAX_KEYS {
        return Err(invalid(format!("keys: a channel holds at most {MAX_KEYS} keys")));
    }
    let added = keys.len() - before;
    let input = super::ChannelInput { key: Some(keys.join("\n")), ..super::ChannelInput::default() };
    let view = super::update(state, id, input).await?;
    Ok((view, added))
}

/// Probes every automatically disabled key of the enabled channels once (the periodic re-test).
pub async fn retest_auto_disabled(state: &AppState) {
    let Ok(states) = db_keys::all(state.db().pool()).await else {
        return;
    };
    for key in states.into_iter().filter(|k| k.status == "auto_disabled") {
        let enabled = db_channels::get(state.db().pool(), key.channel_id).await.ok().flatten();
        if enabled.is_none_or(|c| c.status != "enabled") {
            continue;
        }
        if let Err(e) = probe(state, key.channel_id, Some(&key.fingerprint)).await {
            tracing::warn!(channel = key.channel_id, key = %key.fingerprint, error = %e, "key re-test failed");
        }
    }
}

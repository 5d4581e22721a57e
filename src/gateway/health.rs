//! Acting on an upstream's verdict about a key: a key whose upstream refused it (or the credit
//! behind it) is taken out of routing at once and disabled in the database (behind a request;
//! before an operator's probe answers), and every replica is told. A channel goes with its last
//! available key: it is disabled as a whole, as a one-key channel always was.
//!
//! And counting each attempt's outcome on the key, the channel and its circuit breaker.

use std::time::Duration;

use super::upstream::Attempt;
use crate::db::channel_keys as db_keys;
use crate::db::channels as db_channels;
use crate::domain::time::now_ms;
use crate::services::changes::{self, Change};
use crate::services::routing::health::{BreakerPolicy, Transition};
use crate::services::routing::keys::REFUSAL_HOLD_MS;
use crate::services::routing::{Channel, KeyedChannel};
use crate::state::AppState;

/// What a refusal takes out: one key of a channel that has others, or the channel.
enum Refused {
    Key { channel_id: i64, fingerprint: String },
    Channel(i64),
}

/// Takes the refused key (or its channel) out of this replica's routing now.
fn suspend(state: &AppState, channel: &KeyedChannel) -> Refused {
    if channel.has_other_key(channel.key) {
        let key = channel.key();
        key.stats.hold_off(now_ms().saturating_add(REFUSAL_HOLD_MS));
        Refused::Key { channel_id: channel.id, fingerprint: key.fingerprint.clone() }
    } else {
        state.routing().suspend(channel.id);
        Refused::Channel(channel.id)
    }
}

/// Disables a key (or channel) whose upstream refused it, without delaying the request.
pub(super) fn disable_in_background(state: &AppState, channel: &KeyedChannel, reason: String) {
    // Effective at once for every request; the database and the snapshot follow.
    let refused = suspend(state, channel);
    let state = state.clone();
    state.tasks().clone().spawn(async move { record_disabled(&state, refused, &reason).await });
}

/// Disables it before returning: an operator's probe awaits this before answering, so a later
/// probe that passes cannot be overtaken by this one's disabling.
pub(super) async fn disable(state: &AppState, channel: &KeyedChannel, reason: &str) {
    let refused = suspend(state, channel);
    record_disabled(state, refused, reason).await;
}

/// Disables the key or channel in the database (if it is enabled) and refreshes every replica's
/// routing.
async fn record_disabled(state: &AppState, refused: Refused, reason: &str) {
    let result = async {
        let mut conn = state.db().writer().acquire().await?;
        match &refused {
            Refused::Key { channel_id, fingerprint } => {
                db_keys::auto_disable(&mut conn, *channel_id, fingerprint, reason).await
            }
            Refused::Channel(id) => db_channels::auto_disable(&mut conn, *id, reason).await,
        }
    }
    .await;
    match (result, &refused) {
        (Ok(true), Refused::Key { channel_id, fingerprint }) => {
            tracing::warn!(channel = channel_id, key = %fingerprint, %reason, "upstream key disabled automatically");
            changes::publish(state, Change::Routing).await;
        }
        (Ok(true), Refused::Channel(id)) => {
            tracing::warn!(channel = id, %reason, "channel disabled automatically");
            changes::publish(state, Change::Routing).await;
        }
        (Ok(false), _) => {}
        (Err(e), _) => tracing::error!(error = %e, "could not disable the refused key or channel"),
    }
}

/// Counts an attempt that took `elapsed` on its key, and on its channel and circuit breaker unless
/// the failure was the key's alone (the key is now out of routing and the channel has others).
/// An answer counts its time as the time to first token; the request's own error (a 400) counts
/// as the upstream being up, with no time.
pub(super) fn count(channel: &KeyedChannel, user: i64, outcome: &Attempt, elapsed: Duration, breaker: &BreakerPolicy) {
    let sample = match outcome {
        Attempt::Answered(_) => Some(Some(elapsed)),
        Attempt::Fail(_) => None,
        Attempt::Retry(_) | Attempt::Disable { .. } => Some(None),
    };
    let key = &channel.key().stats.health;
    if let Some(sample) = sample {
        key.record(sample);
    }
    let failed = sample == Some(None);
    let now = now_ms();
    if failed && channel.failed_alone(now) {
        return;
    }
    if let Some(sample) = sample {
        channel.health.health.record(sample);
    }
    let changed = channel.health.breaker.record(!failed, user, now, breaker);
    circuit_changed(channel, changed);
}

/// Logs a change of a channel's circuit.
pub(super) fn circuit_changed(channel: &Channel, changed: Option<Transition>) {
    match changed {
        Some(Transition::Opened) => {
            tracing::warn!(channel = channel.id, name = %channel.name, "circuit opened: the channel rests for the cooldown")
        }
        Some(to) => {
            tracing::info!(channel = channel.id, name = %channel.name, circuit = to.as_str(), "circuit changed")
        }
        None => {}
    }
}

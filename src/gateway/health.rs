//! Acting on an upstream's verdict about a channel: a channel whose key or credit was refused
//! is taken out of routing at once and disabled in the database (behind a request; before an
//! operator's probe answers), and every replica is told.

use crate::db::channels as db_channels;
use crate::services::changes::{self, Change};
use crate::state::AppState;

/// Disables a channel whose upstream refused its key or credit, without delaying the request.
pub(super) fn disable_in_background(state: &AppState, channel_id: i64, reason: String) {
    // Effective at once for every request; the database and the snapshot follow.
    state.routing().suspend(channel_id);
    let state = state.clone();
    state.tasks().clone().spawn(async move { record_disabled(&state, channel_id, &reason).await });
}

/// Disables the channel before returning: an operator's probe awaits this before answering, so
/// a later probe that passes cannot be overtaken by this one's disabling.
pub(super) async fn disable(state: &AppState, channel_id: i64, reason: &str) {
    state.routing().suspend(channel_id);
    record_disabled(state, channel_id, reason).await;
}

/// Disables the channel in the database (if it is enabled) and refreshes every replica's routing.
async fn record_disabled(state: &AppState, channel_id: i64, reason: &str) {
    let result = async {
        let mut conn = state.db().writer().acquire().await?;
        db_channels::auto_disable(&mut conn, channel_id, reason).await
    }
    .await;
    match result {
        Ok(true) => {
            tracing::warn!(channel = channel_id, %reason, "channel disabled automatically");
            changes::publish(state, Change::Routing).await;
        }
        Ok(false) => {}
        Err(e) => tracing::error!(channel = channel_id, error = %e, "could not disable the channel"),
    }
}

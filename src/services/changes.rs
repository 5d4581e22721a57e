//! What one replica changes, every replica applies within a second: the caches a change
//! invalidates (the routing snapshot, the site settings, the key cache) are refreshed here at
//! once, and the other replicas are told through Postgres `NOTIFY` (one channel; the payload says
//! who sent it, what changed and its id). Each replica listens on a dedicated connection,
//! reconnects with backoff, and reloads everything after a reconnect, since notices sent while it
//! was away are lost. The periodic reload (`BURNCLOUD_CACHE_TTL_SECS`) stays as the fallback.
//! SQLite runs one process: changes apply here and nothing is sent.

use std::time::Duration;

use crate::config::Backend;
use crate::db::changes::{self as db_changes, Listener};
use crate::services::settings::site;
use crate::state::{AppState, ListenerState};

/// Something other replicas cache that changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Channels, abilities, prices, groups, group prices or capabilities: the routing snapshot.
    Routing,
    /// The site settings.
    Settings,
    /// One API key (disabled, limits changed, deleted).
    Key(i64),
    /// A key hash that may be cached as unknown (a key created with a fixed value).
    KeyHash(String),
    /// A user's keys (disabled, regrouped, role changed).
    User(i64),
    /// Every cached key.
    AllKeys,
    /// A replica is short of the user's balance while others' leases reserve it: each gives back
    /// the unpromised part of its lease for the user.
    LeaseWanted(i64),
}

impl Change {
    fn encode(&self) -> String {
        match self {
            Self::Routing => "routing".into(),
            Self::Settings => "settings".into(),
            Self::Key(id) => format!("key {id}"),
            Self::KeyHash(hash) => format!("key_hash {hash}"),
            Self::User(id) => format!("user {id}"),
            Self::AllKeys => "all_keys".into(),
            Self::LeaseWanted(id) => format!("lease_wanted {id}"),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        let (kind, arg) = text.split_once(' ').unwrap_or((text, ""));
        Some(match kind {
            "routing" => Self::Routing,
            "settings" => Self::Settings,
            "key" => Self::Key(arg.parse().ok()?),
            "key_hash" if arg.len() <= 128 && arg.chars().all(|c| c.is_ascii_hexdigit()) => Self::KeyHash(arg.into()),
            "user" => Self::User(arg.parse().ok()?),
            "all_keys" => Self::AllKeys,
            "lease_wanted" => Self::LeaseWanted(arg.parse().ok()?),
            _ => return None,
        })
    }
}

/// A notice's payload: the sender (its lease holder name, so a replica skips its own) and the
/// change, separated by a tab.
fn payload(origin: &str, change: &Change) -> String {
    format!("{origin}\t{}", change.encode())
}

fn parse(payload: &str) -> Option<(&str, Change)> {
    let (origin, change) = payload.split_once('\t')?;
    Some((origin, Change::decode(change)?))
}

/// Applies `change` on this replica, then tells the others. A notice that cannot be sent is
/// logged: the others catch up at their next periodic reload.
pub async fn publish(state: &AppState, change: Change) {
    apply(state, &change).await;
    let origin = state.billing().leases().holder();
    if let Err(e) = db_changes::notify(state.db(), &payload(origin, &change)).await {
        tracing::warn!(error = %e, change = change.encode(), "telling the other replicas failed; they reload within the cache TTL");
    }
}

/// Refreshes what `change` invalidates, on this replica only.
async fn apply(state: &AppState, change: &Change) {
    match change {
        Change::Routing => reload_routing(state).await,
        Change::Settings => reload_settings(state).await,
        Change::Key(id) => state.keys().invalidate_key(*id),
        Change::KeyHash(hash) => state.keys().invalidate_hash(hash),
        Change::User(id) => state.keys().invalidate_user(*id),
        Change::AllKeys => state.keys().invalidate_all(),
        Change::LeaseWanted(user) => {
            // On the task tracker: the give-back waits for the billing writer, and the listener
            // must not.
            let (state, user) = (state.clone(), *user);
            state.tasks().clone().spawn(async move {
                if let Err(e) = state.billing().give_back_lease(user).await {
                    tracing::warn!(error = %e, user, "giving a lease back for another replica failed");
                }
            });
        }
    }
}

/// Rebuilds the routing snapshot (channels, tiers, prices) from the database.
pub async fn reload_routing(state: &AppState) {
    let strategy = state.site().gateway.strategy;
    state.routing().reload_retrying(state.db(), state.secret_key(), strategy).await;
}

/// Reloads the site settings and puts them in force.
pub async fn reload_settings(state: &AppState) {
    match site::load(state.db(), state.config(), state.secret_key()).await {
        Ok(site) => state.set_site(site),
        Err(e) => tracing::warn!(error = %e, "reloading the site settings failed"),
    }
}

/// Everything, after a reconnect (notices sent while away are lost). Settings first: the routing
/// snapshot reads its default strategy from them.
async fn apply_all(state: &AppState) {
    reload_settings(state).await;
    reload_routing(state).await;
    state.keys().invalidate_all();
}

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Listens for other replicas' changes until shutdown (Postgres only). Runs on the app's task
/// tracker.
pub async fn listen(state: AppState) {
    if state.db().backend() != Backend::Postgres {
        return;
    }
    let url = state.config().database.url.expose().to_string();
    let own = state.billing().leases().holder().to_string();
    let mut backoff = Duration::from_millis(250);
    let mut connected_before = false;
    loop {
        state.set_change_listener(ListenerState::Connecting);
        let connect = tokio::select! {
            () = state.shutdown().cancelled() => return,
            result = Listener::connect(&url) => result,
        };
        let mut listener = match connect {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "change listener: cannot connect");
                tokio::select! {
                    () = state.shutdown().cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(250);
        if connected_before {
            tracing::info!("change listener reconnected: reloading what notices may have been missed");
            apply_all(&state).await;
        }
        // Only now: "listening" means caught up as well as connected.
        state.set_change_listener(ListenerState::Listening);
        connected_before = true;
        loop {
            let next = tokio::select! {
                () = state.shutdown().cancelled() => return,
                next = listener.next() => next,
            };
            match next {
                Ok(Some(text)) => match parse(&text) {
                    Some((origin, _)) if origin == own => {}
                    Some((_, change)) => apply(&state, &change).await,
                    None => {
                        tracing::warn!(notice = %text.chars().take(80).collect::<String>(), "change listener: unreadable notice")
                    }
                },
                Ok(None) => {
                    tracing::warn!("change listener: connection lost; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_garbage_is_refused() {
        for change in [
            Change::Routing,
            Change::Settings,
            Change::Key(42),
            Change::KeyHash("ab12".into()),
            Change::User(7),
            Change::AllKeys,
            Change::LeaseWanted(9),
        ] {
            let text = payload("host:8080:x1", &change);
            assert_eq!(parse(&text), Some(("host:8080:x1", change)));
        }
        for bad in ["", "no-tab", "a\tkey x", "a\tkey_hash not-hex!", "a\tuser", "a\tlease_wanted x", "a\tdrop_tables"]
        {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}

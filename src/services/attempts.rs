//! The attempt limits of the anonymous forms that cost a password hash or send mail (login,
//! signup, forgot and reset password, code redemption), as `services::throttle` defines them:
//! counted in Redis when the replicas share one (`BURNCLOUD_REDIS_URL`), so N replicas allow what
//! one would; else, or while Redis does not answer, by this replica's own [`LoginThrottle`].
//!
//! In Redis each key is a sorted set of attempt times, judged and recorded by one script. The
//! account's keys carry a generation: "open this account again from everywhere" (a used reset
//! link) bumps it, which retires every key of the account at once.

use std::net::IpAddr;
use std::time::Duration;

use crate::services::throttle::{
    LoginThrottle, PER_ACCOUNT, PER_CLIENT, PER_CLIENT_ACCOUNT, WINDOW, account_key, client_block,
};
use crate::state::AppState;

fn client_part(ip: Option<IpAddr>) -> String {
    client_block(ip).map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}

fn generation_key(account: &str) -> String {
    format!("bc:thr:g:{account}")
}

/// The Redis keys of an attempt, with their limits, as the local throttle keys them.
async fn keys(state: &AppState, ip: Option<IpAddr>, scope: &str, email: Option<&str>) -> Option<Vec<(String, usize)>> {
    let client = client_part(ip);
    let mut keys = vec![(format!("bc:thr:c:{client}"), PER_CLIENT)];
    match email {
        Some(email) => {
            let account = account_key(scope, email);
            let generation = state.counters().read(&generation_key(&account)).await?;
            keys.push((format!("bc:thr:ca:{generation}:{client}:{account}"), PER_CLIENT_ACCOUNT));
            keys.push((format!("bc:thr:a:{generation}:{account}"), PER_ACCOUNT));
        }
        None => keys.push((format!("bc:thr:ca:0:{client}:{}", account_key(scope, "")), PER_CLIENT)),
    }
    Some(keys)
}

fn local(state: &AppState) -> &LoginThrottle {
    state.login_throttle()
}

/// Counts an attempt, or `Err(wait)` when one of its limits is reached (see
/// [`LoginThrottle::attempt`]).
pub async fn attempt(state: &AppState, ip: Option<IpAddr>, scope: &str, email: Option<&str>) -> Result<(), Duration> {
    if let Some(keys) = keys(state, ip, scope, email).await
        && let Some(wait) = state.counters().window_attempt(&keys, WINDOW).await
    {
        return if wait.is_zero() { Ok(()) } else { Err(wait.max(Duration::from_secs(1))) };
    }
    local(state).attempt(ip, scope, email)
}

/// A successful attempt: its slots are given back and the client's record for the account is
/// cleared (see [`LoginThrottle::succeeded`]).
pub async fn succeeded(state: &AppState, ip: Option<IpAddr>, scope: &str, email: &str) {
    if let Some(keys) = keys(state, ip, scope, Some(email)).await
        && let [(client, _), (client_account, _), (account, _)] = keys.as_slice()
        && state
            .counters()
            .window_give_back(&[client.clone(), account.clone()], std::slice::from_ref(client_account))
            .await
    {
        return;
    }
    local(state).succeeded(ip, scope, email);
}

/// An attempt that was never judged: its slots are given back (see [`LoginThrottle::give_back`]).
pub async fn give_back(state: &AppState, ip: Option<IpAddr>, scope: &str, email: &str) {
    if let Some(keys) = keys(state, ip, scope, Some(email)).await {
        let all: Vec<String> = keys.into_iter().map(|(key, _)| key).collect();
        if state.counters().window_give_back(&all, &[]).await {
            return;
        }
    }
    local(state).give_back(ip, scope, email);
}

/// The account proved its owner: it is open again from everywhere.
pub async fn clear_account(state: &AppState, scope: &str, email: &str) {
    let account = account_key(scope, email);
    // The local record too: it may hold attempts counted while Redis was away.
    local(state).clear_account(scope, email);
    let _ = state.counters().bump(&generation_key(&account)).await;
}

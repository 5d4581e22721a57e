//! Multi-key channels (issue 17): each upstream key of a channel on its own. A refused key is
//! disabled alone and its traffic moves to the others (the request that met it too, through
//! another key of the same channel); a probe brings it back; the channel stops only with its last
//! key; an upstream 429's `Retry-After` cools only that key; operators add keys in bulk and
//! disable or enable one by hand. A key is never shown back, only its hint and fingerprint.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use sqlx::Row;

use crate::console_auth::Browser;
use crate::gateway::chat;
use crate::support::helpers::{Backend, TestApp, serve_locally, spawn_app, spawn_app_env};

db_tests!(
    one_refused_key_of_three_moves_traffic_to_the_other_two_until_a_probe_brings_it_back,
    the_channel_stops_with_its_last_key_and_the_periodic_probe_brings_every_key_back,
    an_upstream_429_cools_only_that_key_for_its_retry_after,
    operators_add_keys_in_bulk_and_disable_one_by_hand,
    the_console_shows_each_keys_health_and_acts_on_one,
);

const K1: &str = "sk-upstream-key-one-000000000001";
const K2: &str = "sk-upstream-key-two-000000000002";
const K3: &str = "sk-upstream-key-three-0000000003";

/// An OpenAI-compatible upstream that answers each key as told: refused (401 `invalid_api_key`),
/// rate limited (429 with `Retry-After`), or served; it counts the requests of each key.
#[derive(Clone, Default)]
struct KeyedUpstream {
    refused: Arc<Mutex<HashSet<String>>>,
    limited: Arc<Mutex<HashMap<String, u64>>>,
    seen: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl KeyedUpstream {
    async fn start() -> Self {
        let mut upstream = Self::default();
        let app = Router::new().fallback(answer).with_state(upstream.clone());
        upstream.port = serve_locally(app).await;
        upstream
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn refuse(&self, key: &str, refused: bool) {
        let mut set = self.refused.lock().unwrap();
        if refused {
            set.insert(key.to_string())
        } else {
            set.remove(key)
        };
    }

    fn limit(&self, key: &str, retry_after_secs: Option<u64>) {
        let mut map = self.limited.lock().unwrap();
        match retry_after_secs {
            Some(secs) => map.insert(key.to_string(), secs),
            None => map.remove(key),
        };
    }

    fn count(&self, key: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|k| *k == key).count()
    }

    fn total(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn answer(State(upstream): State<KeyedUpstream>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    upstream.seen.lock().unwrap().push(key.clone());
    if upstream.refused.lock().unwrap().contains(&key) {
        let error = json!({ "error": { "message": format!("Incorrect API key provided: {key}."),
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key" } });
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    if let Some(secs) = upstream.limited.lock().unwrap().get(&key).copied() {
        let error = json!({ "error": { "message": "Rate limit reached for requests.", "type": "requests",
            "param": null, "code": "rate_limit_exceeded" } });
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], axum::Json(error))
            .into_response();
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    axum::Json(json!({
        "id": "chatcmpl-keyed", "object": "chat.completion", "created": 1_700_000_000,
        "model": request["model"], "choices": [{ "index": 0, "finish_reason": "stop",
            "message": { "role": "assistant", "content": "Hello there!" } }],
        "usage": { "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17 }
    }))
    .into_response()
}

/// A channel serving `m` with the three keys, taken in turn; `(channel id, user key)`.
async fn three_key_channel(app: &TestApp, upstream: &KeyedUpstream) -> (i64, String) {
    let id = app
        .add_channel(json!({ "name": "pool", "type": "openai", "base_url": upstream.base_url(),
            "key": format!("{K1}\n{K2}\n{K3}"), "models": ["m"], "config": { "key_selection": "round_robin" } }))
        .await;
    app.set_price("m", json!({ "input": "1.00", "output": "2.00" })).await;
    let (_, key) = app.user_with_key("10.00").await;
    (id, key)
}

async fn send(app: &TestApp, key: &str, n: usize) {
    for _ in 0..n {
        let answer = app.v1(key, "/v1/chat/completions", &chat("m")).await;
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    }
}

/// The channel's keys as the API shows them, checked never to show a key.
async fn keys(app: &TestApp, id: i64) -> Vec<Value> {
    let (status, body) = app.admin("GET", &format!("/api/admin/channels/{id}/keys"), None).await;
    assert_eq!(status, 200, "{body}");
    for secret in [K1, K2, K3] {
        assert!(!body.to_string().contains(secret), "a key is shown back: {body}");
    }
    body["data"].as_array().unwrap().clone()
}

fn statuses(keys: &[Value]) -> Vec<&str> {
    keys.iter().map(|k| k["status"].as_str().unwrap()).collect()
}

async fn channel_status(app: &TestApp, id: i64) -> String {
    let (_, body) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    body["status"].as_str().unwrap().to_string()
}

async fn one_refused_key_of_three_moves_traffic_to_the_other_two_until_a_probe_brings_it_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let upstream = KeyedUpstream::start().await;
    let (id, key) = three_key_channel(&app, &upstream).await;
    upstream.refuse(K2, true);

    // Every request is answered: the one that met the refused key went on through another key of
    // the same channel (there is no other channel).
    send(&app, &key, 30).await;
    assert_eq!(upstream.count(K2), 1, "the refused key is tried once, then left alone");
    assert_eq!(upstream.count(K1) + upstream.count(K3), 30);
    assert_eq!(channel_status(&app, id).await, "enabled", "one key's refusal does not stop the channel");
    app.settled().await;
    let retried: i64 = sqlx::query("SELECT COUNT(*) AS n FROM request_logs WHERE attempts = 2 AND status_code = 200")
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(retried, 1);

    let listed = keys(&app, id).await;
    assert_eq!(statuses(&listed), ["active", "auto_disabled", "active"]);
    assert!(listed[1]["reason"].as_str().unwrap().contains("rejected the key"), "{}", listed[1]);
    assert_eq!(listed[1]["hint"], "…0002");
    assert_eq!(listed[1]["requests"], 1);
    assert_eq!(listed[1]["failures"], 1);
    assert_eq!(listed[0]["requests"].as_u64().unwrap() + listed[2]["requests"].as_u64().unwrap(), 30);
    let k2 = listed[1]["fingerprint"].as_str().unwrap().to_string();

    // Still out while the upstream refuses it: a failing probe changes nothing.
    let (status, result) = app.admin("POST", &format!("/api/admin/channels/{id}/keys/{k2}/test"), None).await;
    assert_eq!((status, result["ok"].as_bool()), (200, Some(false)), "{result}");
    assert!(!result.to_string().contains(K2), "the upstream's quote of the key is redacted: {result}");
    send(&app, &key, 6).await;
    assert_eq!(upstream.count(K2), 2, "only the probe reached it");

    // The upstream takes it again: a passing probe brings it back, and it gets its share.
    upstream.refuse(K2, false);
    let (status, result) = app.admin("POST", &format!("/api/admin/channels/{id}/keys/{k2}/test"), None).await;
    assert_eq!((status, result["ok"].as_bool()), (200, Some(true)), "{result}");
    assert_eq!(statuses(&keys(&app, id).await), ["active", "active", "active"]);
    let before = upstream.count(K2);
    send(&app, &key, 30).await;
    let share = upstream.count(K2) - before;
    assert!((8..=12).contains(&share), "each of three keys in turn: {share} of 30");

    // Unknown fingerprints and channels are 404s, in the API's shape.
    let (status, body) = app.admin("POST", &format!("/api/admin/channels/{id}/keys/0123456789abcdef/test"), None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].is_string());
    let (status, _) = app.admin("GET", "/api/admin/channels/999999/keys", None).await;
    assert_eq!(status, 404);
    app.assert_ledger_consistent().await;
}

async fn the_channel_stops_with_its_last_key_and_the_periodic_probe_brings_every_key_back(backend: Backend) {
    let app = spawn_app_env(backend, &[("BURNCLOUD_CHANNEL_RETEST_SECS", "1")]).await;
    let upstream = KeyedUpstream::start().await;
    let (id, key) = three_key_channel(&app, &upstream).await;
    for k in [K1, K2, K3] {
        upstream.refuse(k, true);
    }
    // One request meets all three keys (three attempts) and fails; the last key takes the
    // channel with it.
    let answer = app.v1(&key, "/v1/chat/completions", &chat("m")).await;
    assert_eq!(answer.status(), 502);
    assert_eq!(upstream.total(), 3);
    let mut disabled = false;
    for _ in 0..100 {
        if channel_status(&app, id).await == "auto_disabled" {
            disabled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(disabled, "the channel is disabled with its last key");
    let (_, user) = app.admin("GET", "/api/admin/channels", None).await;
    assert!(!user.to_string().contains(K1), "the channel list shows no key");

    // The periodic re-test brings back the channel, then each of its keys.
    for k in [K1, K2, K3] {
        upstream.refuse(k, false);
    }
    for _ in 0..200 {
        if channel_status(&app, id).await == "enabled" && statuses(&keys(&app, id).await) == ["active"; 3] {
            send(&app, &key, 9).await;
            for k in [K1, K2, K3] {
                assert!(upstream.count(k) >= 2, "every key serves again");
            }
            app.assert_ledger_consistent().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the periodic re-test did not bring the channel and its keys back: {:?}", keys(&app, id).await);
}

async fn an_upstream_429_cools_only_that_key_for_its_retry_after(backend: Backend) {
    let app = spawn_app(backend).await;
    let upstream = KeyedUpstream::start().await;
    let (id, key) = three_key_channel(&app, &upstream).await;
    upstream.limit(K1, Some(30));
    send(&app, &key, 12).await;
    assert_eq!(upstream.count(K1), 1, "told to wait 30 s, the key gets nothing more");
    assert_eq!(upstream.count(K2) + upstream.count(K3), 12);
    let listed = keys(&app, id).await;
    assert_eq!(statuses(&listed), ["active"; 3], "a rate limit disables nothing");
    let cooling = listed[0]["cooling_until"].as_i64().expect("the key is cooling down");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((now + 25_000..=now + 31_000).contains(&cooling), "{cooling} vs {now}");
    assert!(listed[1]["cooling_until"].is_null());

    // A proxy asking for a day is held to the cap (10 minutes).
    upstream.limit(K2, Some(86_400));
    let before = upstream.count(K2);
    send(&app, &key, 3).await;
    assert_eq!(upstream.count(K2) - before, 1, "one 429, then nothing");
    let listed = keys(&app, id).await;
    let cooling = listed[1]["cooling_until"].as_i64().expect("the key is cooling down");
    assert!(cooling <= now + 601_000 + 5_000, "capped: {cooling}");

    // Enabling a key by hand ends its cooldown at once.
    let fp = listed[0]["fingerprint"].as_str().unwrap();
    upstream.limit(K1, None);
    let (status, view) = app.admin("POST", &format!("/api/admin/channels/{id}/keys/{fp}/enable"), None).await;
    assert_eq!(status, 200, "{view}");
    assert!(view["cooling_until"].is_null(), "{view}");
    let before = upstream.count(K1);
    send(&app, &key, 6).await;
    assert!(upstream.count(K1) > before, "the key serves again");
    app.assert_ledger_consistent().await;
}

async fn operators_add_keys_in_bulk_and_disable_one_by_hand(backend: Backend) {
    let app = spawn_app(backend).await;
    let upstream = KeyedUpstream::start().await;
    let id = app
        .add_channel(json!({ "name": "pool", "type": "openai", "base_url": upstream.base_url(), "key": K1,
            "models": ["m"], "config": { "key_selection": "round_robin" } }))
        .await;
    app.set_price("m", json!({ "input": "1.00", "output": "2.00" })).await;
    let (_, key) = app.user_with_key("10.00").await;

    // Bulk add: blank lines and keys held already are skipped.
    let text = format!("{K2}\n\n  {K3}  \n{K1}\n{K2}\n");
    let (status, body) =
        app.admin("POST", &format!("/api/admin/channels/{id}/keys"), Some(json!({ "keys": text }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["added"].as_u64(), body["channel"]["key_count"].as_u64()), (Some(2), Some(3)));
    assert!(!body.to_string().contains(K2));
    for bad in [json!({ "keys": "\n \n" }), json!({ "keys": "x".repeat(5000) }), json!({ "key": K2 })] {
        let (status, body) = app.admin("POST", &format!("/api/admin/channels/{id}/keys"), Some(bad)).await;
        assert_eq!(status, 400, "{body}");
    }
    assert_eq!(keys(&app, id).await.len(), 3, "a refused add changes nothing");

    // A key disabled by hand gets no traffic, and the periodic re-test leaves it alone.
    let k2 = keys(&app, id).await[1]["fingerprint"].as_str().unwrap().to_string();
    let (status, view) = app.admin("POST", &format!("/api/admin/channels/{id}/keys/{k2}/disable"), None).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("manually_disabled")), "{view}");
    send(&app, &key, 10).await;
    assert_eq!(upstream.count(K2), 0);
    assert_eq!(upstream.count(K1) + upstream.count(K3), 10);
    let (status, view) = app.admin("POST", &format!("/api/admin/channels/{id}/keys/{k2}/enable"), None).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("active")), "{view}");
    send(&app, &key, 9).await;
    assert!(upstream.count(K2) >= 2);

    // Replacing the channel's keys forgets the states of the keys it no longer holds.
    let (status, _) = app.admin("POST", &format!("/api/admin/channels/{id}/keys/{k2}/disable"), None).await;
    assert_eq!(status, 200);
    let (status, body) = app.admin("PATCH", &format!("/api/admin/channels/{id}"), Some(json!({ "key": K1 }))).await;
    assert_eq!(status, 200, "{body}");
    let stored: i64 = sqlx::query("SELECT COUNT(*) AS n FROM channel_keys WHERE channel_id = $1")
        .bind(id)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(stored, 0);
    let (status, _) = app.admin("POST", &format!("/api/admin/channels/{id}/keys/{k2}/enable"), None).await;
    assert_eq!(status, 404, "the key is gone");

    // Every action is audited, without a key.
    let audit: Vec<String> = sqlx::query("SELECT action, details FROM audit_log WHERE target_id = $1 ORDER BY id")
        .bind(id.to_string())
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.get::<String, _>("action"), r.get::<String, _>("details")))
        .collect();
    for action in ["channel.keys_add", "channel.key_disable", "channel.key_enable"] {
        assert!(audit.iter().any(|a| a.starts_with(action)), "{action} in {audit:#?}");
    }
    assert!(!audit.iter().any(|a| a.contains(K2)), "{audit:#?}");

    // Not for users: a user's own token cannot reach the operator's keys.
    let response = app.client.get(app.url(&format!("/api/admin/channels/{id}/keys"))).bearer_auth(&key).send().await;
    assert!(matches!(response.unwrap().status().as_u16(), 401 | 403));
    app.assert_ledger_consistent().await;
}

async fn the_console_shows_each_keys_health_and_acts_on_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let upstream = KeyedUpstream::start().await;
    let (id, key) = three_key_channel(&app, &upstream).await;
    upstream.refuse(K3, true);
    send(&app, &key, 6).await;
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;

    // The list links to each key's health; the page shows the hints, never a key.
    let (_, _, list) = root.get("/admin/channels").await;
    assert!(list.contains(&format!("/admin/channels/{id}/keys")), "{list}");
    let page_path = format!("/admin/channels/{id}/keys");
    let (status, _, page) = root.get(&page_path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for secret in [K1, K2, K3] {
        assert!(!page.contains(secret), "a key on the page");
    }
    for hint in ["…0001", "…0002", "…0003"] {
        assert!(page.contains(hint), "{hint} shown");
    }
    let k3 = keys(&app, id).await[2]["fingerprint"].as_str().unwrap().to_string();
    let row = |page: &str, fingerprint: &str| {
        let start = page.find(&format!("id=\"key-{fingerprint}\"")).expect("the key's row");
        page[start..start + page[start..].find("</tr>").unwrap()].to_string()
    };
    let refused = row(&page, &k3);
    assert!(refused.contains("data-status=\"auto_disabled\"") && refused.contains("rejected the key"), "{refused}");

    // Disable the first key by hand (htmx answers the section alone), then add a key.
    let k1 = keys(&app, id).await[0]["fingerprint"].as_str().unwrap().to_string();
    let csrf = root.csrf(&page_path).await;
    let request = app
        .client
        .post(app.url(&format!("/admin/channels/{id}/keys/{k1}/disable")))
        .header("HX-Request", "true")
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"));
    let (status, _, section) = root.send(request).await;
    assert_eq!(status, StatusCode::OK, "{section}");
    assert!(section.starts_with("<section") || section.trim_start().starts_with("<section"), "{section}");
    assert!(section.contains("Key …0001 disabled.") && !section.contains("<html"), "{section}");
    assert!(row(&section, &k1).contains("data-status=\"manually_disabled\""));
    let added = "sk-upstream-key-four-000000000004";
    let (status, _, page) = root.post(&page_path, &[("csrf", &csrf), ("keys", added)]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Added 1 keys.") && page.contains("…0004") && !page.contains(added), "{page}");

    // Without a CSRF token, or as a user, nothing changes.
    let (status, _, _) = root.post(&format!("/admin/channels/{id}/keys/{k1}/enable"), &[]).await;
    assert_ne!(status, StatusCode::OK);
    let mut user = Browser::new(&app);
    let email = crate::admin_console::user_with_role(&app, "keyuser", "user").await;
    user.log_in(&email, "a fine password").await;
    let (status, _, _) = user.get(&page_path).await;
    assert!(matches!(status.as_u16(), 403 | 404 | 303), "{status}");
    assert_eq!(statuses(&keys(&app, id).await)[0], "manually_disabled");

    // Unknown ones are the console's 404 page.
    let (status, _, _) = root.get("/admin/channels/999999/keys").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) =
        root.post(&format!("/admin/channels/{id}/keys/ffffffffffffffff/test"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.assert_ledger_consistent().await;
}

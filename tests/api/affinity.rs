//! Session affinity (issue 17): requests naming a conversation stick to the channel that last
//! answered it, so the upstream's prompt cache hits; a disabled channel is let go at once; the
//! hit rate is in `/metrics`; a TTL of 0 turns it off.

use serde_json::{Value, json};

use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app_env};

db_tests!(conversations_stick_to_a_channel_and_let_go_of_a_disabled_one, affinity_can_be_turned_off);

const METRICS_TOKEN: &str = "metrics-token-affinity-0123456789abcdef-01";

/// Two channels of equal weight serving `m`: `(app, [fake a, fake b], [channel a, channel b], key)`.
async fn two_channels(backend: Backend) -> (TestApp, [FakeOpenAi; 2], [i64; 2], String) {
    let app = spawn_app_env(backend, &[("BURNCLOUD_METRICS_TOKEN", METRICS_TOKEN)]).await;
    let (a, b) = (FakeOpenAi::start(Behavior::default()).await, FakeOpenAi::start(Behavior::default()).await);
    let mut ids = [0; 2];
    for (i, fake) in [&a, &b].into_iter().enumerate() {
        ids[i] = app
            .add_channel(json!({ "name": format!("c{i}"), "type": "openai", "base_url": fake.base_url("c"), "key": "k",
                "models": ["m"], "weight": 1 }))
            .await;
    }
    app.set_price("m", json!({ "input": "1.00", "output": "2.00" })).await;
    let (_, key) = app.user_with_key("10.00").await;
    (app, [a, b], ids, key)
}

fn chat(extra: Value) -> Value {
    let mut body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 5 });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

/// How many requests each fake has received.
fn counts(fakes: &[FakeOpenAi; 2]) -> [usize; 2] {
    [fakes[0].received().len(), fakes[1].received().len()]
}

async fn send(app: &TestApp, key: &str, body: &Value, header: Option<(&str, &str)>) {
    let mut request = app.client.post(app.url("/v1/chat/completions")).bearer_auth(key).json(body);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
}

async fn metric(app: &TestApp, line_start: &str) -> f64 {
    let text =
        app.client.get(app.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in {text}"))
}

async fn conversations_stick_to_a_channel_and_let_go_of_a_disabled_one(backend: Backend) {
    let (app, fakes, ids, key) = two_channels(backend).await;

    // Twenty requests of one conversation (`user`) all go where the first went.
    for _ in 0..20 {
        send(&app, &key, &chat(json!({ "user": "conv-1" })), None).await;
    }
    let after = counts(&fakes);
    assert!(after == [20, 0] || after == [0, 20], "one conversation, one channel: {after:?}");
    let sticky = if after[0] == 20 { 0 } else { 1 };
    assert_eq!(metric(&app, "burncloud_affinity_requests_total{outcome=\"hit\"}").await, 19.0);
    assert_eq!(metric(&app, "burncloud_affinity_requests_total{outcome=\"miss\"}").await, 1.0);
    assert!((metric(&app, "burncloud_affinity_hit_ratio").await - 0.95).abs() < 1e-9);

    // Without a marker, weighted random spreads them (all 20 on one side: 1 in 500,000).
    for _ in 0..20 {
        send(&app, &key, &chat(json!({})), None).await;
    }
    let spread = counts(&fakes);
    assert!(spread[0] > after[0] && spread[1] > after[1], "{spread:?}");

    // Other markers: Codex's `session_id` header and `prompt_cache_key` each name their own.
    let before = counts(&fakes);
    for _ in 0..10 {
        send(&app, &key, &chat(json!({})), Some(("session_id", "codex-session"))).await;
    }
    let now = counts(&fakes);
    assert!(now[0] == before[0] || now[1] == before[1], "one session, one channel: {before:?} → {now:?}");
    let before = now;
    for _ in 0..10 {
        send(&app, &key, &chat(json!({ "prompt_cache_key": "cache-7" })), None).await;
    }
    let now = counts(&fakes);
    assert!(now[0] == before[0] || now[1] == before[1], "{before:?} → {now:?}");

    // The conversation's channel is disabled: it moves to the other one at once, and stays.
    let (status, body) = app
        .admin("PATCH", &format!("/api/admin/channels/{}", ids[sticky]), Some(json!({ "status": "disabled" })))
        .await;
    assert_eq!(status, 200, "{body}");
    let before = counts(&fakes);
    for _ in 0..10 {
        send(&app, &key, &chat(json!({ "user": "conv-1" })), None).await;
    }
    let now = counts(&fakes);
    assert_eq!(now[sticky], before[sticky], "never pinned to a disabled channel");
    assert_eq!(now[1 - sticky], before[1 - sticky] + 10);
    app.assert_ledger_consistent().await;
}

/// `gateway.affinity_ttl_secs` 0: markers are ignored, requests spread.
async fn affinity_can_be_turned_off(backend: Backend) {
    let (app, fakes, _, key) = two_channels(backend).await;
    let (status, body) =
        app.admin("PUT", "/api/admin/settings/gateway.affinity_ttl_secs", Some(json!({ "value": "0" }))).await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..20 {
        send(&app, &key, &chat(json!({ "user": "conv-1" })), None).await;
    }
    let spread = counts(&fakes);
    assert!(spread[0] > 0 && spread[1] > 0, "{spread:?}");
    assert_eq!(metric(&app, "burncloud_affinity_requests_total{outcome=\"hit\"}").await, 0.0);
    let (status, body) =
        app.admin("PUT", "/api/admin/settings/gateway.affinity_header", Some(json!({ "value": "not a header" }))).await;
    assert_eq!(status, 400, "{body}");
}

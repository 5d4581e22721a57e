//! Channel selection through the gateway: priority tiers, the three strategies over 1,000
//! requests each, failover across tiers without re-picking a failed channel, the attempt cap,
//! and automatic disable with re-enable by probe.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row;

use crate::gateway::chat;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app, spawn_app_with};

const N: usize = 1000;

async fn two_channels(app: &TestApp, fake: &FakeOpenAi, weights: (i64, i64)) {
    for (name, weight) in [("a", weights.0), ("b", weights.1)] {
        app.add_channel(json!({ "name": name, "type": "openai", "base_url": fake.base_url(name), "key": "k", "models": ["m"], "weight": weight })).await;
    }
    app.set_price("m", json!({ "input": "0.01", "output": "0.01" })).await;
}

async fn send_many(app: &TestApp, key: &str, n: usize, parallel: usize) {
    let mut left = n;
    while left > 0 {
        let batch = left.min(parallel);
        let calls: Vec<_> = (0..batch)
            .map(|_| {
                let (client, url, key) = (app.client.clone(), app.url("/v1/chat/completions"), key.to_string());
                tokio::spawn(async move {
                    client.post(url).bearer_auth(key).json(&chat("m")).send().await.unwrap().status()
                })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), 200);
        }
        left -= batch;
    }
}

async fn set_strategy(app: &TestApp, strategy: &str) {
    let (status, body) =
        app.admin("PUT", "/api/admin/settings/routing.strategy.default.m", Some(json!({ "value": strategy }))).await;
    assert_eq!(status, 200, "{body}");
}

db_tests!(
    weighted_random_follows_the_weights,
    round_robin_alternates_exactly,
    failover_strategy_sticks_to_the_first,
    higher_priority_tiers_win_and_failures_fall_through,
    the_attempt_cap_limits_retries,
    a_refused_key_disables_the_channel_until_a_probe_passes,
    disabled_channels_are_retested_periodically,
);

async fn weighted_random_follows_the_weights(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    two_channels(&app, &fake, (1, 3)).await;
    let (_, key) = app.user_with_key("100.00").await;
    send_many(&app, &key, N, 8).await;
    let share = fake.count("b") as f64 / N as f64;
    app.settled().await;
    let retried: i64 = sqlx::query("SELECT COUNT(*) FROM request_logs WHERE attempts > 1")
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert!(
        (share - 0.75).abs() < 0.045,
        "channel b served {share:.3} of requests, expected 0.75 ({} received in all, {retried} requests failed over)",
        fake.received().len()
    );
    app.assert_ledger_consistent().await;
}

async fn round_robin_alternates_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    two_channels(&app, &fake, (1, 1)).await;
    set_strategy(&app, "round_robin").await;
    let (_, key) = app.user_with_key("100.00").await;
    send_many(&app, &key, N, 1).await;
    let order: Vec<String> = fake.received().iter().map(|r| r.path[1..2].to_string()).collect();
    assert!(order.windows(2).all(|w| w[0] != w[1]), "two in a row to the same channel");
    assert_eq!(fake.count("a"), N / 2);
    assert_eq!(fake.count("b"), N / 2);
}

async fn failover_strategy_sticks_to_the_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    two_channels(&app, &fake, (5, 1)).await;
    set_strategy(&app, "failover").await;
    let (_, key) = app.user_with_key("100.00").await;
    send_many(&app, &key, N, 8).await;
    assert_eq!((fake.count("a"), fake.count("b")), (N, 0));

    // The site-wide default, changed at run time: applies to models without their own strategy.
    let other = FakeOpenAi::start(Behavior::default()).await;
    for name in ["x", "y"] {
        app.add_channel(json!({ "name": name, "type": "openai", "base_url": other.base_url(name), "key": "k",
                                "models": ["n"], "weight": 1 }))
            .await;
    }
    app.set_price("n", json!({ "input": "0.01", "output": "0.01" })).await;
    let (status, body) =
        app.admin("PUT", "/api/admin/settings/gateway.routing_strategy", Some(json!({ "value": "failover" }))).await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..10 {
        let answer = app.client.post(app.url("/v1/chat/completions")).bearer_auth(&key).json(&chat("n")).send().await;
        assert_eq!(answer.unwrap().status(), 200);
    }
    let counts = (other.count("x"), other.count("y"));
    assert!(counts == (10, 0) || counts == (0, 10), "failover keeps to one channel: {counts:?}");
    let (status, _) =
        app.admin("PUT", "/api/admin/settings/gateway.routing_strategy", Some(json!({ "value": "sometimes" }))).await;
    assert_eq!(status, 400);
}

async fn higher_priority_tiers_win_and_failures_fall_through(backend: Backend) {
    let app = spawn_app(backend).await;
    // The circuit breaker off: every request tries the failing tier (channel_health.rs tests it on).
    for setting in ["gateway.circuit_failures", "gateway.circuit_error_rate"] {
        let (status, body) =
            app.admin("PUT", &format!("/api/admin/settings/{setting}"), Some(json!({ "value": "0" }))).await;
        assert_eq!(status, 200, "{body}");
    }
    let broken = FakeOpenAi::start(Behavior::Status(500)).await;
    let limited = FakeOpenAi::start(Behavior::Status(429)).await;
    let healthy = FakeOpenAi::start(Behavior::default()).await;
    let channel = |name: &str, base: String, priority: i64| json!({ "name": name, "type": "openai", "base_url": base, "key": "k", "models": ["m"], "priority": priority });
    app.add_channel(channel("top-broken", broken.base_url("top"), 10)).await;
    app.add_channel(channel("top-limited", limited.base_url("top"), 10)).await;
    app.add_channel(channel("low", healthy.base_url("low"), 0)).await;
    app.set_price("m", json!({ "input": "1.00" })).await;
    let (_, key) = app.user_with_key("10.00").await;
    for _ in 0..5 {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("m")).await.status(), 200);
    }
    // Every request tried both top channels once (never the same one twice), then the low tier.
    assert_eq!((broken.received().len(), limited.received().len(), healthy.received().len()), (5, 5, 5));

    // With the lower tier healthy again on top, it alone serves.
    broken.set(Behavior::default());
    limited.set(Behavior::default());
    for _ in 0..10 {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("m")).await.status(), 200);
    }
    assert_eq!(healthy.received().len(), 5, "the lower tier is only used when the top one fails");
    app.assert_ledger_consistent().await;
}

async fn the_attempt_cap_limits_retries(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_RETRY_ATTEMPTS".into(), "2".into());
        },
        |r| r,
    )
    .await;
    let broken = FakeOpenAi::start(Behavior::Status(502)).await;
    for name in ["a", "b", "c", "d"] {
        app.add_channel(
            json!({ "name": name, "type": "openai", "base_url": broken.base_url(name), "key": "k", "models": ["m"] }),
        )
        .await;
    }
    app.set_price("m", json!({ "input": "1.00" })).await;
    let (user, key) = app.user_with_key("1.00").await;
    let response = app.v1(&key, "/v1/chat/completions", &chat("m")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(broken.received().len(), 2);
    app.settled().await;
    let attempts: i64 = sqlx::query("SELECT attempts FROM request_logs").fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(attempts, 2);
    assert_eq!(app.balance(user).await, 1_000_000_000);
}

async fn channel_status(app: &TestApp, id: i64) -> (String, Value) {
    let (_, body) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    (body["status"].as_str().unwrap().to_string(), body["disabled_reason"].clone())
}

async fn a_refused_key_disables_the_channel_until_a_probe_passes(backend: Backend) {
    let app = spawn_app(backend).await;
    let revoked = FakeOpenAi::start(Behavior::Status(401)).await;
    let healthy = FakeOpenAi::start(Behavior::default()).await;
    let bad = app
        .add_channel(json!({ "name": "revoked", "type": "openai", "base_url": revoked.base_url("r"), "key": "k", "models": ["m"], "priority": 5 }))
        .await;
    app.add_channel(
        json!({ "name": "healthy", "type": "openai", "base_url": healthy.base_url("h"), "key": "k", "models": ["m"] }),
    )
    .await;
    app.set_price("m", json!({ "input": "1.00" })).await;
    let (_, key) = app.user_with_key("1.00").await;

    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("m")).await.status(), 200, "failed over");
    let mut status = channel_status(&app, bad).await;
    for _ in 0..100 {
        if status.0 == "auto_disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = channel_status(&app, bad).await;
    }
    assert_eq!(status.0, "auto_disabled");
    assert!(status.1.as_str().unwrap().contains("401"), "{:?}", status.1);
    for _ in 0..3 {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("m")).await.status(), 200);
    }
    assert_eq!(revoked.received().len(), 1, "a disabled channel gets no traffic");

    // A probe that fails leaves it disabled; one that passes re-enables it.
    let (code, result) = app.admin("POST", &format!("/api/admin/channels/{bad}/test"), None).await;
    assert_eq!((code, result["ok"].as_bool()), (200, Some(false)));
    assert_eq!(channel_status(&app, bad).await.0, "auto_disabled");
    revoked.set(Behavior::default());
    let (code, result) = app.admin("POST", &format!("/api/admin/channels/{bad}/test"), None).await;
    assert_eq!((code, result["ok"].as_bool()), (200, Some(true)));
    assert!(result["latency_ms"].as_i64().is_some());
    assert_eq!(channel_status(&app, bad).await, ("enabled".to_string(), Value::Null));
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("m")).await.status(), 200);
    assert_eq!(revoked.received().len(), 4, "1 request + 2 probes + 1 request");
}

async fn disabled_channels_are_retested_periodically(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_CHANNEL_RETEST_SECS".into(), "1".into());
        },
        |r| r,
    )
    .await;
    let revoked = FakeOpenAi::start(Behavior::Status(403)).await;
    let id = app
        .add_channel(
            json!({ "name": "r", "type": "openai", "base_url": revoked.base_url("r"), "key": "k", "models": ["m"] }),
        )
        .await;
    let manual = app
        .add_channel(json!({ "name": "manual", "type": "openai", "base_url": revoked.base_url("manual"), "key": "k", "models": ["m"], "status": "disabled" }))
        .await;
    app.set_price("m", json!({ "input": "1.00" })).await;
    let (_, key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("m")).await.status(), 502);
    revoked.set(Behavior::default());
    for _ in 0..100 {
        if channel_status(&app, id).await.0 == "enabled" {
            // The routing snapshot follows the database within moments.
            let mut status = 0;
            for _ in 0..40 {
                status = app.v1(&key, "/v1/chat/completions", &chat("m")).await.status().as_u16();
                if status == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(status, 200);
            // Only automatically disabled channels are re-tested; a manual disable stays.
            assert_eq!(channel_status(&app, manual).await.0, "manually_disabled");
            assert_eq!(revoked.count("manual"), 0);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the channel was not re-enabled by the periodic re-test");
}

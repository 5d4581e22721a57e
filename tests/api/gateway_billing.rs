//! Billing through the gateway: exact charges, refunds on failure, failover billed once, costs
//! beyond the hold, explicit zeros, key limits, group prices, and the race that must never
//! overdraw. The ledger invariant is checked after each.

use serde_json::{Value, json};
use sqlx::Row;

use crate::gateway::{COST_12_5, chat, priced_channel, setup};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, spawn_app};

db_tests!(
    concurrent_requests_never_overdraw,
    a_key_spend_limit_stops_requests,
    group_multipliers_scale_the_price,
    an_upstream_failure_is_fully_refunded,
    failover_bills_once_for_the_channel_that_served,
    a_cost_beyond_the_hold_takes_at_most_the_balance,
    an_explicit_zero_usage_costs_nothing,
    missing_usage_is_counted_locally,
    key_restrictions_are_enforced,
);

async fn ledger_rows(app: &crate::support::helpers::TestApp, user: i64) -> Vec<(String, i64)> {
    sqlx::query("SELECT kind, amount FROM ledger WHERE user_id = $1 ORDER BY id")
        .bind(user)
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// An app with the model `flat` at $0.001 per request.
async fn flat_priced(backend: Backend) -> (crate::support::helpers::TestApp, FakeOpenAi) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(
        json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k", "models": ["flat"] }),
    )
    .await;
    app.set_price("flat", json!({ "per_request": "0.001" })).await;
    (app, fake)
}

async fn concurrent_requests_never_overdraw(backend: Backend) {
    // A flat price makes the hold equal the cost: the balance covers exactly K requests.
    let (app, _fake) = flat_priced(backend).await;
    const K: usize = 5;
    let (user, key) = app.user_with_key("0.005").await;

    let requests = (0..10 * K).map(|_| {
        let client = app.client.clone();
        let url = app.url("/v1/chat/completions");
        let key = key.clone();
        tokio::spawn(async move {
            client.post(url).bearer_auth(key).json(&chat("flat")).send().await.unwrap().status().as_u16()
        })
    });
    let mut statuses = Vec::new();
    for r in requests.collect::<Vec<_>>() {
        statuses.push(r.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), K, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    assert_eq!(app.balance(user).await, 0);
    app.assert_ledger_consistent().await;
}

async fn a_key_spend_limit_stops_requests(backend: Backend) {
    let (app, _fake) = flat_priced(backend).await;
    let (user, key) = app.user_with_key_in("default", "1.00", json!({ "spend_limit": "0.002" })).await;
    for _ in 0..2 {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("flat")).await.status(), 200);
    }
    let refused = app.v1(&key, "/v1/chat/completions", &chat("flat")).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert!(body["error"]["message"].as_str().unwrap().contains("spend limit"));
    assert_eq!(app.balance(user).await, 1_000_000_000 - 2_000_000);
    app.settled().await;
    let spent: i64 = sqlx::query("SELECT spent FROM api_keys WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(spent, 2_000_000);
    app.assert_ledger_consistent().await;
}

async fn group_multipliers_scale_the_price(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let (status, group) = app.admin("PUT", "/api/admin/groups/half", Some(json!({ "multiplier": "0.5" }))).await;
    assert_eq!((status, group["multiplier"].as_str()), (200, Some("0.5")));
    priced_channel(&app, &fake, "c", "gpt-test", json!({ "groups": ["default", "half"] })).await;
    let (user, key) = app.user_with_key_in("half", "1.00", json!({})).await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    assert_eq!(app.balance(user).await, 1_000_000_000 - COST_12_5 / 2);
    app.assert_ledger_consistent().await;
}

async fn an_upstream_failure_is_fully_refunded(backend: Backend) {
    let (app, _fake) = setup(backend, Behavior::Status(500)).await;
    let (user, key) = app.user_with_key("1.00").await;
    let response = app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "upstream_error");
    assert_eq!(app.balance(user).await, 1_000_000_000);
    app.settled().await;
    let kinds: Vec<String> =
        ledger_rows(&app, user).await.into_iter().map(|(k, _)| k).filter(|k| k != "adjustment").collect();
    assert!(kinds.is_empty(), "a refunded request moves no money: {kinds:?}");
    let (status, class): (i64, String) = {
        app.settled().await;
        let r =
            sqlx::query("SELECT status_code, error_class FROM request_logs").fetch_one(app.db.pool()).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((status, class.as_str()), (502, "upstream_unavailable"));
    app.assert_ledger_consistent().await;
}

async fn failover_bills_once_for_the_channel_that_served(backend: Backend) {
    let app = spawn_app(backend).await;
    let broken = FakeOpenAi::start(Behavior::Status(503)).await;
    let healthy = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &broken, "broken", "gpt-test", json!({ "priority": 10 })).await;
    let served = priced_channel(&app, &healthy, "healthy", "gpt-test", json!({ "priority": 0 })).await;
    let (user, key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    assert_eq!((broken.received().len(), healthy.received().len()), (1, 1));
    assert_eq!(app.balance(user).await, 1_000_000_000 - COST_12_5);
    app.settled().await;
    let row =
        sqlx::query("SELECT channel_id, attempts, cost FROM request_logs").fetch_one(app.db.pool()).await.unwrap();
    assert_eq!((row.get::<i64, _>(0), row.get::<i64, _>(1), row.get::<i64, _>(2)), (served, 2, COST_12_5));
    // One charge, whatever the number of attempts.
    let rows: Vec<(String, i64)> =
        ledger_rows(&app, user).await.into_iter().filter(|(k, _)| k != "adjustment").collect();
    assert_eq!(rows, [("settle".to_string(), -COST_12_5)]);
    app.assert_ledger_consistent().await;
}

async fn a_cost_beyond_the_hold_takes_at_most_the_balance(backend: Backend) {
    // The upstream reports far more output than max_tokens allowed for: $10 of tokens.
    let (app, _fake) = setup(backend, Behavior::Ok { prompt_tokens: 0, completion_tokens: 1_000_000 }).await;
    let (user, key) = app.user_with_key("1.00").await;
    let mut request = chat("gpt-test");
    request["max_tokens"] = json!(10);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &request).await.status(), 200);
    assert_eq!(app.balance(user).await, 0, "charged up to the balance, never below zero");
    app.settled().await;
    let cost: i64 = sqlx::query("SELECT cost FROM request_logs").fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(cost, 1_000_000_000, "the log records what was actually charged");
    app.assert_ledger_consistent().await;
}

async fn an_explicit_zero_usage_costs_nothing(backend: Backend) {
    let (app, _fake) = setup(backend, Behavior::Ok { prompt_tokens: 0, completion_tokens: 0 }).await;
    let (user, key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    let mut request = chat("gpt-test");
    request["stream"] = json!(true);
    let body = app.v1(&key, "/v1/chat/completions", &request).await.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"));
    assert_eq!(app.balance(user).await, 1_000_000_000, "an upstream's explicit 0 is never overridden by an estimate");
    app.assert_ledger_consistent().await;
}

async fn missing_usage_is_counted_locally(backend: Backend) {
    let (app, _fake) = setup(backend, Behavior::NoUsage).await;
    let (user, key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    let mut request = chat("gpt-test");
    request["stream"] = json!(true);
    let body = app.v1(&key, "/v1/chat/completions", &request).await.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"));
    app.settled().await;
    let rows = sqlx::query("SELECT prompt_tokens, completion_tokens, cost FROM request_logs ORDER BY id")
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let (prompt, completion, cost): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert!(prompt > 0 && completion > 0 && cost > 0, "estimated: {prompt} {completion} {cost}");
    }
    assert!(app.balance(user).await < 1_000_000_000);
    app.assert_ledger_consistent().await;
}

async fn key_restrictions_are_enforced(backend: Backend) {
    let (app, _fake) = setup(backend, Behavior::default()).await;
    let (_, expired) = app.user_with_key_in("default", "1.00", json!({ "expires_at": 1000 })).await;
    let (_, elsewhere) = app.user_with_key_in("default", "1.00", json!({ "ips": ["10.0.0.0/8"] })).await;
    let (_, here) = app.user_with_key_in("default", "1.00", json!({ "ips": ["127.0.0.1"] })).await;
    let (_, narrow) = app.user_with_key_in("default", "1.00", json!({ "models": ["other-model"] })).await;
    let (_, slow) = app.user_with_key_in("default", "1.00", json!({ "rpm": 2 })).await;

    assert_eq!(app.v1(&expired, "/v1/chat/completions", &chat("gpt-test")).await.status(), 401);
    assert_eq!(app.v1(&elsewhere, "/v1/chat/completions", &chat("gpt-test")).await.status(), 401);
    assert_eq!(app.v1(&here, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    assert_eq!(app.v1(&narrow, "/v1/chat/completions", &chat("gpt-test")).await.status(), 404);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let response = app.v1(&slow, "/v1/chat/completions", &chat("gpt-test")).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "rate_limit_exceeded");
        }
    }
    // Two in this minute window, then 429 (unless the window turned over between requests).
    assert!(statuses == [200, 200, 429] || statuses.iter().filter(|s| **s == 200).count() == 3, "{statuses:?}");
    if statuses[2] == 429 {
        assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)));
    }
    app.assert_ledger_consistent().await;
}

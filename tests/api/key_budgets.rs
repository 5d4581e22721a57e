//! Budgets that reset, on keys (issue 17): an amount a key may spend per day, week or month (in
//! the site's budget time zone) or per rolling 24 h / 7 d / 30 d. Holds reserve on the budget
//! with the same conditional update as spend limits, so concurrent requests at the edge admit
//! exactly what it covers; past it the answer is `429 insufficient_quota` naming when it starts
//! again, and a new period starts the count again (seen with the gateway's budget clock moved).

use serde_json::{Value, json};
use sqlx::Row;

use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app_env, spawn_app_with};
use crate::support::mail_sink::{address, sink, smtp_env};

db_tests!(
    ten_k_requests_at_a_budgets_edge_admit_exactly_k,
    a_budget_starts_again_when_its_period_turns,
    budgets_are_validated_shown_and_changed,
    the_owner_is_warned_once_per_period,
    a_budget_with_room_is_reserved_ahead_and_shows_what_was_charged,
);

const DAY_MS: i64 = 86_400_000;

/// An app whose model `m` costs $0.10 a request (so a hold is exactly the charge), with room for
/// many requests in flight on one key.
async fn setup(backend: Backend) -> (TestApp, FakeOpenAi) {
    let settings = [
        ("BURNCLOUD_MAX_CONCURRENT_PER_KEY", "512"),
        ("BURNCLOUD_MAX_CONCURRENT_PER_USER", "512"),
        ("BURNCLOUD_ADMISSION_WAIT_MS", "5000"),
    ];
    let app = spawn_app_env(backend, &settings).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(
        json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k", "models": ["m"] }),
    )
    .await;
    app.set_price("m", json!({ "per_request": "0.10" })).await;
    (app, fake)
}

fn chat() -> Value {
    json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 5 })
}

/// A key of a new user with $100 and `options` (its budget).
async fn key_with(app: &TestApp, options: Value) -> (i64, i64, String) {
    let (user, _) = app.user_with_key("100.00").await;
    let (status, key) = app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(options)).await;
    assert_eq!(status, 201, "{key}");
    (user, key["id"].as_i64().unwrap(), key["key"].as_str().unwrap().to_string())
}

async fn key_view(app: &TestApp, user: i64, key_id: i64) -> Value {
    let (status, keys) = app.admin("GET", &format!("/api/admin/users/{user}/keys"), None).await;
    assert_eq!(status, 200, "{keys}");
    keys["data"].as_array().unwrap().iter().find(|k| k["id"] == key_id).cloned().unwrap()
}

async fn charges(app: &TestApp, key_id: i64) -> i64 {
    app.settled().await;
    sqlx::query("SELECT COUNT(*) AS n FROM request_logs WHERE api_key_id = $1 AND cost > 0")
        .bind(key_id)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get("n")
}

/// The error of a budget refusal, checked for its shape and headers.
pub(crate) async fn budget_refusal(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-should-retry"], "false", "the SDKs must not retry a spent budget");
    let reset = response.headers()["x-ratelimit-reset-budget"].to_str().unwrap().to_string();
    assert!(reset.ends_with('s') && reset.len() >= 2, "{reset}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota", "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

/// A daily budget for exactly K requests, and 10×K of them at once: exactly K are served and
/// charged, the rest refused with the budget's reset; the user's money moves by K charges only.
async fn ten_k_requests_at_a_budgets_edge_admit_exactly_k(backend: Backend) {
    const K: usize = 20;
    let (app, fake) = setup(backend).await;
    let (user, key_id, key) = key_with(&app, json!({ "budget": "2.00", "budget_period": "day" })).await;
    let before = app.balance(user).await;

    let answers = futures_util::future::join_all((0..10 * K).map(|_| {
        let request = app.client.post(app.url("/v1/chat/completions")).bearer_auth(&key).json(&chat());
        async move { request.send().await.unwrap() }
    }))
    .await;
    let mut served = 0;
    for response in answers {
        if response.status() == 200 {
            served += 1;
        } else {
            let message = budget_refusal(response).await;
            assert!(message.contains("daily budget of 2.00") && message.contains("starts again at"), "{message}");
        }
    }
    assert_eq!(served, K, "the budget covers exactly K requests");
    assert_eq!(fake.received().len(), K, "refused requests never reach the upstream");
    assert_eq!(charges(&app, key_id).await, K as i64);
    assert_eq!(app.balance(user).await, before - K as i64 * 100_000_000);
    let view = key_view(&app, user, key_id).await;
    assert_eq!((view["budget"].as_str(), view["budget_spent"].as_str()), (Some("2.00"), Some("2.00")), "{view}");
    app.assert_ledger_consistent().await;
}

/// Three requests spend a $0.30 daily budget; the fourth is refused until the next midnight in
/// the site's budget time zone (+08:00 here, named in the message); with the clock moved past
/// it, the key spends again and its count starts from zero. A rolling 24 h budget starts again
/// 24 h after it was set, not at midnight.
async fn a_budget_starts_again_when_its_period_turns(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    let (status, body) =
        app.admin("PUT", "/api/admin/settings/gateway.budget_time_zone", Some(json!({ "value": "+08:00" }))).await;
    assert_eq!((status, &body["value"]), (200, &json!("+08:00")), "{body}");
    let (user, key_id, key) = key_with(&app, json!({ "budget": "0.30", "budget_period": "day" })).await;

    for _ in 0..3 {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    }
    let message = budget_refusal(app.v1(&key, "/v1/chat/completions", &chat()).await).await;
    assert!(message.contains("T00:00:00+08:00"), "the reset is midnight at +08:00: {message}");
    let view = key_view(&app, user, key_id).await;
    assert_eq!(view["budget_spent"], "0.30", "{view}");
    let resets_at = view["budget_resets_at"].as_i64().unwrap();
    let now = burncloud::domain::time::now_ms();
    assert!(resets_at > now && resets_at - now <= DAY_MS, "{resets_at} vs {now}");
    assert_eq!((resets_at + 8 * 3_600_000) % DAY_MS, 0, "midnight at +08:00");

    // The next day (the gateway's budget clock moved past the reset): spendable again.
    app.gateway.gateway().advance_budget_clock(resets_at - now + 1_000);
    for _ in 0..3 {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    }
    budget_refusal(app.v1(&key, "/v1/chat/completions", &chat()).await).await;
    assert_eq!(charges(&app, key_id).await, 6, "three on each day");

    // A rolling 24 h budget set now runs 24 h from now, whatever the time zone.
    let (_, rolling_id, rolling) = key_with(&app, json!({ "budget": "0.10", "budget_period": "24h" })).await;
    assert_eq!(app.v1(&rolling, "/v1/chat/completions", &chat()).await.status(), 200);
    let message = budget_refusal(app.v1(&rolling, "/v1/chat/completions", &chat()).await).await;
    assert!(message.contains("24-hour budget of 0.10"), "{message}");
    app.gateway.gateway().advance_budget_clock(DAY_MS);
    assert_eq!(app.v1(&rolling, "/v1/chat/completions", &chat()).await.status(), 200);
    assert_eq!(charges(&app, rolling_id).await, 2);
    app.assert_ledger_consistent().await;
}

/// The API refuses what is not a budget, shows the current period's spend and reset, keeps the
/// count when only the amount changes, starts it again when the period changes, and removes the
/// budget with `null`.
async fn budgets_are_validated_shown_and_changed(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    let (user, _) = app.user_with_key("10.00").await;
    let path = format!("/api/admin/users/{user}/keys");
    for (bad, says) in [
        (json!({ "budget": "-1", "budget_period": "day" }), "budget: must not be negative"),
        (json!({ "budget": "lots", "budget_period": "day" }), "budget:"),
        (json!({ "budget": "1.00" }), "budget_period: required with budget"),
        (json!({ "budget": "1.00", "budget_period": "fortnight" }), "budget_period: day, week or month"),
        (json!({ "budget_period": "day" }), "budget: required with budget_period"),
    ] {
        let (status, body) = app.admin("POST", &path, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.to_string().contains(says), "{bad}: {body}");
    }

    let (_, key_id, key) = key_with(&app, json!({ "budget": "0.50", "budget_period": "week" })).await;
    let owner: i64 = sqlx::query("SELECT user_id FROM api_keys WHERE id = $1")
        .bind(key_id)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get("user_id");
    let fresh = key_view(&app, owner, key_id).await;
    assert_eq!((&fresh["budget_period"], &fresh["budget_spent"]), (&json!("week"), &json!("0.00")), "{fresh}");
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    app.settled().await;

    // The key alone reads its budget, and what it may still spend is within it.
    let response = app.client.get(app.url("/api/v1/key")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let read: Value = response.json().await.unwrap();
    let budget = &read["data"]["budget"];
    assert_eq!(
        (&budget["limit"], &budget["period"], &budget["usage"]),
        (&json!(0.5), &json!("week"), &json!(0.1)),
        "{read}"
    );
    assert!((budget["remaining"].as_f64().unwrap() - 0.4).abs() < 1e-9, "{read}");
    assert!((read["data"]["limit_remaining"].as_f64().unwrap() - 0.4).abs() < 1e-9, "the budget bounds it: {read}");
    let resets_at = budget["resets_at"].as_i64().unwrap();
    assert_eq!(resets_at * 1000, fresh["budget_resets_at"].as_i64().unwrap(), "{read}");

    let key_path = format!("/api/admin/keys/{key_id}");
    let (status, raised) = app.admin("PATCH", &key_path, Some(json!({ "budget": "0.80" }))).await;
    assert_eq!(status, 200, "{raised}");
    assert_eq!((&raised["budget"], &raised["budget_spent"]), (&json!("0.80"), &json!("0.10")), "the count stays");
    let (status, monthly) = app.admin("PATCH", &key_path, Some(json!({ "budget_period": "month" }))).await;
    assert_eq!(status, 200, "{monthly}");
    assert_eq!((&monthly["budget_period"], &monthly["budget_spent"]), (&json!("month"), &json!("0.00")), "{monthly}");
    let (status, removed) = app.admin("PATCH", &key_path, Some(json!({ "budget": null }))).await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(
        (&removed["budget"], &removed["budget_period"], &removed["budget_resets_at"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    app.assert_ledger_consistent().await;
}

/// At 80 % (the default) of a $0.40 daily budget the owner gets one email naming the key and what
/// it spent; more spending that period sends no other; the next period's crossing sends one
/// again. At 0 % none is sent.
async fn the_owner_is_warned_once_per_period(backend: Backend) {
    let app = spawn_app_with(backend, smtp_env, |router| router).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(
        json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k", "models": ["m"] }),
    )
    .await;
    app.set_price("m", json!({ "per_request": "0.10" })).await;
    let email = address("budget");
    let (status, user) =
        app.admin("POST", "/api/admin/users", Some(json!({ "email": email, "password": "password123" }))).await;
    assert_eq!(status, 201, "{user}");
    let user = user["id"].as_i64().unwrap();
    let credit = json!({ "amount": "10.00", "note": "test" });
    assert_eq!(app.admin("POST", &format!("/api/admin/users/{user}/credit"), Some(credit)).await.0, 200);
    let options = json!({ "name": "app", "budget": "0.40", "budget_period": "day" });
    let (status, key) = app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(options)).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let warn = || burncloud::services::keys::warnings::warn_budgets(&app.state);
    let spend = |n: usize| {
        let (app, key) = (&app, &key);
        async move {
            for _ in 0..n {
                assert_eq!(app.v1(key, "/v1/chat/completions", &chat()).await.status(), 200);
            }
            app.settled().await;
        }
    };

    spend(3).await;
    assert_eq!(warn().await.unwrap(), 0, "75 % is below the threshold");
    spend(1).await;
    assert_eq!(warn().await.unwrap(), 1, "100 %: told");
    assert_eq!(warn().await.unwrap(), 0, "once per period");
    let mails = sink().wait_for(&email, 1);
    assert!(mails[0].subject.contains("budget is nearly spent"), "{:?}", mails[0]);
    assert!(mails[0].text.contains("app") && mails[0].text.contains("0.40 of 0.40"), "{}", mails[0].text);
    assert!(mails[0].text.contains("/console/keys"), "{}", mails[0].text);

    // The next day: spending past the threshold again tells them again.
    app.gateway.gateway().advance_budget_clock(DAY_MS);
    spend(4).await;
    assert_eq!(warn().await.unwrap(), 1);
    assert_eq!(sink().wait_for(&email, 2).len(), 2);

    let (status, body) =
        app.admin("PUT", "/api/admin/settings/notify.budget_warning_percent", Some(json!({ "value": "0" }))).await;
    assert_eq!(status, 200, "{body}");
    app.gateway.gateway().advance_budget_clock(DAY_MS);
    spend(4).await;
    assert_eq!(warn().await.unwrap(), 0, "off");
    app.assert_ledger_consistent().await;
}

/// The key's count as stored: what was charged plus what the gateway reserved ahead.
async fn stored_count(app: &TestApp, key_id: i64) -> i64 {
    sqlx::query_scalar("SELECT budget_spent FROM api_keys WHERE id = $1")
        .bind(key_id)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

/// A budget with room is reserved ahead, an eighth of its room at a time (a budget lease), so
/// requests cost no reservation each; what the key shows is what was charged. A lowered budget
/// holds on the next request: the lease taken under the old one goes back and a new one fits the
/// new budget.
async fn a_budget_with_room_is_reserved_ahead_and_shows_what_was_charged(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    let (user, key_id, key) = key_with(&app, json!({ "budget": "100.00", "budget_period": "day" })).await;
    for _ in 0..10 {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    }
    app.settled().await;
    assert_eq!(stored_count(&app, key_id).await, 12_500_000_000, "one lease of 12.50 (an eighth of 100.00)");
    let view = key_view(&app, user, key_id).await;
    assert_eq!(view["budget_spent"], "1.00", "the key shows what was charged: {view}");

    let (status, view) =
        app.admin("PATCH", &format!("/api/admin/keys/{key_id}"), Some(json!({ "budget": "5.00" }))).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    app.settled().await;
    // 11.50 went back; the new lease is an eighth of the 4.00 left: 0.50, of which 0.10 was spent.
    assert_eq!(stored_count(&app, key_id).await, 1_500_000_000, "the old lease went back, a smaller one taken");
    assert_eq!(key_view(&app, user, key_id).await["budget_spent"], "1.10");
    app.assert_ledger_consistent().await;
}

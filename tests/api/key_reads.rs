//! Balance and usage read with the key alone: One API's billing reads, as NextChat queries them
//! and through the official `openai` SDK, and OpenRouter's `GET /api/v1/key`. Each answers about
//! the key that asks, never another; a disabled key or none reads nothing.

use serde_json::{Value, json};

use crate::gateway::{COST_12_5, chat, priced_channel};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(the_key_reads_its_own_balance_and_usage, reads_need_a_live_key_and_show_only_it);

async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let response = app.client.get(app.url(path)).bearer_auth(key).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// What NextChat shows: `hard_limit_usd - total_usage / 100` from the two reads, with this
/// month's dates on the usage read.
async fn nextchat_remaining(app: &TestApp, key: &str) -> f64 {
    let (status, usage) = get(app, key, "/v1/dashboard/billing/usage?start_date=2026-12-01&end_date=2026-12-05").await;
    assert_eq!(status, 200, "{usage}");
    let (status, subscription) = get(app, key, "/v1/dashboard/billing/subscription").await;
    assert_eq!(status, 200, "{subscription}");
    subscription["hard_limit_usd"].as_f64().unwrap() - usage["total_usage"].as_f64().unwrap() / 100.0
}

async fn the_key_reads_its_own_balance_and_usage(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "main", "gpt-test", json!({})).await;
    let (user, key) = app.user_with_key("10.00").await;
    let (status, limited) = app
        .admin(
            "POST",
            &format!("/api/admin/users/{user}/keys"),
            Some(json!({ "spend_limit": "0.50", "rpm": 30, "name": "app" })),
        )
        .await;
    assert_eq!(status, 201, "{limited}");
    let limited = limited["key"].as_str().unwrap().to_string();

    // Nothing spent yet: the whole balance, or the limited key's limit.
    assert!((nextchat_remaining(&app, &key).await - 10.0).abs() < 1e-9);
    assert!((nextchat_remaining(&app, &limited).await - 0.5).abs() < 1e-9);

    // Two requests on the first key, one on the limited one.
    for k in [&key, &key, &limited] {
        assert_eq!(app.v1(k, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    }
    app.wait_for_logs(3).await;
    let balance = app.balance(user).await;
    assert_eq!(balance, 10_000_000_000 - 3 * COST_12_5);
    let dollars = |units: i64| units as f64 / 1e9;

    let (status, usage) = get(&app, &key, "/v1/dashboard/billing/usage").await;
    assert_eq!(status, 200);
    assert_eq!(usage["object"], "list");
    assert!((usage["total_usage"].as_f64().unwrap() - dollars(2 * COST_12_5) * 100.0).abs() < 1e-9, "{usage}");
    let (_, subscription) = get(&app, &key, "/dashboard/billing/subscription").await;
    assert_eq!(subscription["object"], "billing_subscription");
    assert_eq!(subscription["access_until"], 0);
    assert_eq!(subscription["hard_limit_usd"], subscription["soft_limit_usd"]);
    // The client's subtraction gives exactly what remains: the balance, or the key's limit left.
    assert!((nextchat_remaining(&app, &key).await - dollars(balance)).abs() < 1e-9);
    assert!((nextchat_remaining(&app, &limited).await - dollars(500_000_000 - COST_12_5)).abs() < 1e-9);
    let (_, bare) = get(&app, &limited, "/dashboard/billing/usage").await;
    assert!((bare["total_usage"].as_f64().unwrap() - dollars(COST_12_5) * 100.0).abs() < 1e-9, "{bare}");

    // OpenRouter's key read.
    let (status, info) = get(&app, &limited, "/api/v1/key").await;
    assert_eq!(status, 200, "{info}");
    let data = &info["data"];
    assert_eq!(data["label"], "app");
    assert_eq!(data["limit"], 0.5);
    assert!((data["usage"].as_f64().unwrap() - dollars(COST_12_5)).abs() < 1e-12);
    assert!((data["limit_remaining"].as_f64().unwrap() - dollars(500_000_000 - COST_12_5)).abs() < 1e-9);
    assert!((data["balance"].as_f64().unwrap() - dollars(balance)).abs() < 1e-9);
    assert_eq!(data["rate_limit"], json!({ "requests": 30, "interval": "1m" }));
    let (_, info) = get(&app, &key, "/api/v1/key").await;
    assert_eq!((info["data"]["limit"].clone(), info["data"]["rate_limit"].clone()), (Value::Null, Value::Null));

    // The official SDK, with nothing but the key.
    let python = std::env::var("BURNCLOUD_SDK_PYTHON").expect("BURNCLOUD_SDK_PYTHON: run scripts/test.sh");
    let out = tokio::process::Command::new(&python)
        .arg(format!("{}/tests/sdk/openai_sdk_balance.py", env!("CARGO_MANIFEST_DIR")))
        .env("BURNCLOUD_BASE_URL", app.url("/v1"))
        .env("BURNCLOUD_KEY", &limited)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let read: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!((read["remaining"].as_f64().unwrap() - dollars(500_000_000 - COST_12_5)).abs() < 1e-9, "{read}");
    app.assert_ledger_consistent().await;
}

async fn reads_need_a_live_key_and_show_only_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, key) = app.user_with_key("3.00").await;
    let (_, other) = app.user_with_key("7.00").await;
    for path in ["/v1/dashboard/billing/subscription", "/v1/dashboard/billing/usage", "/api/v1/key"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path} without a key");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key", "{path}: OpenAI's error shape");
        assert_eq!(get(&app, "sk-not-a-real-key-0123456789", path).await.0, 401, "{path}");
    }
    // Each key sees its own user's money only.
    let (_, mine) = get(&app, &key, "/api/v1/key").await;
    let (_, theirs) = get(&app, &other, "/api/v1/key").await;
    assert_eq!((mine["data"]["balance"].as_f64(), theirs["data"]["balance"].as_f64()), (Some(3.0), Some(7.0)));

    // A disabled key reads nothing.
    let (status, body) =
        app.admin("PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "status": "disabled" }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&app, &key, "/api/v1/key").await.0, 401);
}

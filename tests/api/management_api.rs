//! The JSON management API: its contract shapes, validation, authentication, that upstream keys
//! never come back, and bootstrap files applied by `burncloud serve --bootstrap`.

use serde_json::{Value, json};

use crate::gateway::{chat, priced_channel, setup};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, spawn_app};

db_tests!(
    channels_crud_never_returns_the_key,
    users_credit_and_keys,
    prices_groups_and_settings_validate,
    a_channel_without_credit_is_disabled,
    bootstrap_sets_up_a_working_instance,
    keys_can_be_disabled_and_deleted,
    a_group_price_replaces_the_multiplied_price,
);

const SECRET: &str = "sk-proj-VERY-distinctive-upstream-secret-9f8e7d";

async fn channels_crud_never_returns_the_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let created = app
        .admin(
            "POST",
            "/api/admin/channels",
            Some(json!({ "name": "primary", "type": "deepseek", "base_url": fake.base_url("p"), "key": SECRET,
                         "models": ["deepseek-chat"], "model_mapping": {}, "groups": ["default"], "priority": 3, "weight": 2, "config": {} })),
        )
        .await;
    assert_eq!(created.0, 201, "{}", created.1);
    let id = created.1["id"].as_i64().unwrap();
    assert_eq!(created.1["type"], "deepseek");
    assert_eq!(created.1["key_hint"], "…7d".replace("7d", "8e7d"));
    assert_eq!(
        (created.1["priority"].as_i64(), created.1["weight"].as_i64(), created.1["status"].as_str()),
        (Some(3), Some(2), Some("enabled"))
    );

    let (status, list) = app.admin("GET", "/api/admin/channels", None).await;
    assert_eq!((status, list["data"].as_array().unwrap().len()), (200, 1));
    let (status, patched) = app
        .admin("PATCH", &format!("/api/admin/channels/{id}"), Some(json!({ "weight": 7, "status": "disabled" })))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["weight"].as_i64(), patched["status"].as_str(), patched["name"].as_str()),
        (Some(7), Some("manually_disabled"), Some("primary"))
    );
    let (_, fetched) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    assert_eq!(fetched["models"], json!(["deepseek-chat"]));

    for body in [&created.1, &list, &patched, &fetched] {
        assert!(!body.to_string().contains("VERY-distinctive"), "the upstream key came back: {body}");
    }
    let stored: Vec<u8> =
        sqlx::Row::get(&sqlx::query("SELECT keys_encrypted FROM channels").fetch_one(app.db.pool()).await.unwrap(), 0);
    assert!(!String::from_utf8_lossy(&stored).contains("distinctive"), "the key is encrypted at rest");

    let bad = [
        json!({ "name": "x", "type": "nope", "key": "k", "models": ["m"] }),
        json!({ "name": "x", "type": "openai", "models": ["m"] }),
        json!({ "name": "x", "type": "openai", "key": "k", "models": [] }),
        json!({ "name": "x", "type": "openai-compatible", "key": "k", "models": ["m"] }),
        json!({ "name": "x", "type": "openai", "key": "k", "models": ["m"], "base_url": "ftp://x" }),
        json!({ "name": "x", "type": "openai", "key": "k", "models": ["m"], "surprise": 1 }),
    ];
    for body in bad {
        let (status, error) = app.admin("POST", "/api/admin/channels", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {error}");
        assert_eq!(error["error"]["code"], "invalid_request");
    }

    assert_eq!(app.admin("DELETE", &format!("/api/admin/channels/{id}"), None).await.0, 204);
    assert_eq!(app.admin("GET", &format!("/api/admin/channels/{id}"), None).await.0, 404);
    assert_eq!(app.admin("GET", "/api/admin/channels/abc", None).await.0, 404);

    // Authentication.
    let anonymous = app.client.get(app.url("/api/admin/channels")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = app.client.get(app.url("/api/admin/channels")).bearer_auth("wrong-token").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"]["code"], "unauthorized");
}

async fn users_credit_and_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, user) = app
        .admin("POST", "/api/admin/users", Some(json!({ "email": "Reseller@Example.com", "password": "password123", "group": "default", "role": "reseller" })))
        .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(
        (user["email"].as_str(), user["role"].as_str(), user["balance"].as_str()),
        (Some("reseller@example.com"), Some("reseller"), Some("0.00"))
    );
    let id = user["id"].as_i64().unwrap();

    let duplicate = app
        .admin("POST", "/api/admin/users", Some(json!({ "email": "reseller@example.com", "password": "password123" })))
        .await;
    assert_eq!(duplicate.0, 409);
    for bad in [
        json!({ "email": "not-an-email", "password": "password123" }),
        json!({ "email": "a@b.c", "password": "short" }),
        json!({ "email": "a@b.c", "password": "password123", "group": "nope" }),
        json!({ "email": "a@b.c", "password": "password123", "role": "root" }),
    ] {
        assert_eq!(app.admin("POST", "/api/admin/users", Some(bad.clone())).await.0, 400, "{bad}");
    }

    let credit = app
        .admin("POST", &format!("/api/admin/users/{id}/credit"), Some(json!({ "amount": "10.00", "note": "welcome" })))
        .await;
    assert_eq!((credit.0, credit.1["balance"].as_str()), (200, Some("10.00")));
    let overdraw = app
        .admin("POST", &format!("/api/admin/users/{id}/credit"), Some(json!({ "amount": "-20", "note": "test" })))
        .await;
    assert_eq!(overdraw.0, 409);
    let debit = app
        .admin("POST", &format!("/api/admin/users/{id}/credit"), Some(json!({ "amount": "-2.5", "note": "test" })))
        .await;
    assert_eq!(debit.1["balance"], "7.50");
    assert_eq!(
        app.admin("POST", &format!("/api/admin/users/{id}/credit"), Some(json!({ "amount": "1.2.3", "note": "test" })))
            .await
            .0,
        400
    );
    let (_, fetched) = app.admin("GET", &format!("/api/admin/users/{id}"), None).await;
    assert_eq!((fetched["balance"].as_str(), fetched["group"].as_str()), (Some("7.50"), Some("default")));
    assert_eq!(app.admin("GET", "/api/admin/users/999999", None).await.0, 404);
    assert_eq!(
        app.admin("POST", "/api/admin/users/999999/credit", Some(json!({ "amount": "1", "note": "test" }))).await.0,
        404
    );

    let (status, key) = app.admin("POST", &format!("/api/admin/users/{id}/keys"), Some(json!({ "name": "ci" }))).await;
    assert_eq!(status, 201);
    let secret = key["key"].as_str().unwrap();
    assert!(secret.starts_with("sk-") && secret.len() >= 43, "{secret}");
    let stored: String =
        sqlx::Row::get(&sqlx::query("SELECT key_hash FROM api_keys").fetch_one(app.db.pool()).await.unwrap(), 0);
    assert_eq!(stored, burncloud::domain::api_key::hash(secret), "only the hash is stored");
    assert_eq!(
        app.admin("POST", &format!("/api/admin/users/{id}/keys"), Some(json!({ "ips": ["nonsense"] }))).await.0,
        400
    );
    assert_eq!(app.admin("POST", "/api/admin/users/999999/keys", Some(json!({}))).await.0, 404);
    app.assert_ledger_consistent().await;
}

async fn prices_groups_and_settings_validate(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, price) = app
        .admin(
            "PUT",
            "/api/admin/prices/gpt-4o",
            Some(json!({ "input": "2.50", "output": "10.00", "cached_input": "1.25", "per_request": null })),
        )
        .await;
    assert_eq!(status, 200, "{price}");
    assert_eq!(
        (price["model"].as_str(), price["input"].as_str(), price["cached_input"].as_str()),
        (Some("gpt-4o"), Some("2.50"), Some("1.25"))
    );
    assert_eq!(app.admin("PUT", "/api/admin/prices/gpt-4o", Some(json!({ "input": "-1" }))).await.0, 400);
    assert_eq!(app.admin("PUT", "/api/admin/prices/gpt-4o", Some(json!({}))).await.0, 400);
    assert_eq!(app.admin("PUT", "/api/admin/prices/gpt-4o", Some(json!({ "input": "cheap" }))).await.0, 400);

    let (status, group) = app.admin("PUT", "/api/admin/groups/vip", Some(json!({ "multiplier": "0.8" }))).await;
    assert_eq!((status, group["multiplier"].as_str(), group["name"].as_str()), (200, Some("0.8"), Some("vip")));
    assert_eq!(app.admin("PUT", "/api/admin/groups/vip", Some(json!({ "multiplier": "x" }))).await.0, 400);
    assert_eq!(app.admin("PUT", "/api/admin/groups/bad%20name", Some(json!({ "multiplier": "1" }))).await.0, 400);

    assert_eq!(
        app.admin("PUT", "/api/admin/settings/routing.strategy.vip.gpt-4o", Some(json!({ "value": "round_robin" })))
            .await
            .0,
        200
    );
    assert_eq!(
        app.admin("PUT", "/api/admin/settings/routing.strategy.vip.gpt-4o", Some(json!({ "value": "chaos" }))).await.0,
        400
    );
    assert_eq!(app.admin("PUT", "/api/admin/settings/site.colour", Some(json!({ "value": "x" }))).await.0, 400);
    let (status, body) =
        app.admin("PUT", "/api/admin/settings/signup.mode", Some(json!({ "value": "sometimes" }))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("invite_only"), "the error says what is accepted: {body}");

    // Site settings apply at once: the name and announcement show on every page.
    for (key, value) in [("site.name", "Acme <AI>"), ("site.announcement", "Maintenance at 02:00 UTC")] {
        assert_eq!(
            app.admin("PUT", &format!("/api/admin/settings/{key}"), Some(json!({ "value": value }))).await.0,
            200
        );
    }
    let page = reqwest::get(app.url("/pricing")).await.unwrap().text().await.unwrap();
    assert!(page.contains("Acme &#60;AI&#62;") && page.contains("Maintenance at 02:00 UTC"), "{page}");
}

async fn a_channel_without_credit_is_disabled(backend: Backend) {
    let app = spawn_app(backend).await;
    let broke = FakeOpenAi::start(Behavior::NoCredit).await;
    let id = app
        .add_channel(
            json!({ "name": "broke", "type": "openai", "base_url": broke.base_url("b"), "key": "k", "models": ["m"] }),
        )
        .await;
    app.set_price("m", json!({ "input": "1.00" })).await;
    let (_, key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("m")).await.status(), 502);
    for _ in 0..100 {
        let (_, channel) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
        if channel["status"] == "auto_disabled" {
            assert!(channel["disabled_reason"].as_str().unwrap().contains("credit"));
            // With its only channel disabled, the model has nowhere to go (and costs nothing).
            let response = app.v1(&key, "/v1/chat/completions", &chat("m")).await;
            assert_eq!(response.status(), 503);
            assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "no_available_channel");
            assert_eq!(broke.received().len(), 1);
            app.assert_ledger_consistent().await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the channel was not disabled");
}

async fn bootstrap_sets_up_a_working_instance(backend: Backend) {
    use std::process::Stdio;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = crate::support::helpers::fresh_database_url(backend, dir.path()).await;
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/bootstrap.toml")).unwrap();
    let file = dir.path().join("bootstrap.toml");
    std::fs::write(&file, template.replace("{mock_base}", &fake.base_url("bench"))).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    for round in 0..2 {
        // Applied twice: a bootstrap file is declarative, a second start changes nothing.
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_burncloud"))
            .args(["serve", "--bootstrap", file.to_str().unwrap()])
            .env_clear()
            .env("BURNCLOUD_LISTEN", format!("127.0.0.1:{port}"))
            .env("BURNCLOUD_DATA_DIR", dir.path())
            .env("DATABASE_URL", &url)
            .env("BURNCLOUD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..200 {
            if client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
                ready = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(ready, "round {round}: the server did not start");
        let response = client
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .bearer_auth("sk-bench-tenant")
            .json(&chat("mock-gpt"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "round {round}");
        let mut stream = chat("mock-gpt");
        stream["stream"] = json!(true);
        let body = client
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .bearer_auth("sk-bench-tenant")
            .json(&stream)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"));
        child.kill().await.unwrap();
    }
    assert_eq!(fake.received().len(), 4);
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[channels]]\nname = \"x\"\ntype = \"nope\"\nkey = \"k\"\nmodels = [\"m\"]\n").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_burncloud"))
        .args(["serve", "--bootstrap", bad.to_str().unwrap()])
        .env_clear()
        .env("BURNCLOUD_LISTEN", "127.0.0.1:0")
        .env("BURNCLOUD_DATA_DIR", dir.path())
        .env("DATABASE_URL", &url)
        .env("BURNCLOUD_LOG", "error")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim_end().lines().last().unwrap().contains("channels[0] x: type"), "{stderr}");
}

async fn keys_can_be_disabled_and_deleted(backend: Backend) {
    let (app, _fake) = setup(backend, Behavior::default()).await;
    let (user, key) = app.user_with_key("1.00").await;
    let id: i64 = sqlx::Row::get(
        &sqlx::query("SELECT id FROM api_keys WHERE user_id = $1").bind(user).fetch_one(app.db.pool()).await.unwrap(),
        0,
    );
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    let (status, body) =
        app.admin("PATCH", &format!("/api/admin/keys/{id}"), Some(json!({ "status": "disabled" }))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("disabled")));
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 401, "effective at once");
    assert_eq!(app.admin("PATCH", &format!("/api/admin/keys/{id}"), Some(json!({ "status": "active" }))).await.0, 200);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    assert_eq!(app.admin("PATCH", &format!("/api/admin/keys/{id}"), Some(json!({ "status": "paused" }))).await.0, 400);
    assert_eq!(app.admin("PATCH", "/api/admin/keys/999999", Some(json!({ "status": "active" }))).await.0, 404);
    assert_eq!(app.admin("DELETE", &format!("/api/admin/keys/{id}"), None).await.0, 204);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 401);
    assert_eq!(app.admin("DELETE", &format!("/api/admin/keys/{id}"), None).await.0, 404);
    app.assert_ledger_consistent().await;
}

async fn a_group_price_replaces_the_multiplied_price(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "c", "gpt-test", json!({ "groups": ["default", "vip"] })).await;
    assert_eq!(app.admin("PUT", "/api/admin/groups/vip", Some(json!({ "multiplier": "0.5" }))).await.0, 200);
    let (status, price) = app
        .admin("PUT", "/api/admin/groups/vip/prices/gpt-test", Some(json!({ "input": "1.00", "output": "1.00" })))
        .await;
    assert_eq!(status, 200, "{price}");
    assert_eq!(
        (price["group"].as_str(), price["model"].as_str(), price["input"].as_str()),
        (Some("vip"), Some("gpt-test"), Some("1.00"))
    );
    assert_eq!(app.admin("PUT", "/api/admin/groups/nope/prices/gpt-test", Some(json!({ "input": "1" }))).await.0, 400);
    assert_eq!(app.admin("PUT", "/api/admin/groups/vip/prices/gpt-test", Some(json!({}))).await.0, 400);

    let (vip, vip_key) = app.user_with_key_in("vip", "1.00", json!({})).await;
    let (regular, regular_key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&vip_key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    assert_eq!(app.v1(&regular_key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    // 12 + 5 tokens at $1/1M each, with no multiplier on top; the default group pays list price.
    assert_eq!(app.balance(vip).await, 1_000_000_000 - 17_000);
    assert_eq!(app.balance(regular).await, 1_000_000_000 - crate::gateway::COST_12_5);
    app.assert_ledger_consistent().await;
}

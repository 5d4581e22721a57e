//! Fallback models: when every channel of the requested model fails, the group's
//! `routing.fallback.<group>.<model>` list is tried in order; the answer names the model that
//! served and the request is billed at its price; a key can opt out; the lists are checked.

use serde_json::{Value, json};
use sqlx::Row;

use crate::console_auth::Browser;
use crate::gateway::chat;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    a_fallback_model_answers_when_the_requested_one_fails_and_is_billed_at_its_price,
    a_key_that_opts_out_gets_the_error_and_embeddings_never_fall_back,
    fallback_lists_are_checked,
    operators_set_a_groups_fallback_models_on_the_groups_page,
);

/// `big` on a failing upstream, `small` and `medium` on healthy ones; `big` falls back to
/// `medium` (unreachable: no channel) then `small`. Prices per million tokens differ tenfold.
async fn setup(app: &TestApp) -> (FakeOpenAi, FakeOpenAi) {
    let broken = FakeOpenAi::start(Behavior::Status(500)).await;
    let healthy = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "big", "type": "openai", "base_url": broken.base_url("big"), "key": "sk-up",
        "models": ["big", "big-embed"] }))
        .await;
    app.add_channel(json!({ "name": "small", "type": "openai", "base_url": healthy.base_url("small"), "key": "sk-up",
        "models": ["small", "small-embed"] }))
        .await;
    app.set_price("big", json!({ "input": "10.00", "output": "30.00" })).await;
    app.set_price("medium", json!({ "input": "5.00", "output": "5.00" })).await;
    app.set_price("small", json!({ "input": "1.00", "output": "2.00" })).await;
    app.set_price("big-embed", json!({ "input": "1.00" })).await;
    app.set_price("small-embed", json!({ "input": "1.00" })).await;
    for (key, value) in
        [("routing.fallback.default.big", "medium, small"), ("routing.fallback.default.big-embed", "small-embed")]
    {
        let (status, body) =
            app.admin("PUT", &format!("/api/admin/settings/{key}"), Some(json!({ "value": value }))).await;
        assert_eq!(status, 200, "{body}");
    }
    (broken, healthy)
}

async fn last_log(app: &TestApp) -> (String, String, i64, i64) {
    app.settled().await;
    let row =
        sqlx::query("SELECT requested_model, upstream_model, cost, status_code FROM request_logs ORDER BY id DESC")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

async fn a_fallback_model_answers_when_the_requested_one_fails_and_is_billed_at_its_price(backend: Backend) {
    let app = spawn_app(backend).await;
    let (broken, healthy) = setup(&app).await;
    let (user, key) = app.user_with_key("10.00").await;
    let before = app.balance(user).await;

    let answer = app.v1(&key, "/v1/chat/completions", &chat("big")).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    // The answer says which model served; the upstream was asked for that model.
    assert_eq!(body["model"], "small", "{body}");
    assert_eq!(broken.received().len(), 1);
    assert_eq!(healthy.received().last().unwrap().json()["model"], "small");
    // Billed at small's price: 12 prompt tokens at 1.00 and 5 output tokens at 2.00 per million.
    let (requested, upstream, cost, status) = last_log(&app).await;
    assert_eq!((requested.as_str(), upstream.as_str(), status), ("big", "small", 200));
    assert_eq!(cost, 12 * 1_000 + 5 * 2_000);
    assert_eq!(app.balance(user).await, before - cost);

    // A stream falls back too: every event names the serving model.
    let mut stream = chat("big");
    stream["stream"] = json!(true);
    let answer = app.v1(&key, "/v1/chat/completions", &stream).await;
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    assert!(text.contains("\"model\":\"small\"") && !text.contains("\"model\":\"big\""), "{text}");
    let (_, upstream, cost, _) = last_log(&app).await;
    assert_eq!((upstream.as_str(), cost), ("small", 22_000));

    // Anthropic clients in front of the same route fall back the same way.
    let messages =
        json!({ "model": "big", "max_tokens": 100, "messages": [{ "role": "user", "content": "Say hello" }] });
    let answer = app
        .client
        .post(app.url("/v1/messages"))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .json(&messages)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap()["model"], "small");
    // Its charge is committed before the next request, so the newest log row is the next one's.
    app.settled().await;

    // The requested model healthy again: it serves, at its own price.
    broken.set(Behavior::default());
    let answer = app.v1(&key, "/v1/chat/completions", &chat("big")).await;
    assert_eq!(answer.json::<Value>().await.unwrap()["model"], "big");
    let (_, upstream, cost, _) = last_log(&app).await;
    assert_eq!((upstream.as_str(), cost), ("big", 12 * 10_000 + 5 * 30_000));
    app.assert_ledger_consistent().await;
}

async fn a_key_that_opts_out_gets_the_error_and_embeddings_never_fall_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let (broken, healthy) = setup(&app).await;
    let (user, key) = app.user_with_key("10.00").await;
    let key_id: i64 = sqlx::query_scalar("SELECT id FROM api_keys WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let (status, view) =
        app.admin("PATCH", &format!("/api/admin/keys/{key_id}"), Some(json!({ "fallback": false }))).await;
    assert_eq!((status, &view["fallback"]), (200, &json!(false)), "{view}");
    let before = app.balance(user).await;

    let answer = app.v1(&key, "/v1/chat/completions", &chat("big")).await;
    assert!(answer.status().is_server_error(), "{}", answer.status());
    let error: Value = answer.json().await.unwrap();
    assert!(error["error"]["message"].is_string(), "{error}");
    assert_eq!(healthy.received().len(), 0, "no fallback for a key that opted out");
    assert_eq!(broken.received().len(), 1);
    let (_, _, cost, status) = last_log(&app).await;
    assert!(status >= 500 && cost == 0);

    // Opted in again: the fallback serves.
    let (status, view) =
        app.admin("PATCH", &format!("/api/admin/keys/{key_id}"), Some(json!({ "fallback": true }))).await;
    assert_eq!((status, &view["fallback"]), (200, &json!(true)));
    let answer = app.v1(&key, "/v1/chat/completions", &chat("big")).await;
    assert_eq!(answer.json::<Value>().await.unwrap()["model"], "small");

    // Another model's embeddings are not what was asked for: no fallback, whatever the settings.
    let answer = app.v1(&key, "/v1/embeddings", &json!({ "model": "big-embed", "input": "hello" })).await;
    assert!(answer.status().is_server_error());
    assert!(healthy.received().iter().all(|r| !r.path.contains("embeddings")));
    assert_eq!(app.balance(user).await, before - 22_000);
    app.assert_ledger_consistent().await;
}

async fn fallback_lists_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, healthy) = setup(&app).await;
    for (key, value) in [
        ("routing.fallback.default.big", "big"),
        ("routing.fallback.default.big", "small, small"),
        ("routing.fallback.default.big", "a, b, c, d, e, f"),
        ("routing.fallback.default.big", "not a model"),
        ("routing.fallback.default", "small"),
        ("routing.fallback.default.", "small"),
    ] {
        let (status, body) =
            app.admin("PUT", &format!("/api/admin/settings/{key}"), Some(json!({ "value": value }))).await;
        assert_eq!(status, 400, "{key} = {value}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(key), "{body}");
    }
    // Nothing changed: the list set up still serves.
    let (_, key) = app.user_with_key("1.00").await;
    assert_eq!(
        app.v1(&key, "/v1/chat/completions", &chat("big")).await.json::<Value>().await.unwrap()["model"],
        "small"
    );
    // An empty list removes the fallback.
    let (status, _) =
        app.admin("PUT", "/api/admin/settings/routing.fallback.default.big", Some(json!({ "value": "" }))).await;
    assert_eq!(status, 200);
    let served = healthy.received().len();
    assert!(app.v1(&key, "/v1/chat/completions", &chat("big")).await.status().is_server_error());
    assert_eq!(healthy.received().len(), served);
    // Only an operator sets them.
    let (status, _) = {
        let response = app
            .client
            .put(app.url("/api/admin/settings/routing.fallback.default.big"))
            .bearer_auth(&key)
            .json(&json!({ "value": "small" }))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), ())
    };
    assert!(matches!(status, 401 | 403), "{status}");
    app.assert_ledger_consistent().await;
}

async fn operators_set_a_groups_fallback_models_on_the_groups_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, healthy) = setup(&app).await;
    let (status, _) =
        app.admin("PUT", "/api/admin/settings/routing.fallback.default.big", Some(json!({ "value": "" }))).await;
    assert_eq!(status, 200);
    let (_, key) = app.user_with_key("1.00").await;
    assert!(app.v1(&key, "/v1/chat/completions", &chat("big")).await.status().is_server_error());
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let csrf = root.csrf("/admin/groups?edit=default").await;

    // A refused line saves nothing and says why.
    let (status, _, page) = save_group(&mut root, &csrf, "big = big").await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Fallback models: big: big is listed twice"), "{page}");
    assert!(app.v1(&key, "/v1/chat/completions", &chat("big")).await.status().is_server_error());

    // A good one is in force on the next request, and shown in the table and the form.
    let (status, location, _) = save_group(&mut root, &csrf, "big = medium, small\nsmall-embed = big-embed").await;
    assert_eq!((status.as_u16(), location.as_str()), (303, "/admin/groups?done=saved"));
    let answer = app.v1(&key, "/v1/chat/completions", &chat("big")).await;
    assert_eq!(answer.json::<Value>().await.unwrap()["model"], "small");
    let (_, _, page) = root.get("/admin/groups?edit=default").await;
    assert!(page.contains("big → medium, small"), "{page}");
    assert!(page.contains("big = medium, small\nsmall-embed = big-embed"), "{page}");
    let (_, settings) = app.admin("GET", "/api/admin/audit?action=setting.update", None).await;
    assert!(settings.to_string().contains("routing.fallback.default.big"), "audited: {settings}");

    // A line taken out removes that list.
    let served = healthy.received().len();
    let (status, _, _) = save_group(&mut root, &csrf, "small-embed = big-embed").await;
    assert_eq!(status.as_u16(), 303);
    assert!(app.v1(&key, "/v1/chat/completions", &chat("big")).await.status().is_server_error());
    assert_eq!(healthy.received().len(), served);
    app.assert_ledger_consistent().await;
}

/// Saves the `default` group through its console form with these fallback lines.
async fn save_group(root: &mut Browser<'_>, csrf: &str, fallbacks: &str) -> (reqwest::StatusCode, String, String) {
    let form = [("csrf", csrf), ("name", "default"), ("multiplier", "1"), ("fallbacks", fallbacks)];
    root.post("/admin/groups", &form).await
}

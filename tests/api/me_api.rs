//! `/api/me/*` with a personal access token: the owner's account, keys (created, changed and
//! deleted with the gateway enforcing the changes), usage log and balance — never anyone else's;
//! bodies cannot reach for an owner, a role, a group or a balance; revoked, expired and disabled
//! users' tokens are 401; errors are the management API's JSON.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console_auth::Browser;
use crate::console_key_limits::{chat, two_models, user_with_console_key};
use crate::console_tokens::console_token;
use crate::support::helpers::{ADMIN_TOKEN, Backend, TestApp, spawn_app};

db_tests!(the_token_owner_manages_keys_and_reads_usage, other_users_data_is_out_of_reach, refused_tokens_get_401);

/// A call with a token: `(status, JSON body or Null)`.
async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn assert_api_error(answer: &(u16, Value), status: u16, code: &str, mentions: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    let message = answer.1["error"]["message"].as_str().unwrap();
    assert!(message.contains(mentions), "{message:?} should mention {mentions:?}");
}

async fn the_token_owner_manages_keys_and_reads_usage(backend: Backend) {
    let app = spawn_app(backend).await;
    let _fake = two_models(&app).await;
    let mut browser = Browser::new(&app);
    let (console_key_id, console_key) = user_with_console_key(&app, &mut browser, "api.user@example.com").await;
    let token = console_token(&mut browser, "script").await;

    let (status, me) = call(&app, &token, "GET", "/api/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["email"].as_str(), me["balance"].as_str(), me["group"].as_str()),
        (Some("api.user@example.com"), Some("1.00"), Some("default"))
    );

    let (status, keys) = call(&app, &token, "GET", "/api/me/keys", None).await;
    assert_eq!(status, 200);
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    assert_eq!(keys["data"][0]["id"], console_key_id);
    assert_eq!(keys["data"][0]["name"], "ci");
    assert!(!keys.to_string().contains(&console_key), "never the secret");

    // Create a key with limits: the secret comes back once, the limits apply at the gateway.
    let body = json!({ "name": "api", "spend_limit": "0.50", "models": ["gpt-good"], "rpm": 50,
                       "ips": ["127.0.0.1", "::1"], "expires_at": 32_503_680_000_000_i64 });
    let (status, created) = call(&app, &token, "POST", "/api/me/keys", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_i64().unwrap();
    assert!(key.starts_with("sk-"));
    assert_eq!(created["spend_limit"], "0.50");
    assert_eq!(created["models"], json!(["gpt-good"]));
    assert_eq!((created["rpm"].as_i64(), created["status"].as_str()), (Some(50), Some("active")));
    assert_eq!(created["prefix"], format!("{}…", &key[..7]));
    let (status, refused) = chat(&app, &key, "gpt-other").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (404, Some("model_not_found")), "{refused}");
    assert_eq!(chat(&app, &key, "gpt-good").await.0, 200);

    // Change it: `null` lifts a limit, absent fields stay; the gateway follows at once.
    let (status, changed) =
        call(&app, &token, "PATCH", &format!("/api/me/keys/{id}"), Some(json!({ "models": null, "name": "renamed" })))
            .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (changed["models"].clone(), changed["name"].as_str(), changed["rpm"].as_i64()),
        (Value::Null, Some("renamed"), Some(50))
    );
    assert_eq!(chat(&app, &key, "gpt-other").await.0, 200);
    let (status, _) =
        call(&app, &token, "PATCH", &format!("/api/me/keys/{id}"), Some(json!({ "status": "disabled" }))).await;
    assert_eq!(status, 200);
    assert_eq!(chat(&app, &key, "gpt-good").await.0, 401);
    call(&app, &token, "PATCH", &format!("/api/me/keys/{id}"), Some(json!({ "status": "active" }))).await;

    // Bad bodies: a clear 400, nothing changed; nobody chooses an owner, a role, a balance or the key.
    let (_, before) = call(&app, &token, "GET", "/api/me/keys", None).await;
    let path = format!("/api/me/keys/{id}");
    assert_api_error(
        &call(&app, &token, "PATCH", &path, Some(json!({ "user_id": 1 }))).await,
        400,
        "invalid_request",
        "user_id",
    );
    assert_api_error(
        &call(&app, &token, "PATCH", &path, Some(json!({}))).await,
        400,
        "invalid_request",
        "nothing to change",
    );
    assert_api_error(
        &call(&app, &token, "PATCH", &path, Some(json!({ "spend_limit": "lots" }))).await,
        400,
        "invalid_request",
        "spend_limit",
    );
    assert_api_error(
        &call(&app, &token, "PATCH", &path, Some(json!({ "spend_limit": "0.00001" }))).await,
        400,
        "invalid_request",
        "already spent",
    );
    assert_api_error(
        &call(&app, &token, "PATCH", &path, Some(json!({ "ips": ["nowhere"] }))).await,
        400,
        "invalid_request",
        "ips",
    );
    assert_api_error(
        &call(&app, &token, "PATCH", &path, Some(json!({ "rpm": 0 }))).await,
        400,
        "invalid_request",
        "rpm",
    );
    assert_api_error(
        &call(&app, &token, "PATCH", &path, Some(json!({ "status": "paused" }))).await,
        400,
        "invalid_request",
        "status",
    );
    for field in ["role", "group", "balance", "user_id"] {
        let answer = call(&app, &token, "POST", "/api/me/keys", Some(json!({ "name": "x", field: "admin" }))).await;
        assert_api_error(&answer, 400, "invalid_request", field);
    }
    let chosen = json!({ "name": "x", "key": "sk-chosen-by-the-client-0123456789abcdef01234567" });
    assert_api_error(&call(&app, &token, "POST", "/api/me/keys", Some(chosen)).await, 400, "invalid_request", "key");
    let garbage = app.client.post(app.url("/api/me/keys")).bearer_auth(&token).body("{not json").send().await.unwrap();
    assert_eq!(garbage.status(), 400);
    assert_eq!(garbage.json::<Value>().await.unwrap()["error"]["code"], "invalid_request");
    let (_, after) = call(&app, &token, "GET", "/api/me/keys", None).await;
    assert_eq!(before, after, "nothing changed");

    // The usage log: the same filters as the console, paged by id.
    chat(&app, &console_key, "gpt-other").await;
    app.wait_for_logs(3).await;
    let (status, logs) = call(&app, &token, "GET", "/api/me/logs", None).await;
    assert_eq!(status, 200, "{logs}");
    let rows = logs["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{logs}");
    assert_eq!(logs["next_before"], Value::Null);
    let newest = &rows[0];
    assert_eq!(
        (newest["model"].as_str(), newest["key_id"].as_i64(), newest["key_name"].as_str()),
        (Some("gpt-other"), Some(console_key_id), Some("ci"))
    );
    assert_eq!((newest["prompt_tokens"].as_i64(), newest["completion_tokens"].as_i64()), (Some(12), Some(5)));
    assert_eq!((newest["cost"].as_str(), newest["status_code"].as_i64()), (Some("0.00008"), Some(200)));
    let count = |logs: &Value| logs["data"].as_array().unwrap().len();
    assert_eq!(count(&call(&app, &token, "GET", "/api/me/logs?model=gpt-good", None).await.1), 1);
    assert_eq!(count(&call(&app, &token, "GET", &format!("/api/me/logs?key={id}"), None).await.1), 2);
    assert_eq!(count(&call(&app, &token, "GET", "/api/me/logs?status=error", None).await.1), 0);
    assert_eq!(count(&call(&app, &token, "GET", "/api/me/logs?status=ok", None).await.1), 3);
    assert_eq!(count(&call(&app, &token, "GET", "/api/me/logs?from=2999-01-01", None).await.1), 0);
    let today = burncloud::domain::time::utc_day(burncloud::domain::time::now_ms());
    assert_eq!(count(&call(&app, &token, "GET", &format!("/api/me/logs?from={today}&to={today}"), None).await.1), 3);
    let (_, page1) = call(&app, &token, "GET", "/api/me/logs?limit=2", None).await;
    assert_eq!(count(&page1), 2);
    let next = page1["next_before"].as_i64().unwrap();
    let (_, page2) = call(&app, &token, "GET", &format!("/api/me/logs?limit=2&before={next}"), None).await;
    assert_eq!(count(&page2), 1);
    assert!(page2["data"][0]["id"].as_i64().unwrap() < next);
    for (query, field) in [
        ("from=yesterday", "From"),
        ("status=maybe", "Status"),
        ("limit=0", "limit"),
        ("key=mine", "Key"),
        ("before=abc", "query"),
    ] {
        let answer = call(&app, &token, "GET", &format!("/api/me/logs?{query}"), None).await;
        assert_api_error(&answer, 400, "invalid_request", field);
    }

    // The balance with its ledger rows.
    app.settled().await;
    let (status, balance) = call(&app, &token, "GET", "/api/me/balance", None).await;
    assert_eq!(status, 200, "{balance}");
    assert_eq!(balance["balance"], "0.99976");
    assert_eq!(balance["ledger"][0]["kind"], "adjustment");
    assert_eq!(
        (balance["ledger"][0]["amount"].as_str(), balance["ledger"][0]["balance_after"].as_str()),
        (Some("1.00"), Some("1.00"))
    );
    assert_api_error(
        &call(&app, &token, "GET", "/api/me/balance?limit=1000", None).await,
        400,
        "invalid_request",
        "limit",
    );

    // Delete: the key stops at once; again is 404.
    assert_eq!(call(&app, &token, "DELETE", &format!("/api/me/keys/{id}"), None).await.0, 204);
    assert_eq!(chat(&app, &key, "gpt-good").await.0, 401);
    assert_api_error(
        &call(&app, &token, "DELETE", &format!("/api/me/keys/{id}"), None).await,
        404,
        "not_found",
        "not found",
    );

    // The admin API's PATCH takes the same fields.
    let (status, view) = app
        .admin("PATCH", &format!("/api/admin/keys/{console_key_id}"), Some(json!({ "rpm": 7, "name": "by-admin" })))
        .await;
    assert_eq!((status, view["rpm"].as_i64(), view["name"].as_str()), (200, Some(7), Some("by-admin")), "{view}");
    app.assert_ledger_consistent().await;
}

async fn other_users_data_is_out_of_reach(backend: Backend) {
    let app = spawn_app(backend).await;
    let _fake = two_models(&app).await;
    let mut owner = Browser::new(&app);
    let (key_id, key) = user_with_console_key(&app, &mut owner, "owner@example.com").await;
    chat(&app, &key, "gpt-good").await;
    let mut stranger = Browser::new(&app);
    let (own_key_id, _) = user_with_console_key(&app, &mut stranger, "stranger@example.com").await;
    let token = console_token(&mut stranger, "snoop").await;
    app.wait_for_logs(1).await;

    let (_, me) = call(&app, &token, "GET", "/api/me", None).await;
    assert_eq!(me["email"], "stranger@example.com");
    let (_, keys) = call(&app, &token, "GET", "/api/me/keys", None).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    assert_eq!(keys["data"][0]["id"], own_key_id);
    let (_, logs) = call(&app, &token, "GET", &format!("/api/me/logs?key={key_id}"), None).await;
    assert_eq!(logs["data"], json!([]), "someone else's key filters to nothing");
    let (_, logs) = call(&app, &token, "GET", "/api/me/logs", None).await;
    assert_eq!(logs["data"], json!([]));

    // Guessing ids: the owner's key, neighbours and a missing one all answer 404 and change nothing.
    for guess in [key_id, own_key_id + 1, own_key_id + 100, 999_999] {
        let path = format!("/api/me/keys/{guess}");
        let answer =
            call(&app, &token, "PATCH", &path, Some(json!({ "status": "disabled", "models": ["nothing"] }))).await;
        assert_api_error(&answer, 404, "not_found", "not found");
        assert_api_error(&call(&app, &token, "DELETE", &path, None).await, 404, "not_found", "not found");
    }
    assert_eq!(call(&app, &token, "PATCH", "/api/me/keys/abc", Some(json!({ "name": "x" }))).await.0, 404);
    assert_eq!(chat(&app, &key, "gpt-good").await.0, 200, "the owner's key is untouched");
    let name: String = sqlx::query_scalar::<_, String>("SELECT name FROM api_keys WHERE id = $1")
        .bind(key_id)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(name, "ci");
}

async fn refused_tokens_get_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    let (_, api_key) = user_with_console_key(&app, &mut browser, "refused@example.com").await;
    let token = console_token(&mut browser, "t").await;
    assert_eq!(call(&app, &token, "GET", "/api/me", None).await.0, 200);

    // Not a user's token: none, garbage, the admin token, a gateway key.
    let none = app.client.get(app.url("/api/me")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.json::<Value>().await.unwrap()["error"]["code"], "unauthorized");
    for wrong in ["bct_not-a-real-token", ADMIN_TOKEN, api_key.as_str()] {
        assert_api_error(&call(&app, wrong, "GET", "/api/me/keys", None).await, 401, "unauthorized", "token");
    }
    // A user's token is not an admin's: the admin API refuses it (403: known, but not allowed).
    assert_eq!(call(&app, &token, "GET", "/api/admin/channels", None).await.0, 403);

    // Expired.
    sqlx::query("UPDATE access_tokens SET expires_at = $1")
        .bind(burncloud::domain::time::now_ms() - 1)
        .execute(app.db.pool())
        .await
        .unwrap();
    assert_api_error(&call(&app, &token, "GET", "/api/me", None).await, 401, "unauthorized", "expired");
    sqlx::query("UPDATE access_tokens SET expires_at = NULL").execute(app.db.pool()).await.unwrap();
    assert_eq!(call(&app, &token, "GET", "/api/me/balance", None).await.0, 200);

    // Its user disabled.
    sqlx::query("UPDATE users SET status = 'disabled' WHERE email = 'refused@example.com'")
        .execute(app.db.pool())
        .await
        .unwrap();
    assert_eq!(call(&app, &token, "GET", "/api/me/logs", None).await.0, 401);
    assert_eq!(call(&app, &token, "POST", "/api/me/keys", Some(json!({ "name": "x" }))).await.0, 401);
    sqlx::query("UPDATE users SET status = 'active' WHERE email = 'refused@example.com'")
        .execute(app.db.pool())
        .await
        .unwrap();
    assert_eq!(call(&app, &token, "GET", "/api/me", None).await.0, 200);

    // Revoked.
    let id: i64 = sqlx::query_scalar::<_, i64>("SELECT id FROM access_tokens").fetch_one(app.db.pool()).await.unwrap();
    let csrf = browser.csrf("/console/profile").await;
    browser.post(&format!("/console/profile/tokens/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_api_error(&call(&app, &token, "GET", "/api/me", None).await, 401, "unauthorized", "revoked");
}

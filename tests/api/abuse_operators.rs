//! Operator boundaries (issue 13, item 16), as a compromised or careless operator would probe
//! them: an admin's access token on the keys of root and other admins, a channel's stored key
//! redirected to a new host by changing its base URL, and a retried credit paid twice.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::admin_console::{access_token, user_with_role};
use crate::console_auth::Browser;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{ADMIN_EMAIL, ADMIN_TOKEN, Backend, TestApp, spawn_app};

db_tests!(
    admin_key_routes_apply_the_role_rules_and_are_audited,
    changing_base_url_requires_the_key_again,
    credit_honours_an_idempotency_key,
    concurrent_credits_with_one_idempotency_key_move_money_once,
);

const MODEL: &str = "gpt-bound";

async fn id_of(app: &TestApp, email: &str) -> i64 {
    sqlx::query("SELECT id FROM users WHERE email = $1").bind(email).fetch_one(app.db.pool()).await.unwrap().get(0)
}

/// A management API call with a bearer token and optional extra headers: `(status, JSON)`.
async fn call(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The personal access token of a new account with `role`: `(user id, token)`.
async fn token_of(app: &TestApp, name: &str, role: &str) -> (i64, String) {
    let email = user_with_role(app, name, role).await;
    let mut browser = Browser::new(app);
    browser.log_in(&email, "a fine password").await;
    (id_of(app, &email).await, access_token(&mut browser).await)
}

/// `(id, status)` of every key of a user, by id.
async fn keys_of(app: &TestApp, user_id: i64) -> Vec<(i64, String)> {
    sqlx::query("SELECT id, status FROM api_keys WHERE user_id = $1 ORDER BY id")
        .bind(user_id)
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The audit log through the API, filtered by action: its rows.
async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    let (status, body) = app.admin("GET", &format!("/api/admin/audit?action={action}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().iter().filter(|r| r["action"] == action).cloned().collect()
}

async fn admin_key_routes_apply_the_role_rules_and_are_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let root_id = id_of(&app, ADMIN_EMAIL).await;
    let (admin_id, admin) = token_of(&app, "ops", "admin").await;
    let (other_admin_id, _) = token_of(&app, "ops2", "admin").await;
    let carol_id = id_of(&app, &user_with_role(&app, "carol", "user").await).await;
    let reseller_id = id_of(&app, &user_with_role(&app, "rita", "reseller").await).await;

    // Keys the root token made for root and for the other admin: the admin must not touch them.
    let mut protected = Vec::new();
    for owner in [root_id, other_admin_id, admin_id] {
        let (status, key) = app.admin("POST", &format!("/api/admin/users/{owner}/keys"), Some(json!({}))).await;
        assert_eq!(status, 201, "{key}");
        protected.push((owner, key["id"].as_i64().unwrap()));
    }
    let owners = [root_id, other_admin_id, admin_id];
    let mut before = Vec::new();
    for owner in owners {
        before.push(keys_of(&app, owner).await);
    }
    let audited_before = audit(&app, "key.").await.len();
    for (owner, key_id) in &protected {
        // Root, another admin, and the admin's own account (its keys are its own business, through
        // /api/me/keys): the same rule as crediting or disabling them.
        let mint = call(&app, &admin, "POST", &format!("/api/admin/users/{owner}/keys"), &[], Some(json!({}))).await;
        let fixed = json!({ "key": "sk-chosen-by-the-attacker-0123456789" });
        let chosen = call(&app, &admin, "POST", &format!("/api/admin/users/{owner}/keys"), &[], Some(fixed)).await;
        let patch = json!({ "status": "disabled", "models": ["cheap"] });
        let change = call(&app, &admin, "PATCH", &format!("/api/admin/keys/{key_id}"), &[], Some(patch)).await;
        let delete = call(&app, &admin, "DELETE", &format!("/api/admin/keys/{key_id}"), &[], None).await;
        for (what, (status, body)) in [("mint", mint), ("fixed", chosen), ("change", change), ("delete", delete)] {
            assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{what} on {owner}: {body}");
            assert!(body["key"].is_null(), "no key is handed out: {body}");
        }
    }
    for (owner, expected) in owners.iter().zip(&before) {
        assert_eq!(&keys_of(&app, *owner).await, expected, "nothing changed for user {owner}");
    }
    assert_eq!(audit(&app, "key.").await.len(), audited_before, "refused actions write no audit row");
    let fixed: i64 = sqlx::query("SELECT COUNT(*) FROM api_keys WHERE key_hash = $1")
        .bind(burncloud::domain::api_key::hash("sk-chosen-by-the-attacker-0123456789"))
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(fixed, 0, "the attacker's chosen key exists nowhere");
    // Reading stays open to admins (the console shows every user's keys).
    let (status, listed) = call(&app, &admin, "GET", &format!("/api/admin/users/{root_id}/keys"), &[], None).await;
    assert_eq!((status, listed["data"].as_array().map(Vec::len)), (200, Some(1)), "{listed}");

    // Users and resellers: allowed, and every action is audited with the admin as the actor.
    for owner in [carol_id, reseller_id] {
        let body = json!({ "name": "ci", "rpm": 60 });
        let (status, created) =
            call(&app, &admin, "POST", &format!("/api/admin/users/{owner}/keys"), &[], Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let (key_id, secret) = (created["id"].as_i64().unwrap(), created["key"].as_str().unwrap().to_string());
        let patch = json!({ "status": "disabled" });
        let (status, changed) =
            call(&app, &admin, "PATCH", &format!("/api/admin/keys/{key_id}"), &[], Some(patch)).await;
        assert_eq!((status, changed["status"].as_str()), (200, Some("disabled")), "{changed}");
        let (status, _) = call(&app, &admin, "DELETE", &format!("/api/admin/keys/{key_id}"), &[], None).await;
        assert_eq!(status, 204);
        assert!(keys_of(&app, owner).await.is_empty());

        let target = key_id.to_string();
        let rows = |action: &'static str| {
            let app = &app;
            let target = target.clone();
            async move {
                audit(app, action).await.into_iter().filter(|r| r["target_id"] == target.as_str()).collect::<Vec<_>>()
            }
        };
        let created_rows = rows("key.create").await;
        assert_eq!(created_rows.len(), 1, "{created_rows:?}");
        let row = &created_rows[0];
        assert_eq!((row["actor_user_id"].as_i64(), row["actor_kind"].as_str()), (Some(admin_id), Some("token")));
        assert_eq!((row["target_type"].as_str(), row["details"]["user_id"].as_i64()), (Some("key"), Some(owner)));
        assert_eq!(row["details"]["rpm"], 60, "{row}");
        assert!(!row.to_string().contains(&secret), "the audit row never holds the key: {row}");
        let updated = rows("key.update").await;
        assert_eq!(updated.len(), 1, "{updated:?}");
        assert_eq!(updated[0]["details"]["before"]["status"], "active", "{updated:?}");
        assert_eq!(updated[0]["details"]["after"]["status"], "disabled", "{updated:?}");
        let deleted = rows("key.delete").await;
        assert_eq!(deleted.len(), 1, "{deleted:?}");
        assert_eq!(deleted[0]["details"]["user_id"].as_i64(), Some(owner));
    }

    // Root (the root token) still manages everyone's keys.
    for (owner, key_id) in &protected {
        let (status, _) = app.admin("PATCH", &format!("/api/admin/keys/{key_id}"), Some(json!({ "name": "r" }))).await;
        assert_eq!(status, 200, "root on {owner}'s key");
        assert_eq!(app.admin("DELETE", &format!("/api/admin/keys/{key_id}"), None).await.0, 204);
    }
    assert_eq!(call(&app, &admin, "DELETE", "/api/admin/keys/999999", &[], None).await.0, 404);
}

/// A channel's current state, through the API.
async fn channel(app: &TestApp, id: i64) -> Value {
    let (status, body) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn changing_base_url_requires_the_key_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let old_host = FakeOpenAi::start(Behavior::default()).await;
    let new_host = FakeOpenAi::start(Behavior::default()).await;
    let old_key = "sk-old-upstream-secret-7f3a";
    let id = app
        .add_channel(json!({ "name": "main", "type": "openai", "base_url": old_host.base_url("a"), "key": old_key,
                             "models": [MODEL] }))
        .await;
    app.set_price(MODEL, json!({ "input": "1", "output": "1" })).await;
    let (_, user_key) = app.user_with_key("10").await;
    let chat = json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 10 });

    // The API: a new base URL without a key (or with a blank one) is refused and changes nothing.
    let before = channel(&app, id).await;
    for body in [
        json!({ "base_url": new_host.base_url("b") }),
        json!({ "base_url": new_host.base_url("b"), "key": "  " }),
        json!({ "base_url": new_host.base_url("a"), "name": "renamed", "priority": 5 }),
        json!({ "base_url": old_host.base_url("a").replace("http://", "https://") }),
        json!({ "base_url": "" }),
    ] {
        let (status, answer) = app.admin("PATCH", &format!("/api/admin/channels/{id}"), Some(body.clone())).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("key_required")), "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("key"), "{answer}");
        let mut now = channel(&app, id).await;
        now["updated_at"] = before["updated_at"].clone();
        assert_eq!(now, before, "{body} changed nothing");
    }
    // The same destination written differently, or other fields alone, need no key.
    let same = format!("{}/", old_host.base_url("a"));
    let (status, answer) =
        app.admin("PATCH", &format!("/api/admin/channels/{id}"), Some(json!({ "base_url": same, "weight": 3 }))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["base_url"], old_host.base_url("a"), "{answer}");
    let response = app.v1(&user_key, "/v1/chat/completions", &chat).await;
    assert_eq!(response.status(), 200);
    assert_eq!(new_host.received().len(), 0, "nothing reached the new host");

    // The console: the form comes back with the error at the key field, and nothing changes.
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let edit = format!("/admin/channels/{id}/edit");
    let csrf = root.csrf(&edit).await;
    let new_base = new_host.base_url("c");
    let fields = form_fields(&csrf, "", &new_base);
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let before = channel(&app, id).await;
    let (status, _, page) = root.post(&edit, &pairs).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("data-testid=\"key-error\""), "{page}");
    assert!(page.contains("aria-describedby=\"key-error\""), "{page}");
    assert!(page.contains(&new_base), "the form keeps what was typed");
    assert!(!page.contains(old_key), "the key is never put back in the page");
    let mut now = channel(&app, id).await;
    now["updated_at"] = before["updated_at"].clone();
    assert_eq!(now, before, "a refused form changes nothing");
    // With the form unchanged (same destination), a blank key keeps the stored one.
    let fields = form_fields(&csrf, "", &old_host.base_url("a"));
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = root.post(&edit, &pairs).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Channel saved."), "{page}");

    // With the key entered again, the move is accepted, and the new host gets only the new key.
    let new_key = "sk-new-upstream-secret-91bd";
    let (status, answer) = app
        .admin(
            "PATCH",
            &format!("/api/admin/channels/{id}"),
            Some(json!({ "base_url": new_host.base_url("b"), "key": new_key })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let response = app.v1(&user_key, "/v1/chat/completions", &chat).await;
    assert_eq!(response.status(), 200);
    let received = new_host.received();
    assert_eq!(received.len(), 1, "the request went to the new host");
    assert_eq!(received[0].headers["authorization"], format!("Bearer {new_key}"));
    for r in &received {
        let seen = format!("{:?} {}", r.headers, String::from_utf8_lossy(&r.body));
        assert!(!seen.contains(old_key), "the new host never sees the old key: {seen}");
    }
    // The console accepts a move with its key too.
    let fields = form_fields(&csrf, "sk-console-entered-key-55aa", &new_base);
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = root.post(&edit, &pairs).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(channel(&app, id).await["base_url"], new_host.base_url("c"));

    // Types whose host comes from elsewhere: a type's default base URL, Bedrock's region.
    let default_host = app
        .add_channel(json!({ "name": "vendor", "type": "openai", "key": "sk-vendor-0000", "models": ["other"] }))
        .await;
    let path = format!("/api/admin/channels/{default_host}");
    let (status, answer) = app.admin("PATCH", &path, Some(json!({ "type": "deepseek" }))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("key_required")), "{answer}");
    let (status, answer) =
        app.admin("PATCH", &path, Some(json!({ "base_url": "https://API.openai.com:443/v1/" }))).await;
    assert_eq!(status, 200, "the type's default host written out is no move: {answer}");
    let bedrock = app
        .add_channel(json!({ "name": "aws", "type": "bedrock", "key": "AKIAEXAMPLE:secretsecret",
                             "models": ["claude"], "config": { "region": "us-east-1" } }))
        .await;
    let path = format!("/api/admin/channels/{bedrock}");
    let (status, answer) = app.admin("PATCH", &path, Some(json!({ "config": { "region": "eu-west-3" } }))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("key_required")), "{answer}");
    assert_eq!(channel(&app, bedrock).await["config"]["region"], "us-east-1");
    let (status, answer) =
        app.admin("PATCH", &path, Some(json!({ "config": { "region": "us-east-1" }, "weight": 2 }))).await;
    assert_eq!(status, 200, "same region, no key needed: {answer}");
    let body = json!({ "config": { "region": "eu-west-3" }, "key": "AKIANEW:othersecret" });
    assert_eq!(app.admin("PATCH", &path, Some(body)).await.0, 200);
    // Enabling, disabling and copying never move a channel: no key needed.
    assert_eq!(app.admin("POST", &format!("/api/admin/channels/{id}/disable"), None).await.0, 200);
    assert_eq!(app.admin("POST", &format!("/api/admin/channels/{id}/enable"), None).await.0, 200);
    app.assert_ledger_consistent().await;
}

/// The edit form of the channel "main" as a browser posts it.
fn form_fields(csrf: &str, key: &str, base_url: &str) -> Vec<(&'static str, String)> {
    [
        ("csrf", csrf),
        ("name", "main"),
        ("type", "openai"),
        ("base_url", base_url),
        ("key", key),
        ("models", MODEL),
        ("groups", "default"),
        ("priority", "0"),
        ("weight", "3"),
        ("enabled", "on"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

/// A credit call with an optional `Idempotency-Key`: `(status, JSON)`.
async fn credit(app: &TestApp, user: i64, key: Option<&str>, amount: &str, note: &str) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    let body = json!({ "amount": amount, "note": note });
    call(app, ADMIN_TOKEN, "POST", &format!("/api/admin/users/{user}/credit"), &headers, Some(body)).await
}

async fn adjustments(app: &TestApp, user: i64) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM ledger WHERE user_id = $1 AND kind = 'adjustment'")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0)
}

async fn credit_honours_an_idempotency_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = id_of(&app, &user_with_role(&app, "alice", "user").await).await;
    let bob = id_of(&app, &user_with_role(&app, "bob", "user").await).await;

    let first = credit(&app, alice, Some("refund-4711"), "5", "refund #4711").await;
    assert_eq!(first.0, 200, "{first:?}");
    // A retry (a timeout, a double click in a script) gets the first answer and moves nothing.
    for _ in 0..3 {
        assert_eq!(credit(&app, alice, Some("refund-4711"), "5", "refund #4711").await, first);
    }
    assert_eq!((app.balance(alice).await, adjustments(&app, alice).await), (5_000_000_000, 1));
    // The same key for another request: refused, nothing moves.
    for (user, amount, note) in [
        (alice, "50", "refund #4711"),
        (alice, "5", "another note"),
        (bob, "5", "refund #4711"),
        (alice, "-5", "refund #4711"),
    ] {
        let (status, answer) = credit(&app, user, Some("refund-4711"), amount, note).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("conflict")), "{user} {amount} {note}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("Idempotency-Key"), "{answer}");
    }
    assert_eq!((app.balance(alice).await, app.balance(bob).await), (5_000_000_000, 0));
    // Another key is another credit; no key at all keeps the old behaviour (each call credits).
    assert_eq!(credit(&app, alice, Some("refund-4712"), "5", "refund #4711").await.0, 200);
    assert_eq!(credit(&app, alice, None, "1", "goodwill").await.0, 200);
    assert_eq!(credit(&app, alice, None, "1", "goodwill").await.0, 200);
    assert_eq!(app.balance(alice).await, 12_000_000_000);

    // A debit that empties the balance, retried: the first answer again, not "insufficient".
    let taken = credit(&app, alice, Some("close-account"), "-12", "account closed").await;
    assert_eq!(taken.0, 200, "{taken:?}");
    assert_eq!(credit(&app, alice, Some("close-account"), "-12", "account closed").await, taken);
    assert_eq!(app.balance(alice).await, 0);

    // Keys belong to the operator who sent them: another admin's same key is its own request.
    let (_, admin) = token_of(&app, "ops", "admin").await;
    let path = format!("/api/admin/users/{bob}/credit");
    let body = json!({ "amount": "2", "note": "refund #4711" });
    let headers = [("Idempotency-Key", "refund-4711")];
    let (status, answer) = call(&app, &admin, "POST", &path, &headers, Some(body.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(call(&app, &admin, "POST", &path, &headers, Some(body.clone())).await, (status, answer));
    assert_eq!(app.balance(bob).await, 2_000_000_000);

    // Bad keys are refused before anything moves.
    let long = "k".repeat(256);
    let max = "k".repeat(255);
    for bad in ["", "has space", "tab\tkey", long.as_str()] {
        let (status, answer) = credit(&app, bob, Some(bad), "1", "n").await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_request")), "{bad:?}: {answer}");
    }
    let response = app
        .client
        .post(app.url(&format!("/api/admin/users/{bob}/credit")))
        .bearer_auth(ADMIN_TOKEN)
        .header("Idempotency-Key", "one")
        .header("Idempotency-Key", "two")
        .json(&json!({ "amount": "1", "note": "n" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .client
        .post(app.url(&format!("/api/admin/users/{bob}/credit")))
        .bearer_auth(ADMIN_TOKEN)
        .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes("clé".as_bytes()).unwrap())
        .json(&json!({ "amount": "1", "note": "n" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.balance(bob).await, 2_000_000_000, "refused keys moved nothing");
    assert_eq!(credit(&app, bob, Some(&max), "1", "n").await.0, 200);
    // Replays write no audit row: one per real change.
    let (_, rows) = app.admin("GET", "/api/admin/audit?action=user.credit", None).await;
    let alice_target = alice.to_string();
    let credits = rows["data"].as_array().unwrap().iter().filter(|r| r["target_id"] == alice_target.as_str()).count();
    assert_eq!(credits, 4, "{rows}");
    app.assert_ledger_consistent().await;
}

async fn concurrent_credits_with_one_idempotency_key_move_money_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = id_of(&app, &user_with_role(&app, "dora", "user").await).await;
    let calls = (0..20).map(|_| credit(&app, user, Some("batch-2026-01"), "7.5", "monthly grant"));
    let answers = futures_util::future::join_all(calls).await;
    for answer in &answers {
        assert_eq!(answer, &answers[0], "every caller gets the same answer");
    }
    assert_eq!(answers[0].0, 200, "{:?}", answers[0]);
    assert_eq!(answers[0].1["balance"].as_str().map(|b| b.parse::<f64>().unwrap()), Some(7.5));
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM ledger WHERE idempotency_key LIKE '%batch-2026-01'")
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!((rows, adjustments(&app, user).await), (1, 1));
    assert_eq!(app.balance(user).await, 7_500_000_000);

    // Concurrent retries of a debit larger than half the balance: one debit, never a 409.
    let calls = (0..20).map(|_| credit(&app, user, Some("fee-1"), "-5", "fee"));
    let answers = futures_util::future::join_all(calls).await;
    for answer in &answers {
        assert_eq!(answer, &answers[0], "every caller gets the same answer");
    }
    assert_eq!(answers[0].0, 200, "{:?}", answers[0]);
    assert_eq!(app.balance(user).await, 2_500_000_000);
    app.assert_ledger_consistent().await;
}

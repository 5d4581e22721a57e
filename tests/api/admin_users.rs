//! `/admin/users`, `/admin/groups`, `/admin/pricing` and their `/api/admin/*` twins: search,
//! credit and debit with a note, group / role / status under the role rules (disable ends
//! sessions and stops keys), group model allowlists at the gateway, the price table with
//! per-group prices, One API ratio import / export and the default price list, audit rows.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::admin_console::{access_token, user_with_role};
use crate::console_auth::Browser;
use crate::gateway::chat;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    users_api_searches_adjusts_and_changes,
    role_rules_hold_for_admins_and_the_last_root,
    disabling_ends_sessions_and_stops_keys_at_once,
    user_pages_search_show_and_act,
    users_and_resellers_are_refused_everywhere,
    groups_api_and_page,
    a_group_allowlist_refuses_other_models,
    prices_api_imports_ratios_exactly,
    pricing_page_edits_rows_imports_and_applies_defaults,
);

/// The user's id, by email.
async fn id_of(app: &TestApp, email: &str) -> i64 {
    sqlx::query("SELECT id FROM users WHERE email = $1").bind(email).fetch_one(app.db.pool()).await.unwrap().get(0)
}

/// The audit rows with `action`: their details as JSON.
async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    sqlx::query("SELECT details FROM audit_log WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(&r.get::<String, _>(0)).unwrap())
        .collect()
}

/// A request with a bearer token: `(status, JSON)`.
async fn with_token(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn users_api_searches_adjusts_and_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    app.admin("PUT", "/api/admin/groups/vip", Some(json!({ "multiplier": "0.8" }))).await;
    for i in 0..5 {
        let body = json!({ "email": format!("alice{i}@example.com"), "password": "a fine password", "group": "vip" });
        assert_eq!(app.admin("POST", "/api/admin/users", Some(body)).await.0, 201);
    }
    let bob = user_with_role(&app, "bob", "reseller").await;
    let bob_id = id_of(&app, &bob).await;

    let (status, found) = app.admin("GET", "/api/admin/users?q=ALICE&per_page=2", None).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!((found["total"].as_i64(), found["data"].as_array().unwrap().len()), (Some(5), 2));
    assert_eq!(found["has_next"], true);
    let (_, last) = app.admin("GET", "/api/admin/users?q=alice&per_page=2&page=3", None).await;
    assert_eq!((last["data"].as_array().unwrap().len(), last["has_next"].as_bool()), (1, Some(false)));
    let (_, resellers) = app.admin("GET", "/api/admin/users?role=reseller", None).await;
    assert_eq!(resellers["data"][0]["email"], bob);
    let (_, vip) = app.admin("GET", "/api/admin/users?group=vip&status=active", None).await;
    assert_eq!(vip["total"], 5);
    for bad in ["role=king", "status=gone", "page=0", "per_page=1000", "page=x"] {
        assert_eq!(app.admin("GET", &format!("/api/admin/users?{bad}"), None).await.0, 400, "{bad}");
    }

    let credit_path = format!("/api/admin/users/{bob_id}/credit");
    let credit = |amount: &str, note: Option<&str>| {
        let mut body = json!({ "amount": amount });
        if let Some(note) = note {
            body["note"] = json!(note);
        }
        app.admin("POST", &credit_path, Some(body))
    };
    assert_eq!(credit("5", None).await.0, 400, "the note is required");
    assert_eq!(credit("5", Some("  ")).await.0, 400, "a blank note is no note");
    assert_eq!(credit("0", Some("nothing")).await.0, 400);
    let (status, body) = credit("10.50", Some("goodwill")).await;
    assert_eq!((status, body["balance"].as_str()), (200, Some("10.50")), "{body}");
    let (status, body) = credit("-20", Some("too much")).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = credit("-0.50", Some("refund of a mistake")).await;
    assert_eq!((status, body["balance"].as_str()), (200, Some("10.00")));
    assert_eq!(app.balance(bob_id).await, 10_000_000_000);
    app.assert_ledger_consistent().await;

    let (status, ledger) = app.admin("GET", &format!("/api/admin/users/{bob_id}/ledger?limit=5"), None).await;
    assert_eq!(status, 200);
    assert_eq!(ledger["balance"], "10.00");
    assert_eq!(ledger["data"][0]["note"], "refund of a mistake");
    assert_eq!(ledger["data"][0]["amount"], "-0.50");
    assert_eq!(ledger["next_before"], serde_json::Value::Null, "two rows: one page");
    assert_eq!(app.admin("GET", &format!("/api/admin/users/{bob_id}/ledger?limit=0"), None).await.0, 400);
    assert_eq!(app.admin("GET", "/api/admin/users/99999/ledger", None).await.0, 404);

    app.admin("POST", &format!("/api/admin/users/{bob_id}/keys"), Some(json!({ "name": "ci" }))).await;
    let (status, keys) = app.admin("GET", &format!("/api/admin/users/{bob_id}/keys"), None).await;
    assert_eq!((status, keys["data"][0]["name"].as_str()), (200, Some("ci")));
    assert!(!keys.to_string().contains("key_hash"));
    assert_eq!(app.admin("GET", "/api/admin/users/99999/keys", None).await.0, 404);
    let (status, usage) = app.admin("GET", &format!("/api/admin/users/{bob_id}/usage"), None).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["last_30_days"], json!({ "requests": 0, "spend": "0.00" }));
    assert_eq!(app.admin("GET", &format!("/api/admin/users/{bob_id}/usage?from=yesterday"), None).await.0, 400);
    assert_eq!(app.admin("GET", "/api/admin/users/99999/usage", None).await.0, 404);

    let patch_path = format!("/api/admin/users/{bob_id}");
    let patch = |body: Value| app.admin("PATCH", &patch_path, Some(body));
    let (status, changed) = patch(json!({ "group": "vip", "role": "user" })).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!((changed["group"].as_str(), changed["role"].as_str()), (Some("vip"), Some("user")));
    for bad in [
        json!({}),
        json!({ "group": "nope" }),
        json!({ "role": "king" }),
        json!({ "status": "asleep" }),
        json!({ "email": "x@y.z" }),
    ] {
        assert_eq!(patch(bad.clone()).await.0, 400, "{bad}");
    }
    assert_eq!(app.admin("PATCH", "/api/admin/users/99999", Some(json!({ "role": "user" }))).await.0, 404);
    let (_, after) = app.admin("GET", &format!("/api/admin/users/{bob_id}"), None).await;
    assert_eq!(
        (after["group"].as_str(), after["role"].as_str()),
        (Some("vip"), Some("user")),
        "refusals changed nothing"
    );

    let updates = audit(&app, "user.update").await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["before"], json!({ "group": "default", "role": "reseller" }));
    assert_eq!(updates[0]["after"], json!({ "group": "vip", "role": "user" }));
    let credits = audit(&app, "user.credit").await;
    assert_eq!(credits[0]["note"], "goodwill");
    assert_eq!(credits[0]["after"]["balance"], "10.50");
    let debits = audit(&app, "user.debit").await;
    assert_eq!(
        (debits.len(), debits[0]["before"]["balance"].as_str()),
        (1, Some("10.50")),
        "a refused debit is not audited"
    );
}

async fn role_rules_hold_for_admins_and_the_last_root(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin_email = user_with_role(&app, "ops", "admin").await;
    let other_admin = id_of(&app, &user_with_role(&app, "ops2", "admin").await).await;
    let user = id_of(&app, &user_with_role(&app, "carol", "user").await).await;
    let root = id_of(&app, crate::support::helpers::ADMIN_EMAIL).await;
    let mut browser = Browser::new(&app);
    browser.log_in(&admin_email, "a fine password").await;
    let token = access_token(&mut browser).await;

    // An admin acts on users, never on admins or root, and never makes admins.
    let credit = json!({ "amount": "1", "note": "n" });
    assert_eq!(
        with_token(&app, &token, "POST", &format!("/api/admin/users/{user}/credit"), Some(credit.clone())).await.0,
        200
    );
    for target in [other_admin, root] {
        let (status, body) =
            with_token(&app, &token, "POST", &format!("/api/admin/users/{target}/credit"), Some(credit.clone())).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
        let (status, _) = with_token(
            &app,
            &token,
            "PATCH",
            &format!("/api/admin/users/{target}"),
            Some(json!({ "status": "disabled" })),
        )
        .await;
        assert_eq!(status, 403);
    }
    let (status, _) =
        with_token(&app, &token, "PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "role": "admin" }))).await;
    assert_eq!(status, 403, "only root makes admins");
    let (status, _) =
        with_token(&app, &token, "PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "role": "reseller" })))
            .await;
    assert_eq!(status, 200, "an admin may make resellers");
    let body = json!({ "email": "sneaky@example.com", "password": "a fine password", "role": "admin" });
    assert_eq!(with_token(&app, &token, "POST", "/api/admin/users", Some(body)).await.0, 403);
    // The console says the same.
    let csrf = browser.csrf(&format!("/admin/users/{user}")).await;
    let (status, _, page) =
        browser.post(&format!("/admin/users/{root}/adjust"), &[("amount", "1"), ("note", "n"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Only the root account can change an admin"), "{page}");
    let (status, _, page) = browser.get(&format!("/admin/users/{root}")).await;
    assert_eq!(status, StatusCode::OK, "admins may look");
    assert!(!page.contains("data-testid=\"adjust-form\"") && page.contains("only the root account can change it"));
    let (status, _, _) =
        browser.post(&format!("/admin/users/{user}/update"), &[("role", "admin"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Root makes and unmakes admins; the last root stays root and active.
    assert_eq!(app.admin("PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "role": "admin" }))).await.0, 200);
    assert_eq!(
        app.admin("PATCH", &format!("/api/admin/users/{other_admin}"), Some(json!({ "role": "user" }))).await.0,
        200
    );
    let (status, body) =
        app.admin("PATCH", &format!("/api/admin/users/{root}"), Some(json!({ "role": "admin" }))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        app.admin("PATCH", &format!("/api/admin/users/{root}"), Some(json!({ "status": "disabled" }))).await.0,
        409
    );
    assert_eq!(app.admin("PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "role": "root" }))).await.0, 200);
    assert_eq!(
        app.admin("PATCH", &format!("/api/admin/users/{root}"), Some(json!({ "role": "admin" }))).await.0,
        200,
        "no longer the last"
    );
    let roles = audit(&app, "user.update").await;
    assert!(roles.iter().any(|d| d["before"]["role"] == "root" && d["after"]["role"] == "admin"), "{roles:?}");
}

async fn disabling_ends_sessions_and_stops_keys_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(
        json!({ "name": "a", "type": "openai", "base_url": fake.base_url("a"), "key": "k", "models": ["m"] }),
    )
    .await;
    app.set_price("m", json!({ "input": "0.01", "output": "0.01" })).await;
    let (user, key) = app.user_with_key("1").await;
    let email: String =
        sqlx::query("SELECT email FROM users WHERE id = $1").bind(user).fetch_one(app.db.pool()).await.unwrap().get(0);
    let mut victim = Browser::new(&app);
    victim.log_in(&email, "password123").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("m")).await.status(), 200, "the key works (and is cached)");

    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let csrf = root.csrf(&format!("/admin/users/{user}")).await;
    let (status, location, _) =
        root.post(&format!("/admin/users/{user}/status"), &[("status", "disabled"), ("csrf", &csrf)]).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, format!("/admin/users/{user}?done=disabled").as_str())
    );
    let (_, _, page) = root.get(&location).await;
    assert!(page.contains("sessions ended") && page.contains("data-testid=\"user-status\">Disabled"), "{page}");

    let (status, location, _) = victim.get("/console").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"), "the session ended");
    let refused = app.v1(&key, "/v1/chat/completions", &chat("m")).await.status();
    assert!(refused == 401 || refused == 403, "the cached key stopped at once: {refused}");

    let (status, _, _) =
        root.post(&format!("/admin/users/{user}/status"), &[("status", "active"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("m")).await.status(), 200, "re-enabled");
    let changes = audit(&app, "user.update").await;
    assert_eq!(changes[0]["after"], json!({ "status": "disabled" }));
    assert_eq!(changes[1]["after"], json!({ "status": "active" }));
    app.assert_ledger_consistent().await;
}

async fn user_pages_search_show_and_act(backend: Backend) {
    let app = spawn_app(backend).await;
    let dave = user_with_role(&app, "dave", "user").await;
    let dave_id = id_of(&app, &dave).await;
    for i in 0..30 {
        user_with_role(&app, &format!("filler{i:02}"), "user").await;
    }
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;

    let (status, _, page) = root.get("/admin/users").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"next-page\"") && page.contains("32 users"), "paged: {page}");
    let (_, _, page) = root.get("/admin/users?q=dave&role=user&group=default&status=active").await;
    assert!(page.contains(&format!("href=\"/admin/users/{dave_id}\"")) && !page.contains("filler"), "{page}");
    let (_, _, page) = root.get("/admin/users?q=nobody-like-this").await;
    assert!(page.contains("No users match."));
    let (status, _, page) = root.get("/admin/users?role=king").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("role: root, admin, reseller or user"));
    let (_, _, page) = root.get("/admin/users?page=2").await;
    assert!(page.contains("Previous"));

    let (status, _, page) = root.get(&format!("/admin/users/{dave_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&dave) && page.contains("data-testid=\"adjust-form\"") && page.contains("No ledger rows yet.")
    );
    assert_eq!(root.get("/admin/users/99999").await.0, StatusCode::NOT_FOUND);
    assert_eq!(root.get("/admin/users/abc").await.0, StatusCode::NOT_FOUND);

    let csrf = root.csrf(&format!("/admin/users/{dave_id}")).await;
    let path = format!("/admin/users/{dave_id}/adjust");
    let (status, location, _) = root
        .post(&path, &[("amount", "3.00"), ("note", "welcome <b>gift</b>"), ("direction", "credit"), ("csrf", &csrf)])
        .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, format!("/admin/users/{dave_id}?done=credited").as_str())
    );
    let (_, _, page) = root.get(&location).await;
    assert!(
        page.contains("Balance credited.") && page.contains("welcome &#60;b&#62;gift&#60;/b&#62;"),
        "escaped note: {page}"
    );
    assert!(page.contains("data-testid=\"user-balance\">3.00"));
    let (status, _, page) =
        root.post(&path, &[("amount", "1"), ("note", ""), ("direction", "debit"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("note: say why") && page.contains("value=\"1\""), "the form is kept: {page}");
    let (status, _, page) =
        root.post(&path, &[("amount", "5"), ("note", "too much"), ("direction", "debit"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("does not cover"));
    let (status, _, _) =
        root.post(&path, &[("amount", "-1"), ("note", "n"), ("direction", "credit"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, location, _) =
        root.post(&path, &[("amount", "1"), ("note", "fee"), ("direction", "debit"), ("csrf", &csrf)]).await;
    assert_eq!((status, location.contains("done=debited")), (StatusCode::SEE_OTHER, true));
    assert_eq!(app.balance(dave_id).await, 2_000_000_000);

    app.admin("PUT", "/api/admin/groups/gold", Some(json!({ "multiplier": "0.9" }))).await;
    let update = format!("/admin/users/{dave_id}/update");
    let (status, location, _) = root.post(&update, &[("group", "gold"), ("role", "reseller"), ("csrf", &csrf)]).await;
    assert_eq!((status, location.contains("done=updated")), (StatusCode::SEE_OTHER, true));
    let (status, _, page) = root.post(&update, &[("group", "nope"), ("role", "user"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("group: &#34;nope&#34; does not exist"), "{page}");
    let (_, user) = app.admin("GET", &format!("/api/admin/users/{dave_id}"), None).await;
    assert_eq!((user["group"].as_str(), user["role"].as_str()), (Some("gold"), Some("reseller")));
    let (status, _, _) =
        root.post(&format!("/admin/users/{dave_id}/status"), &[("status", "sleeping"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        root.post("/admin/users/99999/update", &[("role", "user"), ("csrf", &csrf)]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(root.post("/admin/users/x/adjust", &[("csrf", &csrf)]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(root.post("/admin/users/x/update", &[("csrf", &csrf)]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(root.post("/admin/users/x/status", &[("csrf", &csrf)]).await.0, StatusCode::NOT_FOUND);
    app.assert_ledger_consistent().await;
}

async fn users_and_resellers_are_refused_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let target = id_of(&app, &user_with_role(&app, "target", "user").await).await;
    let api: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/admin/users".into(), None),
        ("PATCH", format!("/api/admin/users/{target}"), Some(json!({ "status": "disabled" }))),
        ("POST", format!("/api/admin/users/{target}/credit"), Some(json!({ "amount": "1", "note": "n" }))),
        ("GET", format!("/api/admin/users/{target}/ledger"), None),
        ("GET", format!("/api/admin/users/{target}/keys"), None),
        ("GET", format!("/api/admin/users/{target}/usage"), None),
        ("GET", "/api/admin/groups".into(), None),
        ("PUT", "/api/admin/groups/g1".into(), Some(json!({ "multiplier": "1" }))),
        ("DELETE", "/api/admin/groups/g1".into(), None),
        ("PUT", "/api/admin/groups/default/prices/m".into(), Some(json!({ "input": "1" }))),
        ("DELETE", "/api/admin/groups/default/prices/m".into(), None),
        ("GET", "/api/admin/prices".into(), None),
        ("PUT", "/api/admin/prices/m".into(), Some(json!({ "input": "1" }))),
        ("DELETE", "/api/admin/prices/m".into(), None),
        ("POST", "/api/admin/prices/import-ratios".into(), Some(json!({ "ModelRatio": { "m": 1 } }))),
        ("GET", "/api/admin/prices/export-ratios".into(), None),
        ("POST", "/api/admin/prices/defaults".into(), Some(json!({}))),
    ];
    let pages = [
        "/admin/users".to_string(),
        format!("/admin/users/{target}"),
        "/admin/groups".into(),
        "/admin/pricing".into(),
        "/admin/pricing/row?model=m".into(),
        "/admin/pricing/export".into(),
    ];
    let forms = [
        format!("/admin/users/{target}/adjust"),
        format!("/admin/users/{target}/update"),
        format!("/admin/users/{target}/status"),
        "/admin/groups".into(),
        "/admin/groups/default/delete".into(),
        "/admin/pricing/prices".into(),
        "/admin/pricing/prices/delete".into(),
        "/admin/pricing/overrides".into(),
        "/admin/pricing/overrides/delete".into(),
        "/admin/pricing/import".into(),
        "/admin/pricing/defaults".into(),
    ];
    for role in ["user", "reseller"] {
        let email = user_with_role(&app, &format!("{role}x"), role).await;
        let mut browser = Browser::new(&app);
        browser.log_in(&email, "a fine password").await;
        let token = access_token(&mut browser).await;
        for (method, path, body) in &api {
            let (status, answer) = with_token(&app, &token, method, path, body.clone()).await;
            assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{role} {method} {path}");
        }
        for path in &pages {
            assert_eq!(browser.get(path).await.0, StatusCode::FORBIDDEN, "{role} GET {path}");
        }
        let csrf = browser.csrf("/console/profile").await;
        for path in &forms {
            let (status, _, _) =
                browser.post(path, &[("csrf", &csrf), ("status", "disabled"), ("amount", "1"), ("note", "n")]).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{role} POST {path}");
        }
    }
    let (_, user) = app.admin("GET", &format!("/api/admin/users/{target}"), None).await;
    assert_eq!((user["status"].as_str(), user["balance"].as_str()), (Some("active"), Some("0.00")), "nothing changed");
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action NOT LIKE 'user.create'")
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

async fn groups_api_and_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, group) = app
        .admin(
            "PUT",
            "/api/admin/groups/team",
            Some(json!({ "multiplier": "0.75", "description": "Team", "models": ["a", " b ", "a"] })),
        )
        .await;
    assert_eq!(status, 200, "{group}");
    assert_eq!(
        group,
        json!({ "name": "team", "description": "Team", "multiplier": "0.75", "models": ["a", "b"], "users": 0,
                "billing": { "cap_output_by_balance": false },
                "limits": { "budget": null, "budget_period": null, "rpm": null, "rpd": null, "tpm": null, "concurrency": null } })
    );
    for bad in [
        json!({ "multiplier": "-1" }),
        json!({ "multiplier": "1", "models": ["bad\nname"] }),
        json!({ "multiplier": "1", "colour": "red" }),
    ] {
        assert_eq!(app.admin("PUT", "/api/admin/groups/team", Some(bad.clone())).await.0, 400, "{bad}");
    }
    let (status, list) = app.admin("GET", "/api/admin/groups", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "team"]);
    assert_eq!(list["data"][0]["models"], Value::Null);

    let (status, body) = app.admin("DELETE", "/api/admin/groups/default", None).await;
    assert_eq!(status, 400, "{body}");
    let body = json!({ "email": "member@example.com", "password": "a fine password", "group": "team" });
    app.admin("POST", "/api/admin/users", Some(body)).await;
    let (status, body) = app.admin("DELETE", "/api/admin/groups/team", None).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("1 users belong"), "{body}");
    assert_eq!(app.admin("DELETE", "/api/admin/groups/ghost", None).await.0, 404);
    app.admin("PUT", "/api/admin/groups/spare", Some(json!({ "multiplier": "2" }))).await;
    assert_eq!(app.admin("DELETE", "/api/admin/groups/spare", None).await.0, 204);

    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (status, _, page) = root.get("/admin/groups").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<code>team</code>") && page.contains("×0.75") && page.contains("a, b"), "{page}");
    assert!(page.contains("Every model"));
    let (_, _, page) = root.get("/admin/groups?edit=team").await;
    assert!(page.contains("Edit group") && page.contains("readonly"), "{page}");
    let csrf = root.csrf("/admin/groups").await;
    let (status, location, _) = root
        .post(
            "/admin/groups",
            &[
                ("name", "promo"),
                ("multiplier", "0.5"),
                ("description", "<i>x</i>"),
                ("models", "gpt-4o\nclaude, gemini"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/groups?done=saved"));
    let (_, _, page) = root.get(&location).await;
    assert!(page.contains("Group saved.") && page.contains("gpt-4o, claude, gemini") && page.contains("&#60;i&#62;x"));
    let (status, _, page) =
        root.post("/admin/groups", &[("name", "bad name"), ("multiplier", "1"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("group names are"));
    let (status, location, _) = root.post("/admin/groups/promo/delete", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/groups?done=deleted"));
    let (status, _, page) = root.post("/admin/groups/team/delete", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("move them to another group first"));
    assert_eq!(root.post("/admin/groups/ghost/delete", &[("csrf", &csrf)]).await.0, StatusCode::NOT_FOUND);

    let created = audit(&app, "group.create").await;
    assert_eq!(created[0]["models"], json!(["a", "b"]));
    let deleted = audit(&app, "group.delete").await;
    assert_eq!(deleted.len(), 2);
    assert_eq!(deleted[1]["before"]["multiplier"], "0.5");
}

async fn a_group_allowlist_refuses_other_models(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.admin("PUT", "/api/admin/groups/narrow", Some(json!({ "multiplier": "1", "models": ["m1"] }))).await;
    app.add_channel(json!({ "name": "a", "type": "openai", "base_url": fake.base_url("a"), "key": "k", "models": ["m1", "m2"], "groups": ["default", "narrow"] })).await;
    for m in ["m1", "m2"] {
        app.set_price(m, json!({ "input": "0.01", "output": "0.01" })).await;
    }
    let (_, narrow_key) = app.user_with_key_in("narrow", "1", json!({})).await;
    let (_, wide_key) = app.user_with_key("1").await;
    assert_eq!(app.v1(&narrow_key, "/v1/chat/completions", &chat("m1")).await.status(), 200);
    let refused = app.v1(&narrow_key, "/v1/chat/completions", &chat("m2")).await;
    assert_eq!(refused.status(), 404, "a model outside the group's allowlist");
    assert_eq!(
        app.v1(&wide_key, "/v1/chat/completions", &chat("m2")).await.status(),
        200,
        "other groups are unaffected"
    );
    let models: Value =
        app.client.get(app.url("/v1/models")).bearer_auth(&narrow_key).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["m1"]);
    // Lifting the allowlist opens the model at once.
    app.admin("PUT", "/api/admin/groups/narrow", Some(json!({ "multiplier": "1" }))).await;
    assert_eq!(app.v1(&narrow_key, "/v1/chat/completions", &chat("m2")).await.status(), 200);
    app.assert_ledger_consistent().await;
}

async fn prices_api_imports_ratios_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    let ratios = json!({
        "ModelRatio": { "gpt-4": 15, "gpt-3.5-turbo": 0.75, "tiny": 0.0375, "text": "1.5" },
        "CompletionRatio": { "gpt-4": 2, "gpt-3.5-turbo": 1.333333 },
        "ModelPrice": { "dall-e-3": 0.04 },
        "GroupRatio": "{\"vip\": 0.8, \"svip\": 1.25}",
    });
    let (status, body) = app.admin("POST", "/api/admin/prices/import-ratios", Some(ratios)).await;
    assert_eq!((status, body), (200, json!({ "models": 5, "groups": 2 })));
    let price = |model: &str| {
        let model = model.to_string();
        let pool = app.db.pool().clone();
        async move {
            let row =
                sqlx::query("SELECT input_per_mtok, output_per_mtok, per_request FROM model_prices WHERE model = $1")
                    .bind(model)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (row.get::<Option<i64>, _>(0), row.get::<Option<i64>, _>(1), row.get::<Option<i64>, _>(2))
        }
    };
    // ratio × $2 per 1M tokens, in nano-units; output × the completion ratio (1 when absent).
    assert_eq!(price("gpt-4").await, (Some(30_000_000_000), Some(60_000_000_000), None));
    assert_eq!(price("gpt-3.5-turbo").await, (Some(1_500_000_000), Some(1_999_999_500), None));
    assert_eq!(price("tiny").await, (Some(75_000_000), Some(75_000_000), None));
    assert_eq!(price("text").await, (Some(3_000_000_000), Some(3_000_000_000), None));
    assert_eq!(price("dall-e-3").await, (None, None, Some(40_000_000)));
    let (_, groups) = app.admin("GET", "/api/admin/groups", None).await;
    let vip = groups["data"].as_array().unwrap().iter().find(|g| g["name"] == "vip").unwrap().clone();
    assert_eq!(vip["multiplier"], "0.8");

    // Bad input: a clear error and nothing changed.
    for (bad, says) in [
        (r#"{"ModelRatio": {"gpt-4": 1}, "CompletionRatio": {"gpt-4": "x"}}"#, "CompletionRatio.gpt-4"),
        (r#"{"ModelRatio": {"gpt-4": -3}}"#, "ModelRatio.gpt-4"),
        (r#"{"ModelRatio": [1, 2]}"#, "ModelRatio"),
        (r#"{"GroupRatio": {"bad name": 1}}"#, "GroupRatio"),
        (r#"{"ModelRatio": {"gpt-4": 1}"#, "invalid JSON"),
        (r#"{"Other": 1}"#, "nothing to import"),
    ] {
        let response = app
            .client
            .post(app.url("/api/admin/prices/import-ratios"))
            .bearer_auth(crate::support::helpers::ADMIN_TOKEN)
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{bad}: {body}");
    }
    assert_eq!(price("gpt-4").await, (Some(30_000_000_000), Some(60_000_000_000), None), "unchanged");

    let (status, exported) = app.admin("GET", "/api/admin/prices/export-ratios", None).await;
    assert_eq!(status, 200);
    assert_eq!(exported["ModelRatio"]["gpt-4"], json!(15));
    assert_eq!(exported["ModelRatio"]["tiny"], json!(0.0375));
    assert_eq!(exported["CompletionRatio"]["gpt-4"], json!(2));
    assert_eq!(exported["ModelPrice"]["dall-e-3"], json!(0.04));
    assert_eq!(exported["GroupRatio"]["vip"], json!(0.8));

    // List, search, set, delete; per-group prices.
    let (_, list) = app.admin("GET", "/api/admin/prices?q=GPT", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (status, set) = app
        .admin(
            "PUT",
            "/api/admin/prices/tiny",
            Some(json!({ "input": "0.10", "output": "0.40", "cached_input": "0.025" })),
        )
        .await;
    assert_eq!((status, set["cached_input"].as_str()), (200, Some("0.025")), "{set}");
    assert_eq!(app.admin("PUT", "/api/admin/prices/tiny", Some(json!({ "input": "abc" }))).await.0, 400);
    assert_eq!(app.admin("DELETE", "/api/admin/prices/text", None).await.0, 204);
    assert_eq!(app.admin("DELETE", "/api/admin/prices/text", None).await.0, 404);
    assert_eq!(
        app.admin("PUT", "/api/admin/groups/vip/prices/gpt-4", Some(json!({ "input": "20", "output": "40" }))).await.0,
        200
    );
    let (_, list) = app.admin("GET", "/api/admin/prices", None).await;
    assert_eq!(list["group_prices"][0]["group"], "vip");
    assert_eq!(list["group_prices"][0]["input"], "20.00");
    assert_eq!(app.admin("DELETE", "/api/admin/groups/vip/prices/gpt-4", None).await.0, 204);
    assert_eq!(app.admin("DELETE", "/api/admin/groups/vip/prices/gpt-4", None).await.0, 404);

    // Defaults: missing models only, unless asked.
    let (status, applied) = app.admin("POST", "/api/admin/prices/defaults", Some(json!({}))).await;
    assert_eq!(status, 200, "{applied}");
    assert!(applied["applied"].as_u64().unwrap() > 20 && applied["kept"] == 0, "{applied}");
    let (_, gpt4o) = app.admin("GET", "/api/admin/prices?q=gpt-4o-mini", None).await;
    assert_eq!(gpt4o["data"][0]["input"], "0.15");
    app.set_price("gpt-4o", json!({ "input": "9", "output": "9" })).await;
    let (_, again) = app.admin("POST", "/api/admin/prices/defaults", None).await;
    assert_eq!(again["applied"], 0);
    let (_, kept) = app.admin("GET", "/api/admin/prices?q=gpt-4o", None).await;
    assert_eq!(kept["data"][0]["input"], "9.00", "kept without overwrite");
    let (_, forced) = app.admin("POST", "/api/admin/prices/defaults", Some(json!({ "overwrite": true }))).await;
    assert_eq!(forced["kept"], 0);
    let (_, replaced) = app.admin("GET", "/api/admin/prices?q=gpt-4o", None).await;
    assert_eq!(replaced["data"][0]["input"], "2.50");
    assert_eq!(app.admin("POST", "/api/admin/prices/defaults", Some(json!({ "overwrite": "yes" }))).await.0, 400);

    assert_eq!(audit(&app, "prices.import").await.len(), 1, "refused imports are not audited");
    assert_eq!(audit(&app, "prices.defaults").await.len(), 3);
    let set = audit(&app, "price.set").await;
    assert_eq!(set.iter().find(|d| d["before"]["input"] == "0.075").unwrap()["after"]["input"], "0.10");
    assert_eq!(audit(&app, "price.delete").await.len(), 1);
    assert_eq!(audit(&app, "group_price.set").await.len(), 1);
    assert_eq!(audit(&app, "group_price.delete").await.len(), 1);
}

async fn pricing_page_edits_rows_imports_and_applies_defaults(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (status, _, page) = root.get("/admin/pricing").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No prices yet."));
    let csrf = root.csrf("/admin/pricing").await;

    let (status, location, _) = root
        .post("/admin/pricing/prices", &[("model", "m-1"), ("input", "1.25"), ("output", "5"), ("csrf", &csrf)])
        .await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/pricing?done=saved"));
    let (status, _, page) =
        root.post("/admin/pricing/prices", &[("model", "m-2"), ("input", "x"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("input:") && page.contains("value=\"m-2\""), "the form is kept: {page}");
    let (_, _, page) = root.get("/admin/pricing?q=m-").await;
    assert!(page.contains("<code>m-1</code>") && page.contains("1.25"));
    let (_, _, page) = root.get("/admin/pricing?q=zzz").await;
    assert!(!page.contains("<code>m-1</code>"));
    let (_, _, page) = root.get("/admin/pricing?edit=m-1").await;
    assert!(page.contains("data-testid=\"price-edit-row\"") && page.contains("form=\"edit-m-1\""), "no-JS row edit");

    // htmx: the row as a form, saved in place, refused in place.
    let client = root.client.clone();
    let hx =
        |request: reqwest::RequestBuilder| request.header("HX-Request", "true").header("X-CSRF-Token", csrf.clone());
    let fragment = root.send(hx(client.get(app.url("/admin/pricing/row?model=m-1&edit=true")))).await;
    assert_eq!(fragment.0, StatusCode::OK);
    assert!(fragment.2.trim_start().starts_with("<tr") && fragment.2.contains("price-edit-row"), "{}", fragment.2);
    assert_eq!(root.send(hx(client.get(app.url("/admin/pricing/row?model=ghost")))).await.0, StatusCode::NOT_FOUND);
    let form =
        |pairs: &[(&str, &str)]| url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let post = |body: String, path: &str| {
        hx(client.post(app.url(path)).header("content-type", "application/x-www-form-urlencoded").body(body))
    };
    let saved = root
        .send(post(
            form(&[("model", "m-1"), ("input", "2"), ("output", "6"), ("cache_write", "2.5")]),
            "/admin/pricing/prices",
        ))
        .await;
    assert_eq!(saved.0, StatusCode::OK);
    assert!(saved.2.contains("data-testid=\"price-row\"") && saved.2.contains("2.50"), "{}", saved.2);
    let refused = root.send(post(form(&[("model", "m-1"), ("input", "-1")]), "/admin/pricing/prices")).await;
    assert!(refused.2.contains("price-edit-row") && refused.2.contains("must not be negative"), "{}", refused.2);
    let (_, priced) = app.admin("GET", "/api/admin/prices?q=m-1", None).await;
    assert_eq!(priced["data"][0]["input"], "2.00", "the refusal changed nothing");

    // Group prices.
    let (status, location, _) = root
        .post(
            "/admin/pricing/overrides",
            &[("group", "default"), ("model", "m-1"), ("input", "1"), ("output", "1"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/pricing?done=override#overrides"));
    let (_, _, page) = root.get("/admin/pricing").await;
    assert!(page.contains("data-testid=\"overrides-table\""));
    let (status, _, _) = root
        .post("/admin/pricing/overrides", &[("group", "ghost"), ("model", "m-1"), ("input", "1"), ("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) =
        root.post("/admin/pricing/overrides/delete", &[("group", "default"), ("model", "m-1"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Import, export, defaults.
    let (status, _, page) =
        root.post("/admin/pricing/import", &[("ratios", "{\"ModelRatio\": {\"r\": \"oops\"}}"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("ModelRatio.r") && page.contains("oops"), "{page}");
    let (status, location, _) =
        root.post("/admin/pricing/import", &[("ratios", "{\"ModelRatio\": {\"r\": 0.5}}"), ("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/pricing?done=imported"));
    let (status, _, exported) = root.get("/admin/pricing/export").await;
    assert_eq!(status, StatusCode::OK);
    let exported: Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(exported["ModelRatio"]["r"], json!(0.5));
    let (status, location, _) = root.post("/admin/pricing/defaults", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/pricing?done=defaults"));
    let (_, _, page) = root.get(&location).await;
    assert!(page.contains("Default prices applied.") && page.contains("claude-sonnet-4-5"));

    // Deleting, plain and htmx.
    let (status, location, _) = root.post("/admin/pricing/prices/delete", &[("model", "r"), ("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/pricing?done=deleted"));
    let gone = root.send(post(form(&[("model", "m-1")]), "/admin/pricing/prices/delete")).await;
    assert_eq!((gone.0, gone.2.as_str()), (StatusCode::OK, ""));
    assert_eq!(audit(&app, "price.delete").await.len(), 2);
}

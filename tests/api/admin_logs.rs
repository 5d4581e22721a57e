//! `/admin/logs`, `/admin/audit` and `/api/admin/logs`, `/api/admin/audit`: every user's
//! requests filtered by user email (plus the usual filters), paged, exported; the audit log by
//! actor, action and target; role boundaries.

use reqwest::StatusCode;
use serde_json::json;

use crate::admin_console::{access_token, user_with_role};
use crate::console_auth::Browser;
use crate::gateway::chat;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    every_users_requests_filtered_by_user,
    the_audit_log_is_filtered_and_paged,
    users_and_resellers_cannot_read_logs
);

/// Two users with one request each, and a failed one for the second: `(first's email, second's)`.
async fn traffic(app: &TestApp) -> (String, String) {
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(
        json!({ "name": "main", "type": "openai", "base_url": fake.base_url("m"), "key": "k", "models": ["gpt-test"] }),
    )
    .await;
    app.set_price("gpt-test", json!({ "input": "1", "output": "2" })).await;
    let mut emails = Vec::new();
    for _ in 0..2 {
        let (id, key) = app.user_with_key("1.00").await;
        assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
        let (_, user) = app.admin("GET", &format!("/api/admin/users/{id}"), None).await;
        emails.push(user["email"].as_str().unwrap().to_string());
        if emails.len() == 2 {
            assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("no-such-model")).await.status(), 404);
        }
    }
    app.wait_for_logs(2).await;
    app.settled().await;
    (emails[0].clone(), emails[1].clone())
}

async fn every_users_requests_filtered_by_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let (first, second) = traffic(&app).await;
    let (status, all) = app.admin("GET", "/api/admin/logs", None).await;
    assert_eq!(status, 200, "{all}");
    let rows = all["data"].as_array().unwrap();
    assert!(rows.len() >= 2, "{all}");
    let (status, mine) = app.admin("GET", &format!("/api/admin/logs?user={}", &first[..8].to_uppercase()), None).await;
    assert_eq!(status, 200, "{mine}");
    let mine = mine["data"].as_array().unwrap();
    assert!(!mine.is_empty() && mine.iter().all(|r| r["user_email"] == first.as_str()), "{mine:?}");
    assert_eq!(mine[0]["model"], "gpt-test");
    let (_, nobody) = app.admin("GET", "/api/admin/logs?user=%25", None).await;
    assert!(nobody["data"].as_array().unwrap().is_empty(), "a % is a literal, not a wildcard");
    let (status, paged) = app.admin("GET", "/api/admin/logs?limit=1", None).await;
    assert_eq!((status, paged["data"].as_array().unwrap().len()), (200, 1));
    let next = paged["next_before"].as_i64().expect("a full page names the next");
    let (_, older) = app.admin("GET", &format!("/api/admin/logs?limit=1&before={next}"), None).await;
    assert!(older["data"][0]["id"].as_i64().unwrap() < next);
    assert_eq!(app.admin("GET", "/api/admin/logs?from=yesterday", None).await.0, 400);
    assert_eq!(app.admin("GET", "/api/admin/logs?limit=0", None).await.0, 400);

    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (status, _, page) = root.get(&format!("/admin/logs?user={second}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&second) && !page.contains(&first), "filtered to the second user");
    let (status, _, page) = root.get("/admin/logs?user=nobody-at-all").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No requests match."));
    let (status, _, page) = root.get("/admin/logs?from=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("role=\"alert\""));
    let (status, _, csv) = root.get(&format!("/admin/logs.csv?user={first}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.starts_with("time,user,") && csv.contains(&first) && !csv.contains(&second), "{csv}");
}

async fn the_audit_log_is_filtered_and_paged(backend: Backend) {
    let app = spawn_app(backend).await;
    for (key, value) in [("site.name", "One"), ("site.name", "Two"), ("site.currency", "EUR")] {
        assert_eq!(
            app.admin("PUT", &format!("/api/admin/settings/{key}"), Some(json!({ "value": value }))).await.0,
            200
        );
    }
    let admin = user_with_role(&app, "auditor", "admin").await;
    let mut browser = Browser::new(&app);
    browser.log_in(&admin, "a fine password").await;
    let csrf = browser.csrf("/admin/settings").await;
    browser
        .post(
            "/admin/settings",
            &[("csrf", &csrf), ("section", "invitation"), ("invitation.topup_reward_percent", "7")],
        )
        .await;

    let (status, all) = app.admin("GET", "/api/admin/audit?action=setting.", None).await;
    assert_eq!(status, 200, "{all}");
    let rows = all["data"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{all}");
    assert_eq!(
        (rows[0]["actor"].as_str(), rows[0]["target_id"].as_str()),
        (Some(admin.as_str()), Some("invitation.topup_reward_percent"))
    );
    assert_eq!(rows[0]["details"]["after"]["value"], "7");
    assert_eq!(rows[1]["actor"], "root token");
    let (_, by_target) = app.admin("GET", "/api/admin/audit?target=site.name", None).await;
    assert_eq!(by_target["data"].as_array().unwrap().len(), 2);
    let (_, by_actor) = app.admin("GET", "/api/admin/audit?actor=AUDITOR", None).await;
    assert_eq!(by_actor["data"].as_array().unwrap().len(), 1);
    let (_, page) = app.admin("GET", "/api/admin/audit?action=setting.&limit=3", None).await;
    let next = page["next_before"].as_i64().unwrap();
    let (_, rest) = app.admin("GET", &format!("/api/admin/audit?action=setting.&limit=3&before={next}"), None).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(app.admin("GET", "/api/admin/audit?limit=9999", None).await.0, 400);

    let (status, _, page) = browser.get("/admin/audit?target=site.name").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("setting.update") && page.contains("root token") && !page.contains(&admin), "{page}");
    let (_, _, page) = browser.get("/admin/audit?actor=nobody").await;
    assert!(page.contains("No actions match."));
}

async fn users_and_resellers_cannot_read_logs(backend: Backend) {
    let app = spawn_app(backend).await;
    for role in ["user", "reseller"] {
        let email = user_with_role(&app, role, role).await;
        let mut browser = Browser::new(&app);
        browser.log_in(&email, "a fine password").await;
        let token = access_token(&mut browser).await;
        for path in ["/api/admin/logs", "/api/admin/audit"] {
            let response = app.client.get(app.url(path)).bearer_auth(&token).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role} {path}");
        }
        for path in ["/admin/logs", "/admin/logs.csv", "/admin/audit"] {
            assert_eq!(browser.get(path).await.0, StatusCode::FORBIDDEN, "{role} {path}");
        }
    }
}

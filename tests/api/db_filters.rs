//! The listings' optional filters all at once (issue 15: rows read by column name, placeholders
//! numbered by the query builder): every filter of the site log, the audit log and the user
//! search set together still binds each value to its own condition on both engines, and a row
//! read through the filters is the row read without them, field for field.

use serde_json::json;

use crate::admin_console::user_with_role;
use crate::console_auth::Browser;
use crate::gateway::chat;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, spawn_app};

db_tests!(every_log_filter_at_once, every_audit_filter_at_once, every_user_search_filter_at_once);

/// `YYYY-MM-DD` of a unix-ms time (UTC), as the log filter takes it.
fn day_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap().date().to_string()
}

async fn every_log_filter_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(
        json!({ "name": "main", "type": "openai", "base_url": fake.base_url("m"), "key": "k", "models": ["gpt-test"] }),
    )
    .await;
    app.set_price("gpt-test", json!({ "input": "1", "output": "2" })).await;
    let (id, key) = app.user_with_key("1.00").await;
    let (_, other_key) = app.user_with_key("1.00").await;
    for k in [&key, &other_key, &key] {
        assert_eq!(app.v1(k, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    }
    app.wait_for_logs(3).await;
    app.settled().await;
    app.assert_ledger_consistent().await;
    let (_, user) = app.admin("GET", &format!("/api/admin/users/{id}"), None).await;
    let email = user["email"].as_str().unwrap().to_string();

    let (status, mine) = app.admin("GET", &format!("/api/admin/logs?user={email}"), None).await;
    assert_eq!(status, 200, "{mine}");
    let mine = mine["data"].as_array().unwrap().clone();
    assert_eq!(mine.len(), 2, "{mine:?}");
    // The older of the user's two rows, reached through every filter at once.
    let row = &mine[1];
    let (row_id, key_id) = (row["id"].as_i64().unwrap(), row["key_id"].as_i64().unwrap());
    let day = day_of(row["created_at"].as_i64().unwrap());
    let all = format!(
        "user={}&model=gpt-test&key={key_id}&status=ok&from={day}&to={day}&before={}&limit=5",
        email[..8].to_uppercase(),
        row_id + 1
    );
    let (status, found) = app.admin("GET", &format!("/api/admin/logs?{all}"), None).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["data"], json!([row]), "the filters find exactly the row, every field as read unfiltered");
    assert_eq!(row["user_email"], email.as_str());
    assert_eq!((row["model"].as_str(), row["upstream_model"].as_str()), (Some("gpt-test"), Some("gpt-test")));
    assert_eq!(row["status_code"], 200);
    assert_eq!(row["stream"], false);

    // Each filter still does its own work when the others are set: change one, lose the row.
    for changed in [
        "status=error".to_string(),
        "model=gpt-other".to_string(),
        format!("key={}", key_id + 1000),
        format!("before={row_id}"),
        "user=nobody-at-all".to_string(),
        "from=2999-01-01".to_string(),
        "to=2000-01-01".to_string(),
    ] {
        let name = changed.split('=').next().unwrap();
        let query = all
            .split('&')
            .map(|part| if part.starts_with(&format!("{name}=")) { changed.as_str() } else { part })
            .collect::<Vec<_>>()
            .join("&");
        let (status, none) = app.admin("GET", &format!("/api/admin/logs?{query}"), None).await;
        assert_eq!(status, 200, "{query}: {none}");
        assert_eq!(none["data"], json!([]), "{query}");
    }
}

async fn every_audit_filter_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = user_with_role(&app, "auditor", "admin").await;
    let mut browser = Browser::new(&app);
    browser.log_in(&admin, "a fine password").await;
    for value in ["7", "8"] {
        let csrf = browser.csrf("/admin/settings").await;
        browser
            .post(
                "/admin/settings",
                &[("csrf", &csrf), ("section", "invitation"), ("invitation.topup_reward_percent", value)],
            )
            .await;
    }
    // The root token's change of the same setting is not the auditor's.
    let put = json!({ "value": "9" });
    assert_eq!(app.admin("PUT", "/api/admin/settings/invitation.topup_reward_percent", Some(put)).await.0, 200);

    let all = "actor=AUDITOR&action=setting.&target=invitation.topup_reward_percent&limit=1";
    let (status, newest) = app.admin("GET", &format!("/api/admin/audit?{all}"), None).await;
    assert_eq!(status, 200, "{newest}");
    let rows = newest["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{newest}");
    assert_eq!(rows[0]["actor"], admin.as_str());
    assert_eq!(rows[0]["details"]["after"]["value"], "8");
    let next = newest["next_before"].as_i64().expect("a full page names the next");
    let (_, older) = app.admin("GET", &format!("/api/admin/audit?{all}&before={next}"), None).await;
    let rows = older["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{older}");
    assert_eq!(rows[0]["details"]["after"]["value"], "7");
    // One value for both sides of the target condition: a target type matches too.
    let (_, by_type) = app.admin("GET", "/api/admin/audit?actor=auditor&action=setting.&target=setting", None).await;
    assert_eq!(by_type["data"].as_array().unwrap().len(), 2, "{by_type}");
    let (_, none) = app.admin("GET", "/api/admin/audit?actor=auditor&action=user.&target=setting", None).await;
    assert_eq!(none["data"], json!([]), "{none}");
}

async fn every_user_search_filter_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    app.admin("PUT", "/api/admin/groups/vip", Some(json!({ "multiplier": "0.8" }))).await;
    for i in 0..5 {
        let body = json!({ "email": format!("alice{i}@example.com"), "password": "a fine password", "group": "vip" });
        assert_eq!(app.admin("POST", "/api/admin/users", Some(body)).await.0, 201);
    }
    let body = json!({ "email": "alice-default@example.com", "password": "a fine password" });
    let (status, answer) = app.admin("POST", "/api/admin/users", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    user_with_role(&app, "alice-reseller", "reseller").await;

    let all = "q=ALICE&role=user&group=vip&status=active&per_page=2";
    let (status, first) = app.admin("GET", &format!("/api/admin/users?{all}"), None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!((first["total"].as_i64(), first["data"].as_array().unwrap().len()), (Some(5), 2), "{first}");
    let (_, last) = app.admin("GET", &format!("/api/admin/users?{all}&page=3"), None).await;
    let rows = last["data"].as_array().unwrap();
    assert_eq!((last["total"].as_i64(), rows.len()), (Some(5), 1), "{last}");
    assert_eq!(rows[0]["email"], "alice0@example.com", "newest first: the first one made is last");
    assert_eq!((rows[0]["role"].as_str(), rows[0]["group"].as_str()), (Some("user"), Some("vip")), "{last}");
    let (_, none) = app.admin("GET", "/api/admin/users?q=alice&role=reseller&group=vip", None).await;
    assert_eq!(none["total"], 0, "{none}");
}

//! `/admin/settings` and `/api/admin/settings*`: every site setting validated, applied at once
//! (links, the gateway's limits, the mailer), secrets write-only and absent from pages, answers
//! and audit rows; role boundaries; the low-balance email.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::admin_console::{access_token, user_with_role};
use crate::console_auth::Browser;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{ADMIN_EMAIL, Backend, TestApp, spawn_app, spawn_app_with};
use crate::support::mail_sink::{address, sink, smtp_env};

db_tests!(
    the_settings_api_lists_validates_and_audits,
    secrets_are_write_only,
    users_and_resellers_cannot_touch_settings,
    the_settings_page_saves_a_section_whole,
    the_public_url_setting_moves_every_link,
    gateway_defaults_apply_without_a_restart,
    smtp_settings_rebuild_the_mailer,
    the_low_balance_email_goes_once_per_fall,
);

const STRIPE_KEY: &str = "sk_test_DistinctiveStripeSecret42";
const WEBHOOK_SECRET: &str = "whsec_DistinctiveWebhookSecret42";
const SMTP_PASSWORD: &str = "DistinctiveSmtpPassword42";

async fn put(app: &TestApp, key: &str, value: &str) -> (u16, Value) {
    app.admin("PUT", &format!("/api/admin/settings/{key}"), Some(json!({ "value": value }))).await
}

fn setting<'a>(list: &'a Value, key: &str) -> &'a Value {
    list["data"].as_array().unwrap().iter().find(|s| s["key"] == key).unwrap_or_else(|| panic!("{key} in {list}"))
}

async fn audit_rows(app: &TestApp, action: &str) -> Vec<(String, String)> {
    sqlx::query("SELECT target_id, details FROM audit_log WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect()
}

async fn the_settings_api_lists_validates_and_audits(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, list) = app.admin("GET", "/api/admin/settings", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(setting(&list, "site.name")["value"], "BurnCloud");
    assert_eq!(setting(&list, "site.currency")["value"], "USD");
    assert_eq!(setting(&list, "gateway.retry_attempts")["value"], "3");

    for (key, value) in [
        ("site.public_url", "ftp://example.com"),
        ("site.currency", "dollars"),
        ("gateway.retry_attempts", "0"),
        ("gateway.max_body_bytes", "12"),
        ("gateway.allow_unpriced_models", "maybe"),
        ("smtp.port", "70000"),
        ("smtp.security", "ssl"),
        ("smtp.from", "not a mailbox"),
        ("notify.low_balance", "-1"),
        ("stripe.secret_key", "pk_live_public"),
        ("site.nonsense", "x"),
    ] {
        let (status, body) = put(&app, key, value).await;
        assert_eq!(status, 400, "{key}={value}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
        assert!(body["error"]["message"].as_str().unwrap().starts_with(key), "the error names the setting: {body}");
    }
    let (_, unchanged) = app.admin("GET", "/api/admin/settings", None).await;
    assert_eq!(unchanged, list, "refused values change nothing");
    assert!(audit_rows(&app, "setting.update").await.is_empty());

    let (status, body) = put(&app, "site.currency", "eur").await;
    assert_eq!((status, body["value"].as_str()), (200, Some("EUR")), "{body}");
    let page = app.get("/pricing").await.text().await.unwrap();
    assert!(page.contains("data-testid=\"currency\">EUR<"), "the price list names the currency: {page}");
    let (status, body) = put(&app, "gateway.retry_attempts", "5").await;
    assert_eq!((status, body["value"].as_str()), (200, Some("5")), "{body}");
    assert_eq!(app.state.site().gateway.retry_attempts, 5);
    let rows = audit_rows(&app, "setting.update").await;
    assert_eq!(rows.len(), 2);
    let details: Value = serde_json::from_str(&rows[0].1).unwrap();
    assert_eq!(
        (rows[0].0.as_str(), &details["before"]["value"], &details["after"]["value"]),
        ("site.currency", &json!("USD"), &json!("eur"))
    );
}

async fn secrets_are_write_only(backend: Backend) {
    let app = spawn_app(backend).await;
    for (key, value) in
        [("stripe.secret_key", STRIPE_KEY), ("stripe.webhook_secret", WEBHOOK_SECRET), ("smtp.password", SMTP_PASSWORD)]
    {
        let (status, body) = put(&app, key, value).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["value"].clone(), body["secret"].clone(), body["set"].clone()),
            (Value::Null, json!(true), json!(true))
        );
    }
    let site = app.state.site();
    assert_eq!(site.stripe_secret_key.as_ref().map(|s| s.expose()), Some(STRIPE_KEY), "the service can use it");
    let (_, list) = app.admin("GET", "/api/admin/settings", None).await;
    assert_eq!(setting(&list, "stripe.secret_key")["set"], true);

    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (status, _, page) = root.get("/admin/settings").await;
    assert_eq!(status, StatusCode::OK);
    let mut everything = vec![list.to_string(), page];
    for row in sqlx::query("SELECT value FROM settings").fetch_all(app.db.pool()).await.unwrap() {
        everything.push(row.get::<String, _>(0));
    }
    for row in sqlx::query("SELECT details FROM audit_log").fetch_all(app.db.pool()).await.unwrap() {
        everything.push(row.get::<String, _>(0));
    }
    for text in &everything {
        for secret in ["DistinctiveStripeSecret", "DistinctiveWebhookSecret", SMTP_PASSWORD] {
            assert!(!text.contains(secret), "a secret leaked: {text}");
        }
    }
    assert_eq!(audit_rows(&app, "setting.update").await.len(), 3, "each change is audited, without its value");

    // Clearing is a change too; the value is gone.
    let (status, body) = put(&app, "stripe.secret_key", "").await;
    assert_eq!((status, body["set"].clone()), (200, json!(false)), "{body}");
    assert!(app.state.site().stripe_secret_key.is_none());
}

async fn users_and_resellers_cannot_touch_settings(backend: Backend) {
    let app = spawn_app(backend).await;
    for role in ["user", "reseller"] {
        let email = user_with_role(&app, role, role).await;
        let mut browser = Browser::new(&app);
        browser.log_in(&email, "a fine password").await;
        let token = access_token(&mut browser).await;
        let calls = [
            app.client.get(app.url("/api/admin/settings")),
            app.client.put(app.url("/api/admin/settings/site.name")).json(&json!({ "value": "Mine" })),
            app.client.post(app.url("/api/admin/settings/smtp/test")),
        ];
        for call in calls {
            let response = call.bearer_auth(&token).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role}");
        }
        let (status, _, _) = browser.get("/admin/settings").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
        let csrf = browser.csrf("/console/profile").await;
        let form = [("csrf", csrf.as_str()), ("section", "general"), ("site.name", "Mine")];
        let (status, _, _) = browser.post("/admin/settings", &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
        let (status, _, _) = browser.post("/admin/settings/test-email", &[("csrf", csrf.as_str())]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
    assert_eq!(app.state.site().site_name, "BurnCloud");
}

async fn the_settings_page_saves_a_section_whole(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = user_with_role(&app, "operator", "admin").await;
    let mut browser = Browser::new(&app);
    browser.log_in(&admin, "a fine password").await;
    let (status, _, page) = browser.get("/admin/settings").await;
    assert_eq!(status, StatusCode::OK);
    for section in ["general", "signup", "invitation", "smtp", "stripe", "gateway", "notify"] {
        assert!(page.contains(&format!("data-testid=\"settings-{section}\"")), "{section}");
    }
    assert!(page.contains("data-testid=\"smtp-note\""), "without SMTP the page says signups are not verified");

    let csrf = browser.csrf("/admin/settings").await;
    let general = |name: &'static str, currency: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("section", "general".to_string()),
            ("site.name", name.to_string()),
            ("site.public_url", String::new()),
            ("site.currency", currency.to_string()),
            ("site.announcement", String::new()),
        ]
    };
    let form = general("Acme AI", "dollars");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = browser.post("/admin/settings", &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Currency: a three-letter currency code"), "{page}");
    assert_eq!(app.state.site().site_name, "BurnCloud", "a refused field saves nothing of its form");

    let form = general("Acme AI", "EUR");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = browser.post("/admin/settings", &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Saved."), "{page}");
    assert_eq!((app.state.site().site_name.as_str(), app.state.site().currency.as_str()), ("Acme AI", "EUR"));
    assert_eq!(audit_rows(&app, "setting.update").await.len(), 2, "only the changed fields");

    // htmx: the section alone, an error answered with 200 so it is swapped in.
    let request = app
        .client
        .post(app.url("/admin/settings"))
        .header("hx-request", "true")
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("section=gateway&gateway.retry_attempts=99");
    let (status, _, fragment) = browser.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(fragment.starts_with("<section") && fragment.contains("role=\"alert\""), "{fragment}");

    // A secret through the form: stored, shown as set, never rendered.
    let form = [
        ("csrf", csrf.as_str()),
        ("section", "stripe"),
        ("stripe.secret_key", STRIPE_KEY),
        ("stripe.webhook_secret", ""),
    ];
    let (status, _, page) = browser.post("/admin/settings", &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("DistinctiveStripeSecret") && page.contains("name=\"clear:stripe.secret_key\""), "{page}");
    assert!(app.state.site().stripe_secret_key.is_some() && app.state.site().stripe_webhook_secret.is_none());
    let form =
        [("csrf", csrf.as_str()), ("section", "stripe"), ("stripe.secret_key", ""), ("clear:stripe.secret_key", "1")];
    browser.post("/admin/settings", &form).await;
    assert!(app.state.site().stripe_secret_key.is_none(), "cleared");
}

async fn the_public_url_setting_moves_every_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = put(&app, "site.public_url", "https://ai.example.com").await;
    assert_eq!(status, 200, "{body}");
    let mut browser = Browser::new(&app);
    browser.sign_up("linker@example.com").await;
    let (_, _, page) = browser.get("/console/invitations").await;
    assert!(page.contains("https://ai.example.com/signup?aff="), "{page}");
    let (_, _, page) = browser.get("/quickstart").await;
    assert!(page.contains("https://ai.example.com/v1"), "{page}");
    put(&app, "site.public_url", "").await;
    let (_, _, page) = browser.get("/quickstart").await;
    assert!(!page.contains("https://ai.example.com"), "back to the configured URL");
}

async fn gateway_defaults_apply_without_a_restart(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "free", "type": "openai", "base_url": fake.base_url("free"), "key": "k", "models": ["free-model"] })).await;
    let (_, key) = app.user_with_key("1.00").await;
    let chat = |content: String| json!({ "model": "free-model", "messages": [{ "role": "user", "content": content }] });
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("hi".into())).await.status(), 403, "unpriced");
    assert_eq!(put(&app, "gateway.allow_unpriced_models", "true").await.0, 200);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("hi".into())).await.status(), 200, "free now");
    assert_eq!(put(&app, "gateway.max_body_bytes", "2048").await.0, 200);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("x".repeat(4000))).await.status(), 413);

    // The connect timeout rebuilds the upstream client; calls go on through the new one.
    assert_eq!(put(&app, "gateway.connect_timeout_secs", "7").await.0, 200);
    assert_eq!(app.gateway.gateway().connect_timeout(), std::time::Duration::from_secs(7));
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("hi".into())).await.status(), 200, "the new client works");
    assert_eq!(put(&app, "gateway.connect_timeout_secs", "0").await.0, 400);

    // The key cache's lifetime: at 0 a change made behind the cache's back (another replica)
    // is seen by the very next request.
    assert_eq!(put(&app, "gateway.cache_ttl_secs", "0").await.0, 200);
    sqlx::query("UPDATE api_keys SET status = 'disabled'").execute(app.db.pool()).await.unwrap();
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("hi".into())).await.status(), 401);
    app.settled().await;
    app.assert_ledger_consistent().await;
}

async fn smtp_settings_rebuild_the_mailer(backend: Backend) {
    let app = spawn_app(backend).await;
    assert!(!app.state.mailer().is_configured());
    let (status, body) = app.admin("POST", "/api/admin/settings/smtp/test", Some(json!({ "to": address("t") }))).await;
    assert_eq!(status, 400, "no SMTP yet: {body}");
    let mut env = std::collections::BTreeMap::new();
    smtp_env(&mut env);
    for (key, var) in [
        ("smtp.host", "BURNCLOUD_SMTP_HOST"),
        ("smtp.port", "BURNCLOUD_SMTP_PORT"),
        ("smtp.security", "BURNCLOUD_SMTP_SECURITY"),
        ("smtp.from", "BURNCLOUD_SMTP_FROM"),
    ] {
        let (status, body) = put(&app, key, &env[var]).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(app.state.mailer().is_configured(), "the mailer is rebuilt at once");
    let to = address("smtp-test");
    let (status, body) = app.admin("POST", "/api/admin/settings/smtp/test", Some(json!({ "to": to }))).await;
    assert_eq!(status, 200, "{body}");
    let mail = &sink().wait_for(&to, 1)[0];
    assert!(mail.subject.contains("Test email") && mail.header_from.contains("noreply@acme.example"), "{mail:?}");
    assert_eq!(audit_rows(&app, "setting.test_email").await.len(), 1);

    // The console's button sends to the admin's own address.
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (_, _, page) = root.get("/admin/settings").await;
    assert!(!page.contains("data-testid=\"smtp-note\""), "mail is on");
    let csrf = root.csrf("/admin/settings").await;
    let (status, _, page) = root.post("/admin/settings/test-email", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Test email sent."), "{page}");
    assert!(!sink().wait_for(ADMIN_EMAIL, 1).is_empty());

    // Clearing the host turns mail off again.
    put(&app, "smtp.host", "").await;
    assert!(!app.state.mailer().is_configured());
}

async fn the_low_balance_email_goes_once_per_fall(backend: Backend) {
    let app = spawn_app_with(backend, smtp_env, |r| r).await;
    let email = address("low");
    let (status, user) =
        app.admin("POST", "/api/admin/users", Some(json!({ "email": email, "password": "password123" }))).await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_i64().unwrap();
    let path = format!("/api/admin/users/{id}/credit");
    let credit = |amount: &'static str| app.admin("POST", &path, Some(json!({ "amount": amount, "note": "test" })));
    credit("1.00").await;
    let notify = || burncloud::services::low_balance::notify(&app.state);
    assert_eq!(notify().await.unwrap(), 0, "off by default");
    assert_eq!(put(&app, "notify.low_balance", "5.00").await.0, 200);
    assert_eq!(notify().await.unwrap(), 1, "only the account whose balance fell (not root, who never had any)");
    assert_eq!(notify().await.unwrap(), 0, "once");
    let mails = sink().wait_for(&email, 1);
    assert!(
        mails[0].subject.contains("Your balance is low") && mails[0].text.contains("/console/billing"),
        "{:?}",
        mails[0]
    );
    credit("10.00").await;
    notify().await.unwrap();
    assert_eq!(put(&app, "notify.low_balance", "20.00").await.0, 200);
    notify().await.unwrap();
    assert_eq!(sink().wait_for(&email, 2).len(), 2, "told again after the balance was back above");
    app.assert_ledger_consistent().await;
}

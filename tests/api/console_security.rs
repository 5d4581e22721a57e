//! The console's security promises, one test each: user text renders inert everywhere it shows,
//! cookies are Secure behind https, and a user cannot reach another user's usage or ledger by
//! guessing ids. (CSRF on every form: console_auth.rs; keys by id: console_keys.rs; mailed links
//! built from BURNCLOUD_PUBLIC_URL: console_email.rs.)

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;
use serde_json::json;

use crate::console_auth::Browser;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app, spawn_app_with};

db_tests!(
    hostile_text_renders_inert_everywhere,
    cookies_are_secure_when_the_site_is_https,
    another_users_usage_and_ledger_cannot_be_reached,
);

const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const ESCAPED: &str = "&#60;img src=x onerror=alert(1)&#62;";

fn assert_inert(page: &str, where_: &str) {
    assert!(!page.contains(HOSTILE), "{where_}: the markup went through unescaped");
    assert!(page.contains(ESCAPED), "{where_}: the text should show, escaped");
}

async fn new_key(browser: &mut Browser<'_>, name: &str) -> String {
    let csrf = browser.csrf("/console/keys").await;
    let (_, _, page) = browser.post("/console/keys", &[("name", name), ("csrf", &csrf)]).await;
    let start = page.find("data-testid=\"new-key\">").expect("the new key is shown") + 22;
    page[start..start + page[start..].find('<').unwrap()].to_string()
}

async fn hostile_text_renders_inert_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    for key in ["site.name", "site.announcement"] {
        let (status, body) =
            app.admin("PUT", &format!("/api/admin/settings/{key}"), Some(json!({ "value": HOSTILE }))).await;
        assert_eq!(status, 200, "{body}");
    }
    let mut browser = Browser::new(&app);
    browser.sign_up("hostile@example.com").await;
    let csrf = browser.csrf("/console/profile").await;
    let (_, _, page) = browser.post("/console/profile/name", &[("display_name", HOSTILE), ("csrf", &csrf)]).await;
    assert_inert(&page, "profile: display name");
    new_key(&mut browser, HOSTILE).await;

    for path in ["/", "/console", "/console/keys", "/console/logs", "/console/billing", "/console/profile"] {
        let (status, _, page) = browser.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_inert(&page, path);
    }
    let query: String = url::form_urlencoded::byte_serialize(HOSTILE.as_bytes()).collect();
    for path in [format!("/pricing?q={query}"), format!("/console/logs?model={query}")] {
        let (_, _, page) = browser.get(&path).await;
        assert_inert(&page, &path);
    }
    // Forms that come back with what was typed.
    let mut visitor = Browser::new(&app);
    let csrf = visitor.csrf("/signup").await;
    let form = [("email", HOSTILE), ("password", "a fine password"), ("invite", HOSTILE), ("csrf", csrf.as_str())];
    let (status, _, page) = visitor.post("/signup", &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_inert(&page, "signup form");
    let (_, _, page) = visitor.get(&format!("/signup?aff={query}")).await;
    assert_inert(&page, "signup invitation link");
}

async fn cookies_are_secure_when_the_site_is_https(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_PUBLIC_URL".into(), "https://console.acme.example".into());
        },
        |r| r,
    )
    .await;
    let response = app.get("/login").await;
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");

    let mut browser = Browser::new(&app);
    let csrf = browser.csrf("/login").await;
    let body = format!("lang=zh&next=%2F&csrf={csrf}");
    let response = browser
        .client
        .post(app.url("/preferences"))
        .header("cookie", browser.cookies())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("burncloud_lang=zh") && cookie.contains("Secure"), "{cookie}");
}

async fn call(app: &TestApp, key: &str, model: &str) {
    let body = json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(app.v1(key, "/v1/chat/completions", &body).await.status(), 200);
}

async fn another_users_usage_and_ledger_cannot_be_reached(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k",
                            "models": ["gpt-victim"] }))
        .await;
    app.set_price("gpt-victim", json!({ "input": "2.50", "output": "10.00" })).await;

    let mut victim = Browser::new(&app);
    victim.sign_up("victim@example.com").await;
    let victim_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE email = 'victim@example.com'")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let (status, _) = app
        .admin(
            "POST",
            &format!("/api/admin/users/{victim_id}/credit"),
            Some(json!({ "amount": "7.77", "note": "test" })),
        )
        .await;
    assert_eq!(status, 200);
    let key = new_key(&mut victim, "victim-key").await;
    call(&app, &key, "gpt-victim").await;
    app.wait_for_logs(1).await;
    let key_id: i64 =
        sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'victim-key'").fetch_one(app.db.pool()).await.unwrap();
    let (_, _, page) = victim.get(&format!("/console/logs?key={key_id}")).await;
    assert!(!page.contains("No requests match.") && page.contains("gpt-victim"), "the owner sees the row");

    let mut attacker = Browser::new(&app);
    attacker.sign_up("attacker@example.com").await;
    for path in [format!("/console/logs?key={key_id}"), "/console/logs?model=gpt-victim".to_string()] {
        let (_, _, page) = attacker.get(&path).await;
        assert!(page.contains("No requests match.") && !page.contains("victim-key"), "{path}: {page}");
    }
    let (_, _, csv) = attacker.get(&format!("/console/logs.csv?key={key_id}")).await;
    assert_eq!(csv.lines().count(), 1, "only the header: {csv}");
    let (_, _, page) = attacker.get("/console/billing").await;
    assert!(!page.contains("7.77"), "the victim's credit is not on the attacker's billing page");
    let (_, _, page) = attacker.get("/console").await;
    assert!(!page.contains("7.77") && !page.contains("victim@example.com"));
}

//! Browser test of the operator's users, groups and pricing pages: a real Chromium logs in as
//! root, edits a price row in place (htmx), credits a user from their page, and screenshots
//! `/admin/users`, a user's page, `/admin/groups` and `/admin/pricing` at desktop and phone
//! widths (`target/browser-artifacts/admin-users-*`).

use serde_json::json;

use crate::support::chromium::{Chromium, LayoutNote, backend_name};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, spawn_app};

db_tests!(operators_manage_users_groups_and_prices_in_a_browser);

async fn operators_manage_users_groups_and_prices_in_a_browser(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "fake", "type": "openai", "base_url": fake.base_url("fake"), "key": "k", "models": ["gpt-4o-mini"] })).await;
    app.admin("PUT", "/api/admin/groups/vip", Some(json!({ "multiplier": "0.8", "description": "Volume customers", "models": ["gpt-4o-mini", "claude-sonnet-4-5"] }))).await;
    app.admin("POST", "/api/admin/prices/defaults", None).await;
    app.admin("PUT", "/api/admin/groups/vip/prices/gpt-4o", Some(json!({ "input": "2", "output": "8" }))).await;
    let (user, key) = app.user_with_key("25").await;
    for i in 0..6 {
        let body = json!({ "email": format!("customer{i}@example.com"), "password": "a fine password", "group": if i % 2 == 0 { "vip" } else { "default" }, "role": if i == 1 { "reseller" } else { "user" } });
        app.admin("POST", "/api/admin/users", Some(body)).await;
    }
    let call = json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(app.v1(&key, "/v1/chat/completions", &call).await.status(), 200);
    app.wait_for_logs(1).await;
    app.settled().await;
    // A flagged account (a refund of credit already spent): a badge in the list, a notice on its page.
    sqlx::query("UPDATE users SET flag = $2 WHERE id = $1")
        .bind(user)
        .bind("A Stripe refund of payment #12 took back 12.50 of 20.00: 7.50 was already spent.")
        .execute(app.db.writer())
        .await
        .unwrap();

    let chrome = Chromium::start(&app, "admin-users", backend).await;
    chrome.goto("/login").await;
    chrome.fill("email", ADMIN_EMAIL).await;
    chrome.fill("password", ADMIN_PASSWORD).await;
    chrome.click_and_wait("form[action='/login'] button[type=submit]").await;
    chrome.wait_for_path("/console").await;

    let mut notes: Vec<LayoutNote> = Vec::new();
    chrome.goto("/admin/users").await;
    chrome.wait_for_text("customer5@example.com").await;
    notes.extend(chrome.screenshot("users").await);

    // A user's page: credit with a note, then the ledger shows it.
    chrome.goto(&format!("/admin/users/{user}")).await;
    chrome.wait_for_text("Adjust balance").await;
    chrome.fill("amount", "5").await;
    chrome.fill("note", "Support goodwill").await;
    chrome.click_and_wait("[data-testid=adjust-form] button[value=credit]").await;
    chrome.wait_for_text("Balance credited.").await;
    chrome.wait_for_text("Support goodwill").await;
    assert!(chrome.text("[data-testid=user-balance]").await.starts_with("29.99"), "25 + 5 − the call");
    notes.extend(chrome.screenshot("user").await);
    chrome.click_and_wait("[data-testid=clear-flag-form] button").await;
    chrome.wait_for_text("Flag cleared.").await;

    chrome.goto("/admin/groups").await;
    chrome.wait_for_text("Volume customers").await;
    notes.extend(chrome.screenshot("groups").await);

    // Inline row edit through htmx: the row turns into a form and back, without a page load.
    chrome.goto("/admin/pricing?q=gpt-4o-mini").await;
    chrome.wait_for_text("gpt-4o-mini").await;
    chrome.script("window.__same_page = true; return true;").await;
    chrome.click("[data-testid=price-row] [data-testid=edit-price]").await;
    chrome.find("[data-testid=price-edit-row] input[name=input]").await;
    chrome
        .script("const i = document.querySelector('[data-testid=price-edit-row] input[name=input]'); i.value = '0.20'; return true;")
        .await;
    chrome.click("[data-testid=save-price]").await;
    chrome.wait_for_text("0.20").await;
    assert_eq!(chrome.script("return window.__same_page === true;").await, json!(true), "edited in place");
    let (_, prices) = app.admin("GET", "/api/admin/prices?q=gpt-4o-mini", None).await;
    assert_eq!(prices["data"][0]["input"], "0.20");
    chrome.goto("/admin/pricing").await;
    chrome.wait_for_text("claude-sonnet-4-5").await;
    notes.extend(chrome.screenshot("pricing").await);
    chrome.quit().await;

    let report: String = notes.iter().map(|LayoutNote { file, note }| format!("layout: {file}: {note}\n")).collect();
    let path =
        crate::support::chromium::artifacts_dir().join(format!("admin-users-{}-layout.txt", backend_name(backend)));
    std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    assert!(notes.is_empty(), "{report}");
}

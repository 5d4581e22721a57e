//! Browser test of the operator's settings, logs and audit pages: root changes a setting through
//! the page (htmx swaps the section in place), a user's call shows in the site's log, the change
//! in the audit log, a pending payment is marked failed on /admin/payments (htmx swaps its row);
//! screenshots of /admin/settings, /admin/logs, /admin/audit and /admin/payments at 1280 and 390
//! px wide land in the browser artifacts (see docs/testing.md).

use serde_json::json;

use crate::gateway::chat;
use crate::support::chromium::{Chromium, LayoutNote, backend_name};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, spawn_app};
use burncloud::db::payments;

db_tests!(an_operator_changes_settings_and_reads_the_logs);

const MODEL: &str = "gpt-admin-browser";

async fn an_operator_changes_settings_and_reads_the_logs(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(
        json!({ "name": "fake", "type": "openai", "base_url": fake.base_url("f"), "key": "k", "models": [MODEL] }),
    )
    .await;
    app.set_price(MODEL, json!({ "input": "2.50", "output": "10.00" })).await;
    let (buyer, key) = app.user_with_key("1.00").await;
    let pending = seed_payments(&app, buyer).await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat(MODEL)).await.status(), 200);
    app.wait_for_logs(1).await;
    app.settled().await;
    let (status, _) = app
        .admin("PUT", "/api/admin/settings/stripe.secret_key", Some(json!({ "value": "sk_test_BrowserSecret" })))
        .await;
    assert_eq!(status, 200);

    let chrome = Chromium::start(&app, "admin-settings", backend).await;
    chrome.goto("/login").await;
    chrome.fill("email", ADMIN_EMAIL).await;
    chrome.fill("password", ADMIN_PASSWORD).await;
    chrome.click_and_wait("form[action='/login'] button[type=submit]").await;
    chrome.wait_for_path("/console").await;

    chrome.goto("/admin/settings").await;
    chrome.wait_for_text("Mail (SMTP)").await;
    chrome.fill("site.name", "Acme AI").await;
    chrome.click("#settings-general button[type=submit]").await;
    chrome.wait_for_text("Saved.").await;
    assert_eq!(chrome.path().await, "/admin/settings", "htmx saved the section in place");
    assert_eq!(app.state.site().site_name, "Acme AI");
    assert!(!chrome.visible_text().await.contains("BrowserSecret"));

    let mut notes = Vec::new();
    chrome.goto("/admin/settings").await;
    chrome.wait_for_text("Payments (Stripe)").await;
    notes.extend(chrome.screenshot("settings").await);
    chrome.goto("/admin/logs").await;
    chrome.wait_for_text(MODEL).await;
    notes.extend(chrome.screenshot("logs").await);
    chrome.goto("/admin/audit").await;
    chrome.wait_for_text("setting.update").await;
    notes.extend(chrome.screenshot("audit").await);
    chrome.goto("/admin/payments").await;
    chrome.wait_for_text("cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ0123456789").await;
    notes.extend(chrome.screenshot("payments").await);
    // The button asks first (hx-confirm): say yes.
    chrome.script("window.confirm = () => true; return null;").await;
    chrome.click(&format!("tr[data-payment='{pending}'] [data-testid=mark-failed]")).await;
    chrome.wait_for_text("marked failed by an operator").await;
    assert_eq!(chrome.path().await, "/admin/payments", "htmx swapped the row in place");
    assert_eq!(payments::get(app.db.pool(), pending).await.unwrap().unwrap().status, "failed");
    // The settings page in Chinese and the dark theme (the two preference cookies).
    chrome.script("document.cookie = 'burncloud_theme=dark; path=/'; document.cookie = 'burncloud_lang=zh; path=/'; return null;").await;
    chrome.goto("/admin/settings").await;
    chrome.wait_for_text("邮件（SMTP）").await;
    notes.extend(chrome.screenshot("settings-zh-dark").await);
    chrome.goto("/admin/payments").await;
    chrome.wait_for_text("部分退款").await;
    notes.extend(chrome.screenshot("payments-zh-dark").await);
    chrome.quit().await;

    let report: String = notes.iter().map(|LayoutNote { file, note }| format!("layout: {file}: {note}\n")).collect();
    assert!(report.is_empty(), "the admin pages fit their width:\n{report}");
    let _ = backend_name(backend);
}

/// Payments in every state for the payments page: one still pending (its id).
async fn seed_payments(app: &TestApp, user: i64) -> i64 {
    let db = app.db.writer();
    let mut ids = Vec::new();
    for (n, charge) in [1000_i64, 2500, 500, 5000, 2000].into_iter().enumerate() {
        let id = payments::insert_pending(db, user, charge * 10_000_000, charge, "usd").await.unwrap();
        let session = if n == 4 {
            "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ0123456789".to_string()
        } else {
            format!("cs_test_{n}")
        };
        payments::set_session(db, id, &session, "https://checkout.example/pay").await.unwrap();
        ids.push(id);
    }
    let sql = [
        "UPDATE payments SET status = 'paid', paid_at = created_at WHERE id = $1",
        "UPDATE payments SET status = 'partially_refunded', paid_at = created_at, refunded_amount = 1000, \
         unrecovered_credit = 4000000000 WHERE id = $1",
        "UPDATE payments SET status = 'expired', failure_reason = 'The Checkout Session expired.' WHERE id = $1",
        "UPDATE payments SET status = 'refunded', paid_at = created_at, refunded_amount = charge_amount WHERE id = $1",
    ];
    for (id, sql) in ids.iter().zip(sql) {
        sqlx::query(sql).bind(id).execute(db).await.unwrap();
    }
    ids[4]
}

//! Browser tests of redemption codes and the reseller section: an operator generates codes on
//! /admin/codes, a reseller buys codes from their balance and sends balance to a customer on
//! /console/reseller, a customer redeems a reseller's code; screenshots of both pages at desktop
//! and phone widths (`target/browser-artifacts/codes-*`).

use crate::codes::account;
use crate::support::chromium::{Chromium, LayoutNote, backend_name};
use crate::support::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, spawn_app};

db_tests!(operators_and_resellers_work_with_codes_in_the_browser);

/// Types `value` into the field `name` of the form matching `form`.
async fn fill_in(chrome: &Chromium, form: &str, name: &str, value: &str) {
    let field = chrome.find(&format!("{form} [name=\"{name}\"]")).await;
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn log_in(chrome: &Chromium, email: &str, password: &str) {
    chrome.goto("/login").await;
    chrome.fill("email", email).await;
    chrome.fill("password", password).await;
    chrome.click_and_wait("form[action='/login'] button[type=submit]").await;
    chrome.wait_for_path("/console").await;
}

async fn log_out(chrome: &Chromium) {
    chrome.goto("/console").await;
    chrome.click_and_wait("form[action='/logout'] button[type=submit]").await;
    chrome.wait_for_path("/login").await;
}

async fn operators_and_resellers_work_with_codes_in_the_browser(backend: Backend) {
    let app = spawn_app(backend).await;
    let (seller, seller_email, _, _) = account(&app, "seller", "reseller", "100").await;
    account(&app, "customer", "user", "0").await;
    let chrome = Chromium::start(&app, "codes", backend).await;
    let mut notes: Vec<LayoutNote> = Vec::new();

    // The operator generates a batch and sees it listed.
    log_in(&chrome, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    chrome.goto("/admin/codes").await;
    chrome.wait_for_text("No codes match.").await;
    let form = "form[action='/admin/codes']";
    fill_in(&chrome, form, "name", "Autumn promo").await;
    fill_in(&chrome, form, "amount", "5").await;
    fill_in(&chrome, form, "count", "3").await;
    fill_in(&chrome, form, "prefix", "AUT-").await;
    chrome.click_and_wait(&format!("{form} button[type=submit]")).await;
    chrome.wait_for_text("3 code(s) of 5.00 in batch Autumn promo.").await;
    let generated = chrome.script("return document.querySelector('[data-testid=generated-codes]').value;").await;
    let generated = generated.as_str().unwrap_or_default().to_string();
    assert_eq!(generated.lines().filter(|c| c.starts_with("AUT-")).count(), 3, "{generated}");
    notes.extend(chrome.screenshot("admin-codes").await);
    log_out(&chrome).await;

    // The reseller buys codes, sends balance to a customer, and voids one code.
    log_in(&chrome, &seller_email, "a fine password").await;
    chrome.click_and_wait("a[href='/console/reseller']").await;
    chrome.wait_for_text("Transfer balance").await;
    assert_eq!(chrome.text("[data-testid=reseller-balance]").await, "100.00");
    let form = "form[action='/console/reseller/codes']";
    fill_in(&chrome, form, "name", "Shop window").await;
    fill_in(&chrome, form, "amount", "10").await;
    fill_in(&chrome, form, "count", "2").await;
    chrome.click_and_wait(&format!("{form} button[type=submit]")).await;
    chrome.wait_for_text("Paid from your balance: 20.00.").await;
    assert_eq!(chrome.text("[data-testid=reseller-balance]").await, "80.00");
    let codes = chrome.script("return document.querySelector('[data-testid=generated-codes]').value;").await;
    let first = codes.as_str().unwrap_or_default().lines().next().unwrap_or_default().to_string();
    assert_eq!(first.len(), 20, "{codes}");

    let form = "form[action='/console/reseller/transfer']";
    fill_in(&chrome, form, "email", "customer@example.com").await;
    fill_in(&chrome, form, "amount", "15").await;
    chrome.click_and_wait(&format!("{form} button[type=submit]")).await;
    chrome.wait_for_text("Sent 15.00.").await;
    assert_eq!(chrome.text("[data-testid=reseller-balance]").await, "65.00");

    chrome.click_and_wait("[data-testid=codes-table] tbody tr:last-child form button").await;
    chrome.wait_for_text("Voided 1 unused code(s).").await;
    assert_eq!(chrome.text("[data-testid=reseller-balance]").await, "75.00", "the voided code is refunded");
    notes.extend(chrome.screenshot("reseller").await);
    // Dark and Chinese: the same page, finished too.
    chrome.click_and_wait("form.prefs button[name=theme][value=dark]").await;
    chrome.click_and_wait("[data-testid=switch-lang]").await;
    chrome.wait_for_text("转账余额").await;
    notes.extend(chrome.screenshot("reseller-dark-zh").await);
    chrome.click_and_wait("[data-testid=switch-lang]").await;
    chrome.wait_for_text("Transfer balance").await;
    log_out(&chrome).await;

    // The customer redeems the reseller's other code; the reseller then sees it used, masked.
    log_in(&chrome, "customer@example.com", "a fine password").await;
    let last = sqlx::query_scalar::<_, String>(
        "SELECT code FROM redemption_codes WHERE created_by = $1 AND status = 'unused'",
    )
    .bind(seller)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    chrome.goto("/console/billing").await;
    chrome.fill("code", &last).await;
    chrome.click_and_wait("form[action='/console/billing/redeem'] button[type=submit]").await;
    chrome.wait_for_text("Redeemed: 10.00 added").await;
    log_out(&chrome).await;
    log_in(&chrome, &seller_email, "a fine password").await;
    chrome.goto("/console/reseller?status=used").await;
    chrome.wait_for_text("c***@example.com").await;
    chrome.quit().await;
    app.assert_ledger_consistent().await;

    let report: String = notes.iter().map(|LayoutNote { file, note }| format!("layout: {file}: {note}\n")).collect();
    let path = crate::support::chromium::artifacts_dir().join(format!("codes-{}-layout.txt", backend_name(backend)));
    std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    assert!(report.is_empty(), "{report}");
}

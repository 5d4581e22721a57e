//! A top-up in the browser: the billing page leads to the top-up page, a custom amount is quoted
//! as it is typed, "Pay" goes to (a stand-in for) Stripe's page, paying there returns to the
//! success page, which says "crediting…" until the webhook lands and then shows the new balance
//! without a reload. Screenshots of the top-up, success and payments pages at desktop and phone
//! widths (`target/browser-artifacts/topup-*`).

use crate::codes::account;
use crate::support::chromium::{Chromium, LayoutNote, backend_name};
use crate::support::fake_stripe::{self, FakeStripe, WEBHOOK_SECRET};
use crate::support::helpers::{Backend, spawn_app_with};

db_tests!(a_user_tops_up_in_the_browser);

async fn a_user_tops_up_in_the_browser(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_app_with(backend, |env| stripe.env(env), |router| router).await;
    let (user, email, _, _) = account(&app, "buyer", "user", "0").await;
    let chrome = Chromium::start(&app, "topup", backend).await;
    let mut notes: Vec<LayoutNote> = Vec::new();

    chrome.goto("/login").await;
    chrome.fill("email", &email).await;
    chrome.fill("password", "a fine password").await;
    chrome.click_and_wait("form[action='/login'] button[type=submit]").await;
    chrome.wait_for_path("/console").await;
    chrome.goto("/console/billing").await;
    chrome.click_and_wait("[data-testid=topup-link]").await;
    chrome.wait_for_text("Choose an amount").await;

    // A custom amount is quoted while it is typed (htmx), before anything is paid.
    chrome.fill("amount", "12.5").await;
    let quote = chrome.text("[data-testid=custom-quote]").await;
    assert!(quote.contains("12.50 USD") && quote.contains("Credited"), "{quote}");
    notes.extend(chrome.screenshot("topup").await);

    // Pay 10.00: Stripe's page, then back to the success page.
    chrome.click_and_wait("[data-testid='pay-10.00']").await;
    chrome.wait_for_text("1000 usd").await;
    let opened = stripe.last();
    chrome.click_and_wait("#pay").await;
    chrome.wait_for_text("Payment received, crediting…").await;
    assert_eq!(chrome.text("#topup-status [data-testid=balance]").await, "0.00", "not credited by the return");

    // Stripe's webhook lands; the page updates by itself.
    let event = fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened));
    let body = event.to_string();
    let signature = fake_stripe::signature(&body, WEBHOOK_SECRET, fake_stripe::now_secs());
    let response =
        app.client.post(app.url("/api/stripe/webhook")).header("stripe-signature", signature).body(body).send().await;
    assert_eq!(response.unwrap().status(), 200);
    chrome.wait_for_text("Your balance has been credited.").await;
    assert_eq!(chrome.text("#topup-status [data-testid=balance]").await, "10.00");
    assert_eq!(app.balance(user).await, 10_000_000_000);
    notes.extend(chrome.screenshot("topup-success").await);

    chrome.goto("/console/payments").await;
    chrome.wait_for_text("Paid").await;
    notes.extend(chrome.screenshot("payments").await);
    chrome.quit().await;
    app.assert_ledger_consistent().await;

    let report: String = notes.iter().map(|LayoutNote { file, note }| format!("layout: {file}: {note}\n")).collect();
    let path = crate::support::chromium::artifacts_dir().join(format!("topup-{}-layout.txt", backend_name(backend)));
    std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    assert!(report.is_empty(), "{report}");
}

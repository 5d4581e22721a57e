//! Browser tests: a real headless Chromium (`chromium.rs`) goes through the console as a user
//! does — forms typed into and submitted, links and buttons clicked — and every check is on what
//! the page shows. Screenshots of the main pages at desktop and phone widths land in
//! `target/browser-artifacts/` (see docs/testing.md).

use serde_json::json;

use crate::console_billing::add_code;
use crate::support::chromium::{Chromium, LayoutNote, backend_name};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app, spawn_app_with};
use crate::support::mail_sink::{address, sink, smtp_env};

db_tests!(
    a_new_user_signs_up_logs_in_makes_a_key_and_sees_the_call_in_logs_and_dashboard,
    redeeming_a_code_on_the_billing_page_raises_the_balance,
    the_main_pages_render_at_desktop_and_phone_widths,
);

const PASSWORD: &str = "a fine password";
const MODEL: &str = "gpt-browser";

/// A channel to a fake OpenAI serving `MODEL`, priced 2.50 in / 10.00 out per 1M tokens: the
/// fake's 12 + 5 tokens cost 0.00008.
async fn a_model_to_call(app: &TestApp) -> FakeOpenAi {
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(
        json!({ "name": "fake", "type": "openai", "base_url": fake.base_url("fake"), "key": "k", "models": [MODEL] }),
    )
    .await;
    app.set_price(MODEL, json!({ "input": "2.50", "output": "10.00" })).await;
    fake
}

/// An operator's top-up through the management API.
async fn credit(app: &TestApp, email: &str, amount: &str) {
    let user: i64 = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(app.db.pool())
        .await
        .expect("the user signed up");
    let (status, body) = app
        .admin("POST", &format!("/api/admin/users/{user}/credit"), Some(json!({ "amount": amount, "note": "test" })))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn sign_up(chrome: &Chromium, email: &str) {
    chrome.goto("/signup").await;
    chrome.wait_for_text("Create your account").await;
    chrome.fill("email", email).await;
    chrome.fill("password", PASSWORD).await;
    chrome.click_and_wait("form[action='/signup'] button[type=submit]").await;
}

/// What follows the signup form on a site that sends no mail: straight into the console.
async fn confirm_signup(chrome: &Chromium, email: &str) {
    chrome.wait_for_path("/console").await;
    assert_eq!(chrome.text("[data-testid=email]").await, email, "signed in as the new account");
}

/// What follows the signup form on a site with SMTP: "check your inbox" (and no way into the
/// console yet), the mail's link, the confirmation button, then the login page saying the
/// address is confirmed.
async fn verify_signup(chrome: &Chromium, email: &str) {
    chrome.wait_for_text("Check your inbox").await;
    chrome.goto("/console").await;
    chrome.wait_for_path("/login").await;
    let mail = sink().wait_for(email, 1).remove(0);
    let link = mail.link("http://");
    let path = link.splitn(4, '/').nth(3).map(|rest| format!("/{rest}")).expect("a link with a path");
    assert!(path.starts_with("/verify-email?token="), "{link}");
    chrome.goto(&path).await;
    chrome.click_and_wait("[data-testid=confirm-email]").await;
    chrome.wait_for_path("/login?done=verified").await;
    chrome.wait_for_text("Your email address is confirmed").await;
}

async fn log_out(chrome: &Chromium) {
    chrome.goto("/console").await;
    chrome.click_and_wait("form[action='/logout'] button[type=submit]").await;
    chrome.wait_for_path("/login").await;
    chrome.wait_for_text("Log in").await;
}

async fn log_in(chrome: &Chromium, email: &str) {
    chrome.goto("/login").await;
    chrome.fill("email", email).await;
    chrome.fill("password", PASSWORD).await;
    chrome.click_and_wait("form[action='/login'] button[type=submit]").await;
    chrome.wait_for_path("/console").await;
    assert_eq!(chrome.text("[data-testid=email]").await, email);
}

/// Creates a key on /console/keys; the full key, read from the page that shows it once.
async fn create_key(chrome: &Chromium, name: &str) -> String {
    chrome.goto("/console/keys").await;
    chrome.fill("name", name).await;
    chrome.click_and_wait("form[action='/console/keys'] button[type=submit]").await;
    chrome.wait_for_text("copy it now: it will not be shown again").await;
    let key = chrome.text("[data-testid=new-key]").await;
    assert!(key.starts_with("sk-") && key.len() >= 43, "the full key is shown: {key:?}");
    key
}

async fn chat(app: &TestApp, key: &str) {
    let body = json!({ "model": MODEL, "messages": [{ "role": "user", "content": "Hello from the browser test" }] });
    let response = app.v1(key, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200, "the key from the page works");
    let answer: serde_json::Value = response.json().await.expect("a JSON answer");
    assert!(answer["choices"][0]["message"]["content"].as_str().is_some_and(|c| !c.is_empty()), "{answer}");
    app.wait_for_logs(1).await;
    app.settled().await;
}

async fn a_new_user_signs_up_logs_in_makes_a_key_and_sees_the_call_in_logs_and_dashboard(backend: Backend) {
    let app = spawn_app_with(backend, smtp_env, |r| r).await;
    let _upstream = a_model_to_call(&app).await;
    let chrome = Chromium::start(&app, "signup-key-logs", backend).await;
    let email = address("browser.user");
    let email = email.as_str();

    sign_up(&chrome, email).await;
    verify_signup(&chrome, email).await;
    log_in(&chrome, email).await;
    log_out(&chrome).await;
    chrome.goto("/console").await;
    chrome.wait_for_path("/login").await;
    log_in(&chrome, email).await;
    credit(&app, email, "1.00").await;

    chrome.goto("/console/keys").await;
    chrome.wait_for_text("No keys yet.").await;
    let key = create_key(&chrome, "browser-key").await;
    chrome.goto("/console/keys").await;
    let row = chrome.text("table tbody tr").await;
    assert!(row.contains("browser-key") && row.contains(&key[..7]) && row.contains("active"), "{row}");
    assert!(!chrome.visible_text().await.contains(&key), "the full key is shown only once");

    chat(&app, &key).await;

    chrome.goto("/console/logs").await;
    chrome.wait_for_text(MODEL).await;
    let row = chrome.text("table tbody tr").await;
    for shown in ["browser-key", MODEL, "12 / 5", "0.00008", "200"] {
        assert!(row.contains(shown), "the log row shows {shown:?}: {row:?}");
    }

    chrome.goto("/console").await;
    assert_eq!(chrome.text("[data-testid=spend-today]").await, "0.00008");
    assert_eq!(chrome.text("[data-testid=requests-today]").await, "1");
    assert_eq!(chrome.text("[data-testid=balance]").await, "0.99992");

    // Switch to Chinese and back: the choice sticks across pages.
    chrome.click_and_wait("[data-testid=switch-lang]").await;
    chrome.wait_for_text("控制台").await;
    assert_eq!(chrome.script("return document.documentElement.lang").await, json!("zh-CN"));
    chrome.goto("/pricing").await;
    chrome.wait_for_text("价格").await;
    chrome.click_and_wait("[data-testid=switch-lang]").await;
    chrome.wait_for_text("Pricing").await;
    assert_eq!(chrome.script("return document.documentElement.lang").await, json!("en"));
    chrome.quit().await;
}

async fn redeeming_a_code_on_the_billing_page_raises_the_balance(backend: Backend) {
    let app = spawn_app(backend).await;
    add_code(&app, "BROWSER-GIFT", 5_000_000_000, None).await;
    let chrome = Chromium::start(&app, "redeem", backend).await;
    let email = "redeemer@example.com";
    sign_up(&chrome, email).await;
    confirm_signup(&chrome, email).await;

    chrome.goto("/console/billing").await;
    assert_eq!(chrome.text("[data-testid=balance]").await, "0.00");
    chrome.wait_for_text("No top-ups, codes or adjustments yet.").await;

    chrome.fill("code", "NO-SUCH-CODE").await;
    chrome.click_and_wait("form[action='/console/billing/redeem'] button[type=submit]").await;
    chrome.wait_for_text("not valid, has expired or was already used").await;
    assert_eq!(chrome.text("[data-testid=balance]").await, "0.00", "a bad code changes nothing");

    chrome.fill("code", " BROWSER-GIFT ").await;
    chrome.click_and_wait("form[action='/console/billing/redeem'] button[type=submit]").await;
    chrome.wait_for_text("Redeemed: 5.00 added").await;
    assert_eq!(chrome.text("[data-testid=balance]").await, "5.00");
    let activity = chrome.text("table tbody tr").await;
    assert!(activity.contains("Redeemed code") && activity.contains("+5.00"), "{activity:?}");

    chrome.goto("/console").await;
    assert_eq!(chrome.text("[data-testid=balance]").await, "5.00", "the dashboard shows the new balance");
    chrome.quit().await;
}

/// Public pages (logged out) and console pages (logged in, with a key, a request and a code
/// redeemed so that tables have rows): what each must show.
const PUBLIC_PAGES: [(&str, &str, &str); 5] = [
    ("/", "landing", "One API for every model"),
    ("/pricing", "pricing", MODEL),
    ("/quickstart", "quickstart", "Quick start"),
    ("/login", "login", "Log in"),
    ("/signup", "signup", "Create your account"),
];
const CONSOLE_PAGES: [(&str, &str, &str); 6] = [
    ("/console", "console", "Signed in as"),
    ("/console/keys", "console-keys", "screenshots"),
    ("/console/logs", "console-logs", MODEL),
    ("/console/billing", "console-billing", "Redeemed code"),
    ("/console/invitations", "console-invitations", "Your invitation code"),
    ("/console/profile", "console-profile", "Change password"),
];

/// The page's stylesheets and scripts loaded (a broken asset URL or CSP would leave it bare).
const ASSETS_LOADED_JS: &str = r#"
const sheets = [...document.querySelectorAll('link[rel=stylesheet]')];
const styled = sheets.length > 0 && sheets.every((l) => l.sheet && l.sheet.cssRules.length > 0);
return { styled, htmx: typeof window.htmx === 'object' };
"#;

async fn check_and_capture(chrome: &Chromium, path: &str, name: &str, shows: &str) -> Vec<LayoutNote> {
    chrome.goto(path).await;
    chrome.wait_for_path(path).await;
    chrome.wait_for_text(shows).await;
    let assets = chrome.script(ASSETS_LOADED_JS).await;
    assert_eq!(assets, json!({ "styled": true, "htmx": true }), "{path}: the stylesheet and htmx load");
    chrome.screenshot(name).await
}

async fn the_main_pages_render_at_desktop_and_phone_widths(backend: Backend) {
    let app = spawn_app(backend).await;
    let _upstream = a_model_to_call(&app).await;
    // Capabilities, so /pricing is captured with its limits and labels.
    let caps = json!({ "context_window": 128_000, "max_output_tokens": 16_384, "tools": true, "vision": true });
    assert_eq!(app.admin("PUT", &format!("/api/admin/capabilities/{MODEL}"), Some(caps)).await.0, 200);
    add_code(&app, "SCREEN-GIFT", 5_000_000_000, None).await;
    let chrome = Chromium::start(&app, "pages", backend).await;
    let mut notes = Vec::new();
    for (path, name, shows) in PUBLIC_PAGES {
        notes.extend(check_and_capture(&chrome, path, name, shows).await);
    }

    let email = "screenshots@example.com";
    sign_up(&chrome, email).await;
    confirm_signup(&chrome, email).await;
    let key = create_key(&chrome, "screenshots").await;
    chrome.goto("/console/billing").await;
    chrome.fill("code", "SCREEN-GIFT").await;
    chrome.click_and_wait("form[action='/console/billing/redeem'] button[type=submit]").await;
    chrome.wait_for_text("Redeemed: 5.00 added").await;
    chat(&app, &key).await;
    for (path, name, shows) in CONSOLE_PAGES {
        notes.extend(check_and_capture(&chrome, path, name, shows).await);
    }
    chrome.quit().await;

    // Layout problems are reported (scripts/test.sh prints this file), not failed on: the pages
    // are still being designed.
    let report: String = notes.iter().map(|LayoutNote { file, note }| format!("layout: {file}: {note}\n")).collect();
    let path = crate::support::chromium::artifacts_dir().join(format!("pages-{}-layout.txt", backend_name(backend)));
    std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    eprint!("{report}");
}

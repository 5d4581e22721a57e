//! Signup with email verification, password reset and email change, through a real SMTP server
//! (aiosmtpd on 127.0.0.1, see mail_sink.rs): links come from the received messages, use
//! `BURNCLOUD_PUBLIC_URL` whatever Host the request named, work once and expire; credits are
//! granted once, on verification; known and unknown addresses get the same answers.

use reqwest::StatusCode;
use serde_json::json;

use crate::console_auth::Browser;
use crate::support::helpers::{Backend, TestApp, spawn_app_with};
use crate::support::mail_sink::{address, sink, smtp_env};

db_tests!(
    signup_is_verified_by_email_before_login_and_credits,
    signup_answers_alike_for_existing_addresses,
    a_password_reset_link_works_once_and_ends_every_session,
    expired_links_do_nothing,
    changing_the_email_needs_the_password_and_the_new_inbox,
    email_domains_can_be_limited,
    without_smtp_nobody_is_told_to_check_an_inbox,
);

const PUBLIC_URL: &str = "https://console.acme.example";

async fn mail_app(backend: Backend) -> TestApp {
    spawn_app_with(
        backend,
        |env| {
            smtp_env(env);
            env.insert("BURNCLOUD_PUBLIC_URL".into(), PUBLIC_URL.into());
        },
        |r| r,
    )
    .await
}

/// A link from a mail, as a path on the test server.
fn local(link: &str) -> String {
    link.strip_prefix(PUBLIC_URL).unwrap_or_else(|| panic!("{link} is not on {PUBLIC_URL}")).to_string()
}

/// The page text without the per-session CSRF token (to compare two answers).
fn without_token(page: &str, token: &str) -> String {
    page.replace(token, "")
}

async fn sign_up(browser: &mut Browser<'_>, email: &str, invite: &str) -> (StatusCode, String, String) {
    let csrf = browser.csrf("/signup").await;
    let form = [("email", email), ("password", "a fine password"), ("invite", invite), ("csrf", csrf.as_str())];
    browser.post("/signup", &form).await
}

async fn log_in(browser: &mut Browser<'_>, email: &str, password: &str) -> (StatusCode, String, String) {
    let csrf = browser.csrf("/login").await;
    browser.post("/login", &[("email", email), ("password", password), ("csrf", csrf.as_str())]).await
}

async fn balance_of(app: &TestApp, email: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT balance FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

async fn setting(app: &TestApp, key: &str, value: &str) {
    let (status, body) = app.admin("PUT", &format!("/api/admin/settings/{key}"), Some(json!({ "value": value }))).await;
    assert_eq!(status, 200, "{key}: {body}");
}

async fn signup_is_verified_by_email_before_login_and_credits(backend: Backend) {
    let app = mail_app(backend).await;
    setting(&app, "signup.welcome_credit", "1.00").await;
    setting(&app, "invitation.inviter_reward", "0.50").await;
    setting(&app, "invitation.invitee_reward", "0.25").await;
    let host_email = address("host");
    let (_, host) = app
        .admin("POST", "/api/admin/users", Some(json!({ "email": host_email, "password": "a fine password" })))
        .await;
    let code: String = sqlx::query_scalar("SELECT invite_code FROM users WHERE id = $1")
        .bind(host["id"].as_i64().unwrap())
        .fetch_one(app.db.pool())
        .await
        .unwrap();

    let email = address("newcomer");
    let mut browser = Browser::new(&app);
    // A forged Host header must not end up in the mailed link.
    let csrf = browser.csrf("/signup").await;
    let form = [
        ("email", email.as_str()),
        ("password", "a fine password"),
        ("invite", code.as_str()),
        ("csrf", csrf.as_str()),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let response = browser
        .client
        .post(app.url("/signup"))
        .header("host", "evil.example")
        .header("cookie", browser.cookies())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("Check your inbox"), "{page}");

    let mail = sink().wait_for(&email, 1).remove(0);
    assert!(mail.subject.contains("Confirm your email address") && mail.subject.contains("BurnCloud"), "{mail:?}");
    assert_eq!(
        (mail.from.as_str(), mail.header_from.as_str()),
        ("noreply@acme.example", "Acme AI <noreply@acme.example>")
    );
    assert!(mail.html.contains("Confirm email address") && mail.html.contains(PUBLIC_URL), "an HTML part too");
    let link = mail.link(&format!("{PUBLIC_URL}/verify-email?token="));
    assert!(!mail.text.contains("evil.example") && !mail.html.contains("evil.example"));

    // Not logged in, and the password alone does not let in: a new link is sent instead.
    assert_eq!(browser.get("/console").await.1, "/login");
    let (status, _, page) = log_in(&mut browser, &email, "a fine password").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("not confirmed yet"), "{page}");
    let newer = sink().wait_for(&email, 2).remove(1).link(&format!("{PUBLIC_URL}/verify-email?token="));
    assert_eq!(balance_of(&app, &email).await, 0, "no credit before verification");
    assert_eq!(balance_of(&app, &host_email).await, 0);

    // The first link was replaced by the newer one.
    let (status, _, page) = browser.get(&local(&link)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("This link has expired"), "{page}");

    // Opening the link only shows a button: nothing is used by a GET.
    let (status, _, page) = browser.get(&local(&newer)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"confirm-email\""), "{page}");
    let verified: Option<i64> = sqlx::query_scalar("SELECT email_verified_at FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert!(verified.is_none(), "GET changed nothing");

    let token = newer.split("token=").nth(1).unwrap().to_string();
    let csrf = browser.csrf(&local(&newer)).await;
    let (status, location, _) = browser.post("/verify-email", &[("token", &token), ("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login?done=verified"));
    let (_, _, page) = browser.get("/login?done=verified").await;
    assert!(page.contains("Your email address is confirmed"));
    assert_eq!(balance_of(&app, &email).await, 1_250_000_000, "welcome credit + invitee reward");
    assert_eq!(balance_of(&app, &host_email).await, 500_000_000, "inviter reward");

    // Used once: a second use changes nothing.
    let (status, _, _) = browser.post("/verify-email", &[("token", &token), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(balance_of(&app, &email).await, 1_250_000_000);
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ledger WHERE kind IN ('welcome_credit', 'invitation_reward')")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(rows, 3, "one ledger row per credit");

    let (status, location, _) = log_in(&mut browser, &email, "a fine password").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"));
    let (_, _, page) = browser.get("/console").await;
    assert!(page.contains("1.25"), "the balance shows: {page}");

    // The inviter's page shows what was earned and what the site offers.
    let mut host = Browser::new(&app);
    log_in(&mut host, &host_email, "a fine password").await;
    let (_, _, page) = host.get("/console/invitations").await;
    assert!(page.contains("data-testid=\"rewards-earned\">0.50<"), "{page}");
    assert!(page.contains("you get <strong>0.50</strong> · they get <strong>0.25</strong>"), "{page}");
}

async fn signup_answers_alike_for_existing_addresses(backend: Backend) {
    let app = mail_app(backend).await;
    let taken = address("taken");
    let mut first = Browser::new(&app);
    assert_eq!(sign_up(&mut first, &taken, "").await.0, StatusCode::OK);
    sink().wait_for(&taken, 1);

    let fresh = address("fresh");
    let mut a = Browser::new(&app);
    let (status_a, _, page_a) = sign_up(&mut a, &fresh, "").await;
    let mut b = Browser::new(&app);
    let (status_b, _, page_b) = sign_up(&mut b, &taken, "").await;
    assert_eq!(status_a, status_b);
    let token_a = a.csrf("/signup").await;
    let token_b = b.csrf("/signup").await;
    assert_eq!(without_token(&page_a, &token_a), without_token(&page_b, &token_b), "identical pages");

    // The owner of the taken address hears about it, with no verification link in it.
    let mails = sink().wait_for(&taken, 2);
    assert!(mails[1].subject.contains("You already have an account"), "{:?}", mails[1]);
    assert!(!mails[1].text.contains("verify-email") && mails[1].text.contains(&format!("{PUBLIC_URL}/login")));
    let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1")
        .bind(&taken)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(accounts, 1);
}

async fn verified_account(app: &TestApp, name: &str) -> String {
    let email = address(name);
    let body = json!({ "email": email, "password": "the old password" });
    assert_eq!(app.admin("POST", "/api/admin/users", Some(body)).await.0, 201);
    email
}

async fn a_password_reset_link_works_once_and_ends_every_session(backend: Backend) {
    let app = mail_app(backend).await;
    let email = verified_account(&app, "forgetful").await;
    let mut elsewhere = Browser::new(&app);
    assert_eq!(log_in(&mut elsewhere, &email, "the old password").await.0, StatusCode::SEE_OTHER);

    // Known and unknown addresses: the same page.
    let mut browser = Browser::new(&app);
    let csrf = browser.csrf("/forgot-password").await;
    let (status_known, _, known) = browser.post("/forgot-password", &[("email", &email), ("csrf", &csrf)]).await;
    let nobody = address("nobody");
    let (status_unknown, _, unknown) = browser.post("/forgot-password", &[("email", &nobody), ("csrf", &csrf)]).await;
    assert_eq!((status_known, status_unknown), (StatusCode::OK, StatusCode::OK));
    assert_eq!(known, unknown);
    assert!(known.contains("If an account exists"), "{known}");
    let mail = sink().wait_for(&email, 1).remove(0);
    assert!(mail.subject.contains("Reset your password"));
    let link = mail.link(&format!("{PUBLIC_URL}/reset-password?token="));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(sink().messages_to(&nobody).is_empty(), "no mail to addresses without an account");

    let (status, _, page) = browser.get(&local(&link)).await;
    assert_eq!(status, StatusCode::OK);
    let token = link.split("token=").nth(1).unwrap().to_string();
    assert!(page.contains(&format!("name=\"token\" value=\"{token}\"")), "{page}");

    // A weak password is refused and does not use up the link.
    let (status, _, page) =
        browser.post("/reset-password", &[("token", &token), ("password", "short"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("at least"), "{page}");
    let (status, location, _) = browser
        .post("/reset-password", &[("token", &token), ("password", "a brand new password"), ("csrf", &csrf)])
        .await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login?done=reset"));

    // Every session ended; the old password is gone; the link is used up.
    assert_eq!(elsewhere.get("/console").await.1, "/login", "the other session was ended");
    assert_eq!(log_in(&mut browser, &email, "the old password").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(log_in(&mut browser, &email, "a brand new password").await.0, StatusCode::SEE_OTHER);
    let (status, _, _) =
        browser.post("/reset-password", &[("token", &token), ("password", "a third password!"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the login rotated the session: the old form token is stale");
    let csrf = browser.csrf("/forgot-password").await;
    let (status, _, page) =
        browser.post("/reset-password", &[("token", &token), ("password", "a third password!"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("This link has expired"));
    assert_eq!(log_in(&mut Browser::new(&app), &email, "a brand new password").await.0, StatusCode::SEE_OTHER);
}

async fn expired_links_do_nothing(backend: Backend) {
    let app = mail_app(backend).await;
    let email = verified_account(&app, "late").await;
    let mut browser = Browser::new(&app);
    let csrf = browser.csrf("/forgot-password").await;
    browser.post("/forgot-password", &[("email", &email), ("csrf", &csrf)]).await;
    let link = sink().wait_for(&email, 1).remove(0).link(&format!("{PUBLIC_URL}/reset-password?token="));
    sqlx::query("UPDATE email_tokens SET expires_at = 1").execute(app.db.pool()).await.unwrap();
    let (status, _, page) = browser.get(&local(&link)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("This link has expired"));
    let token = link.split("token=").nth(1).unwrap();
    let form = [("token", token), ("password", "a brand new password"), ("csrf", csrf.as_str())];
    assert_eq!(browser.post("/reset-password", &form).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(log_in(&mut browser, &email, "the old password").await.0, StatusCode::SEE_OTHER, "unchanged");
}

async fn changing_the_email_needs_the_password_and_the_new_inbox(backend: Backend) {
    let app = mail_app(backend).await;
    let email = verified_account(&app, "mover").await;
    let mut browser = Browser::new(&app);
    log_in(&mut browser, &email, "the old password").await;
    let new_email = address("moved");
    let csrf = browser.csrf("/console/profile").await;

    let (status, _, page) = browser
        .post("/console/profile/email", &[("email", &new_email), ("password", "wrong password"), ("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("The current password is not right."));
    let (status, _, page) = browser
        .post("/console/profile/email", &[("email", &new_email), ("password", "the old password"), ("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("We sent a link to the new address"), "{page}");
    assert!(page.contains(&format!("data-testid=\"email\">{email}<")), "unchanged until the link is used");
    let link = sink().wait_for(&new_email, 1).remove(0).link(&format!("{PUBLIC_URL}/verify-email?token="));
    assert!(sink().messages_to(&email).is_empty(), "the link goes to the new address only");

    let token = link.split("token=").nth(1).unwrap().to_string();
    let (status, location, _) = browser.post("/verify-email", &[("token", &token), ("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/profile?done=email"));
    let (_, _, page) = browser.get("/console/profile?done=email").await;
    assert!(page.contains(&format!("data-testid=\"email\">{new_email}<")) && page.contains("is confirmed"), "{page}");
    assert_eq!(log_in(&mut Browser::new(&app), &new_email, "the old password").await.0, StatusCode::SEE_OTHER);
    assert_eq!(log_in(&mut Browser::new(&app), &email, "the old password").await.0, StatusCode::UNAUTHORIZED);
}

async fn email_domains_can_be_limited(backend: Backend) {
    let app = mail_app(backend).await;
    setting(&app, "signup.email_domains", "corp.example").await;
    let mut browser = Browser::new(&app);
    let outsider = address("outsider");
    let (status, _, page) = sign_up(&mut browser, &outsider, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("limited to some email domains"), "{page}");
    let (status, _, page) = sign_up(&mut browser, "insider@corp.example", "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Check your inbox"));
    let users: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email LIKE '%@example.com' AND role = 'user'")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(users, 0, "nobody outside the domain was created");
}

async fn without_smtp_nobody_is_told_to_check_an_inbox(backend: Backend) {
    let app = crate::support::helpers::spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    let (status, _, page) = browser.get("/forgot-password").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("does not send email") && !page.contains("name=\"email\""), "{page}");
    let csrf = browser.csrf("/login").await;
    let (_, _, page) = browser.post("/forgot-password", &[("email", "a@example.com"), ("csrf", &csrf)]).await;
    assert!(page.contains("does not send email") && !page.contains("Check your inbox"), "{page}");
    // And signup goes straight in, without a link to wait for.
    let (status, location, _) = sign_up(&mut browser, "direct@example.com", "").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"));
    let (_, _, page) = browser.get("/console").await;
    assert!(!page.contains("data-testid=\"mail-off\""), "users are not bothered with it");

    // The operators are told, on their dashboard.
    let mut admin = Browser::new(&app);
    let (status, _, _) =
        log_in(&mut admin, crate::support::helpers::ADMIN_EMAIL, crate::support::helpers::ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = admin.get("/console").await;
    assert!(page.contains("data-testid=\"mail-off\"") && page.contains("BURNCLOUD_SMTP_HOST"), "{page}");
    let mail_app = mail_app(backend).await;
    let mut admin = Browser::new(&mail_app);
    log_in(&mut admin, crate::support::helpers::ADMIN_EMAIL, crate::support::helpers::ADMIN_PASSWORD).await;
    let (_, _, page) = admin.get("/console").await;
    assert!(page.contains("data-testid=\"email\"") && !page.contains("data-testid=\"mail-off\""), "{page}");
}

//! Invitations: a user's link pre-fills the code on the signup form; who joined with it shows
//! (masked) on the inviter's page; an unknown code is refused.

use reqwest::StatusCode;

use crate::console_auth::Browser;
use crate::support::helpers::{Backend, spawn_app, spawn_app_with};

db_tests!(signing_up_through_an_invitation_link_records_the_inviter, signup_modes_and_the_welcome_credit);

fn between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = page.find(start).unwrap() + start.len();
    &page[from..from + page[from..].find(end).unwrap()]
}

async fn signing_up_through_an_invitation_link_records_the_inviter(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut inviter = Browser::new(&app);
    inviter.sign_up("host@example.com").await;
    let (_, _, page) = inviter.get("/console/invitations").await;
    let code = between(&page, "data-testid=\"invite-code\">", "<").to_string();
    let link = between(&page, "data-testid=\"invite-link\">", "<").to_string();
    assert!(link.ends_with(&format!("/signup?aff={code}")), "{link}");
    assert!(page.contains("Nobody yet."));

    let mut guest = Browser::new(&app);
    let (_, _, form) = guest.get(&format!("/signup?aff={code}")).await;
    assert!(form.contains(&format!("name=\"invite\" value=\"{code}\"")), "the link pre-fills the code");
    let csrf = guest.csrf("/signup").await;
    let bad =
        [("email", "guest@example.com"), ("password", "a fine password"), ("invite", "NOPE"), ("csrf", csrf.as_str())];
    let (status, _, page) = guest.post("/signup", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("invitation code is not valid"));
    let good = [
        ("email", "guest@example.com"),
        ("password", "a fine password"),
        ("invite", code.as_str()),
        ("csrf", csrf.as_str()),
    ];
    assert_eq!(guest.post("/signup", &good).await.0, StatusCode::SEE_OTHER);

    let (_, _, page) = inviter.get("/console/invitations").await;
    assert!(page.contains("g***@example.com") && !page.contains("guest@example.com"), "{page}");
    let (_, _, page) = guest.get("/console/invitations").await;
    assert!(page.contains("Nobody yet."), "the guest invited nobody");
}

async fn signup_modes_and_the_welcome_credit(backend: Backend) {
    let closed = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_SIGNUP_MODE".into(), "closed".into());
        },
        |r| r,
    )
    .await;
    let mut browser = Browser::new(&closed);
    let csrf = browser.csrf("/signup").await;
    let form = [("email", "late@example.com"), ("password", "a fine password"), ("csrf", csrf.as_str())];
    let (status, _, page) = browser.post("/signup", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Sign-ups are closed"));

    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_SIGNUP_MODE".into(), "invite_only".into());
            env.insert("BURNCLOUD_WELCOME_CREDIT".into(), "1.50".into());
        },
        |r| r,
    )
    .await;
    let body = serde_json::json!({ "email": "host@example.com", "password": "a fine password" });
    let (_, host) = app.admin("POST", "/api/admin/users", Some(body)).await;
    let code: String =
        sqlx::query_scalar::<_, String>("SELECT invite_code FROM users WHERE email = 'host@example.com'")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    let mut guest = Browser::new(&app);
    let csrf = guest.csrf("/signup").await;
    let form = [("email", "guest@example.com"), ("password", "a fine password"), ("csrf", csrf.as_str())];
    let (status, _, page) = guest.post("/signup", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "invite-only: no code, no account");
    assert!(page.contains("invite-only"));
    let form = [
        ("email", "guest@example.com"),
        ("password", "a fine password"),
        ("invite", code.as_str()),
        ("csrf", csrf.as_str()),
    ];
    assert_eq!(guest.post("/signup", &form).await.0, StatusCode::SEE_OTHER);
    let (_, _, page) = guest.get("/console").await;
    assert!(page.contains("data-testid=\"balance\">1.50<"), "the welcome credit: {page}");
    let kinds: Vec<String> = sqlx::query_scalar::<_, String>(
        "SELECT l.kind FROM ledger l JOIN users u ON u.id = l.user_id WHERE u.email = 'guest@example.com'",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert_eq!(kinds, ["welcome_credit"]);
    assert!(host["id"].is_i64(), "operators still create accounts: {host}");
    app.assert_ledger_consistent().await;
}

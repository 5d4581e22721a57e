//! `/console/profile`: a password change needs the current password and signs every other
//! session out; "sign out everywhere else" keeps only this one.

use reqwest::StatusCode;

use crate::console_auth::Browser;
use crate::support::helpers::{Backend, spawn_app};

db_tests!(changing_the_password_ends_the_other_sessions);

async fn log_in(browser: &mut Browser<'_>, password: &str) -> StatusCode {
    let csrf = browser.csrf("/login").await;
    browser.post("/login", &[("email", "me@example.com"), ("password", password), ("csrf", &csrf)]).await.0
}

async fn changing_the_password_ends_the_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut laptop = Browser::new(&app);
    laptop.sign_up("me@example.com").await;
    let mut phone = Browser::new(&app);
    assert_eq!(log_in(&mut phone, "a fine password").await, StatusCode::SEE_OTHER);
    let (_, _, page) = laptop.get("/console/profile").await;
    assert!(page.contains("data-testid=\"sessions\">2<"), "{page}");

    let csrf = laptop.csrf("/console/profile").await;
    let wrong = [("current", "not my password"), ("new", "a newer password"), ("csrf", csrf.as_str())];
    let (status, _, page) = laptop.post("/console/profile/password", &wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("current password is not right"));
    let right = [("current", "a fine password"), ("new", "a newer password"), ("csrf", csrf.as_str())];
    let (status, _, page) = laptop.post("/console/profile/password", &right).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Every other session was signed out"), "{page}");

    assert_eq!(phone.get("/console").await.1, "/login", "the other session ended");
    assert_eq!(laptop.get("/console").await.0, StatusCode::OK, "this one goes on");
    let mut fresh = Browser::new(&app);
    assert_eq!(log_in(&mut fresh, "a fine password").await, StatusCode::UNAUTHORIZED);
    assert_eq!(log_in(&mut fresh, "a newer password").await, StatusCode::SEE_OTHER);

    // Sign out everywhere else.
    let (status, _, page) = laptop.post("/console/profile/sign-out-others", &[("csrf", csrf.as_str())]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Signed out 1 other session(s)."), "{page}");
    assert_eq!(fresh.get("/console").await.1, "/login");
    assert_eq!(laptop.get("/console").await.0, StatusCode::OK);
    let (status, _, _) = laptop.post("/console/profile/sign-out-others", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

//! The operator's console: who may enter (admins and root), and what the management API's
//! tokens may do by role.

use reqwest::StatusCode;
use serde_json::json;

use crate::console_auth::Browser;
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(only_admins_enter_the_admin_console, access_tokens_act_with_their_users_role);

/// Creates a user with `role` through the API and returns its email.
pub async fn user_with_role(app: &TestApp, name: &str, role: &str) -> String {
    let email = format!("{name}@example.com");
    let body = json!({ "email": email, "password": "a fine password", "role": role });
    let (status, answer) = app.admin("POST", "/api/admin/users", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    email
}

/// A personal access token of a logged-in browser's user, made on the profile page.
pub async fn access_token(browser: &mut Browser<'_>) -> String {
    let csrf = browser.csrf("/console/profile").await;
    let (_, _, page) = browser.post("/console/profile/tokens", &[("name", "t"), ("csrf", &csrf)]).await;
    let start = page.find("data-testid=\"new-token\">").expect("the new token is shown") + 24;
    page[start..start + page[start..].find('<').unwrap()].to_string()
}

async fn only_admins_enter_the_admin_console(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, location, _) = Browser::new(&app).get("/admin").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
    for role in ["user", "reseller"] {
        let email = user_with_role(&app, role, role).await;
        let mut browser = Browser::new(&app);
        browser.log_in(&email, "a fine password").await;
        let (status, _, page) = browser.get("/admin").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
        assert!(page.contains("Operators only"), "{page}");
        let (_, _, page) = browser.get("/console").await;
        assert!(!page.contains("data-testid=\"admin-link\""), "no admin link for a {role}");
    }
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (_, _, page) = root.get("/console").await;
    assert!(page.contains("data-testid=\"admin-link\""), "operators see the way in");
    let (status, _, _) = root.get("/admin").await;
    assert_eq!(status, StatusCode::OK);
}

async fn access_tokens_act_with_their_users_role(backend: Backend) {
    let app = spawn_app(backend).await;
    for (role, admin_status) in [("user", 403), ("reseller", 403), ("admin", 200)] {
        let email = user_with_role(&app, role, role).await;
        let mut browser = Browser::new(&app);
        browser.log_in(&email, "a fine password").await;
        let token = access_token(&mut browser).await;
        let response = app.client.get(app.url("/api/admin/channels")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status().as_u16(), admin_status, "{role} on /api/admin");
        if admin_status == 403 {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "forbidden", "{body}");
        }
    }
    let response = app.client.get(app.url("/api/admin/channels")).bearer_auth("bct_nonsense").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

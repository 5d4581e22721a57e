//! Personal access tokens on `/console/profile`: created (shown once) as a plain form and with
//! htmx, listed, revoked; refused input explained and nothing created; other users' tokens out
//! of reach.

use reqwest::StatusCode;

use crate::console_auth::Browser;
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(tokens_are_created_once_listed_and_revoked, refused_tokens_and_other_users_tokens);

fn new_token(page: &str) -> String {
    let start = page.find("data-testid=\"new-token\">").expect("the new token is shown") + 24;
    page[start..start + page[start..].find('<').unwrap()].to_string()
}

/// Creates a token through the profile's form (no JavaScript); the token.
pub async fn console_token(browser: &mut Browser<'_>, name: &str) -> String {
    let csrf = browser.csrf("/console/profile").await;
    let (status, _, page) =
        browser.post("/console/profile/tokens", &[("csrf", &csrf), ("name", name), ("expires", "")]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    new_token(&page)
}

/// A token's id, from the profile page.
async fn token_id(browser: &mut Browser<'_>, prefix: &str) -> i64 {
    let (_, _, page) = browser.get("/console/profile").await;
    let at = page.find(&format!("<code>{prefix}")).unwrap();
    let start = page[..at].rfind("<tr id=\"token-").unwrap() + 14;
    page[start..start + page[start..].find('"').unwrap()].parse().unwrap()
}

async fn me(app: &TestApp, token: &str) -> u16 {
    app.client.get(app.url("/api/me")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

/// An htmx POST (the CSRF token in the header, as htmx sends it).
async fn hx_post(app: &TestApp, browser: &mut Browser<'_>, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let csrf = browser.csrf("/console/profile").await;
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let request = browser
        .client
        .post(app.url(path))
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-csrf-token", csrf)
        .header("hx-request", "true")
        .body(body);
    let (status, _, body) = browser.send(request).await;
    (status, body)
}

async fn count(app: &TestApp) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM access_tokens").fetch_one(app.db.pool()).await.unwrap()
}

async fn tokens_are_created_once_listed_and_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("tokens@example.com").await;
    let (status, _, page) = browser.get("/console/profile").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"tokens\"") && page.contains("No tokens yet."), "{page}");

    // Without JavaScript: a page with the section, the token shown once.
    let deploy = console_token(&mut browser, "deploy").await;
    assert!(deploy.starts_with("bct_") && deploy.len() == 47, "{deploy}");
    let (_, _, profile) = browser.get("/console/profile").await;
    assert!(profile.contains("deploy") && profile.contains(&deploy[..7]) && !profile.contains(&deploy), "{profile}");
    assert!(profile.contains("never"), "not used yet: {profile}");
    let stored: String =
        sqlx::query_scalar::<_, String>("SELECT token_hash FROM access_tokens").fetch_one(app.db.pool()).await.unwrap();
    assert_eq!(stored, burncloud::domain::api_key::hash(&deploy), "stored as its SHA-256 only");

    // With htmx: the section alone, with the new token and both in the list.
    let (status, fragment) =
        hx_post(&app, &mut browser, "/console/profile/tokens", &[("name", "ci"), ("expires", "2999-12-31")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(fragment.starts_with("<section class=\"card\" id=\"tokens\"") && !fragment.contains("<html"), "{fragment}");
    let ci = new_token(&fragment);
    assert!(fragment.contains("2999-12-31") && fragment.contains(&deploy[..7]), "{fragment}");

    // The tokens work; using one stamps its last use.
    assert_eq!(me(&app, &deploy).await, 200);
    assert_eq!(me(&app, &ci).await, 200);
    let used: Option<i64> =
        sqlx::query_scalar::<_, Option<i64>>("SELECT last_used_at FROM access_tokens WHERE token_hash = $1")
            .bind(burncloud::domain::api_key::hash(&deploy))
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert!(used.is_some_and(|t| t > burncloud::domain::time::now_ms() - 60_000), "{used:?}");
    let (_, _, profile) = browser.get("/console/profile").await;
    let row = &profile[profile.find(&format!("<code>{}", &deploy[..7])).unwrap()..];
    assert_eq!(row[..row.find("</tr>").unwrap()].matches(" UTC").count(), 2, "last use and creation shown: {row}");

    // Revoke without JavaScript: back to the profile; the token stops working at once.
    let csrf = browser.csrf("/console/profile").await;
    let id = token_id(&mut browser, &deploy[..7]).await;
    let (status, location, _) = browser.post(&format!("/console/profile/tokens/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/profile#tokens"));
    assert_eq!(me(&app, &deploy).await, 401);
    assert_eq!(me(&app, &ci).await, 200, "the other token goes on");

    // Revoke with htmx: the section again, without it.
    let id = token_id(&mut browser, &ci[..7]).await;
    let (status, fragment) = hx_post(&app, &mut browser, &format!("/console/profile/tokens/{id}/revoke"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(fragment.contains("No tokens yet.") && !fragment.contains("<html"), "{fragment}");
    assert_eq!(me(&app, &ci).await, 401);
    assert_eq!(count(&app).await, 0);
}

async fn refused_tokens_and_other_users_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("careful@example.com").await;
    let mine = console_token(&mut browser, "mine").await;
    let long_name = "n".repeat(101);
    let cases = [
        (long_name.as_str(), "", "name: at most 100 characters"),
        ("x", "2000-01-01", "Works through: that day is over"),
        ("x", "soon", "Works through: a date like 2026-11-27."),
        ("bell\u{7}", "", "name: no control characters"),
    ];
    let csrf = browser.csrf("/console/profile").await;
    for (name, expires, message) in cases {
        let form = [("csrf", csrf.as_str()), ("name", name), ("expires", expires)];
        let (status, _, page) = browser.post("/console/profile/tokens", &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name} {expires}");
        assert!(page.contains(message) && page.contains("role=\"alert\""), "{message}: {page}");
        assert!(page.contains(&format!("value=\"{expires}\"")), "the input is kept: {page}");
        let (status, fragment) = hx_post(&app, &mut browser, "/console/profile/tokens", &form[1..]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(fragment.contains(message) && !fragment.contains("new-token"), "{fragment}");
        assert_eq!(count(&app).await, 1, "nothing created");
    }
    // At most 20 tokens at once.
    for i in 1..20 {
        let (status, fragment) =
            hx_post(&app, &mut browser, "/console/profile/tokens", &[("name", &format!("t{i}"))]).await;
        assert!(status == StatusCode::OK && fragment.contains("new-token"), "{fragment}");
    }
    let (_, fragment) = hx_post(&app, &mut browser, "/console/profile/tokens", &[("name", "one too many")]).await;
    assert!(fragment.contains("at most 20 tokens: revoke one first") && !fragment.contains("new-token"), "{fragment}");
    assert_eq!(count(&app).await, 20);
    // Without the CSRF token nothing happens.
    let (status, _, _) = browser.post("/console/profile/tokens", &[("name", "forged")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Another user cannot revoke it, by its id or any guess; nor see it.
    let id = token_id(&mut browser, &mine[..7]).await;
    let mut other = Browser::new(&app);
    other.sign_up("guesser@example.com").await;
    let (_, _, profile) = other.get("/console/profile").await;
    assert!(profile.contains("No tokens yet.") && !profile.contains(&mine[..7]));
    let csrf = other.csrf("/console/profile").await;
    for guess in [id, id + 1, id + 100, 999_999] {
        let (status, _, _) = other.post(&format!("/console/profile/tokens/{guess}/revoke"), &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{guess}");
    }
    assert_eq!(count(&app).await, 20);
    assert_eq!(me(&app, &mine).await, 200);
    // Logged out, the forms are behind the login.
    let (status, location, _) = Browser::new(&app).get("/console/profile").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
}

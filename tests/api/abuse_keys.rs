//! The key cache and credentials under abuse (issue 13, item 18): a token not shaped like a key
//! costs no database query; a key disabled while lookups are in flight is refused from the next
//! request on; invalidation drops single entries, not the whole cache; a password change or
//! reset also revokes the user's access tokens unless the user unticks the box.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console_auth::Browser;
use crate::console_tokens::console_token;
use crate::support::helpers::{Backend, TestApp, spawn_app, spawn_app_with};
use crate::support::mail_sink::{address, sink, smtp_env};

db_tests!(
    tokens_not_shaped_like_keys_cost_no_database_query,
    a_key_disabled_while_lookups_are_in_flight_is_refused_next,
    a_password_change_can_also_revoke_access_tokens,
    a_password_reset_can_also_revoke_access_tokens,
);

async fn models(app: &TestApp, auth: (&str, &str)) -> (u16, Value) {
    let response = app.client.get(app.url("/v1/models")).header(auth.0, auth.1).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn lookups(app: &TestApp) -> u64 {
    app.state.keys().db_lookups()
}

async fn tokens_not_shaped_like_keys_cost_no_database_query(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.user_with_key("1.00").await;
    assert_eq!(models(&app, ("authorization", &format!("Bearer {key}"))).await.0, 200);
    let before = lookups(&app);
    assert_eq!(before, 1);

    let long = format!("Bearer sk-{}", "a".repeat(300));
    let malformed = [
        ("authorization", "Bearer hello"),
        ("authorization", "Bearer sk-short"),
        ("authorization", "Bearer bct_an-access-token-is-not-a-key"),
        ("authorization", "Bearer sk-with\tcontrol-characters"),
        ("authorization", long.as_str()),
        ("x-api-key", "AIzaSy-a-google-key-is-not-ours"),
        ("x-goog-api-key", "sk-with spaces-in-the-middle"),
    ];
    for auth in malformed {
        let (status, body) = models(&app, auth).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")), "{auth:?}: {body}");
    }
    assert_eq!(lookups(&app), before, "no database query for tokens that cannot be keys");

    // A well-formed unknown key costs one query, then is remembered as unknown.
    let made_up = format!("Bearer sk-{}", "Z".repeat(48));
    assert_eq!(models(&app, ("authorization", &made_up)).await.0, 401);
    assert_eq!(models(&app, ("authorization", &made_up)).await.0, 401);
    assert_eq!(lookups(&app), before + 1);

    // With the database gone, malformed tokens are still answered 401 — they never reach it —
    // while a new well-formed key does need it.
    app.db.close().await;
    let (status, body) = models(&app, ("authorization", "Bearer not-a-key-at-all")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_api_key")), "{body}");
    let other = format!("Bearer sk-{}", "Y".repeat(48));
    assert_eq!(models(&app, ("authorization", &other)).await.0, 500, "this one needed the database");
}

async fn key_id(app: &TestApp, user: i64) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT id FROM api_keys WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

async fn a_key_disabled_while_lookups_are_in_flight_is_refused_next(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, key) = app.user_with_key("1.00").await;
    let (_, bystander) = app.user_with_key("1.00").await;
    let id = key_id(&app, user).await;
    let bearer = format!("Bearer {key}");
    assert_eq!(models(&app, ("authorization", &format!("Bearer {bystander}"))).await.0, 200);

    for round in 0..5 {
        // A burst of requests with the key, each a lookup (cache expired by the re-enable) …
        let burst: Vec<_> = (0..16)
            .map(|_| {
                let (client, url, bearer) = (app.client.clone(), app.url("/v1/models"), bearer.clone());
                tokio::spawn(
                    async move { client.get(url).header("authorization", bearer).send().await.unwrap().status() },
                )
            })
            .collect();
        // … while the owner's key is disabled.
        let (status, body) =
            app.admin("PATCH", &format!("/api/admin/keys/{id}"), Some(json!({ "status": "disabled" }))).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = models(&app, ("authorization", &bearer)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_api_key")),
            "round {round}: the next request after the disable is refused"
        );
        for request in burst {
            let status = request.await.unwrap();
            assert!(status == 200 || status == 401, "{status}");
        }
        assert_eq!(models(&app, ("authorization", &bearer)).await.0, 401, "round {round}: and stays refused");
        let (status, _) =
            app.admin("PATCH", &format!("/api/admin/keys/{id}"), Some(json!({ "status": "active" }))).await;
        assert_eq!(status, 200);
        assert_eq!(models(&app, ("authorization", &bearer)).await.0, 200, "round {round}: re-enabled at once");
    }

    // Those changes dropped one entry each, not the whole cache: the bystander's key is still cached.
    let before = lookups(&app);
    assert_eq!(models(&app, ("authorization", &format!("Bearer {bystander}"))).await.0, 200);
    assert_eq!(lookups(&app), before, "another user's key was not evicted");
}

async fn me(app: &TestApp, token: &str) -> u16 {
    app.client.get(app.url("/api/me")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

async fn a_password_change_can_also_revoke_access_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("owner@example.com").await;
    let token = console_token(&mut browser, "script").await;
    assert_eq!(me(&app, &token).await, 200);
    let (_, _, page) = browser.get("/console/profile").await;
    assert!(
        page.contains(r#"<input type="checkbox" name="revoke_tokens" value="1" checked>"#),
        "checked by default: {page}"
    );
    assert!(page.contains("Also revoke my access tokens"));

    // The box unticked: the form sends only its marker, and the token keeps working.
    let csrf = browser.csrf("/console/profile").await;
    let kept = [("current", "a fine password"), ("new", "a second password"), ("tokens_choice", "1"), ("csrf", &csrf)];
    let (status, _, page) = browser.post("/console/profile/password", &kept).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Every other session was signed out.") && !page.contains("access tokens were revoked"),
        "{page}"
    );
    assert_eq!(me(&app, &token).await, 200, "unticked: the token was kept");

    // Ticked (the default): every token of the user is revoked.
    let other = console_token(&mut browser, "another").await;
    let csrf = browser.csrf("/console/profile").await;
    let revoke = [
        ("current", "a second password"),
        ("new", "a third password"),
        ("tokens_choice", "1"),
        ("revoke_tokens", "1"),
        ("csrf", &csrf),
    ];
    let (status, _, page) = browser.post("/console/profile/password", &revoke).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("your access tokens were revoked"), "{page}");
    assert_eq!((me(&app, &token).await, me(&app, &other).await), (401, 401));

    // A post that never offered the choice (an older page, a script) revokes: the safe default.
    let third = console_token(&mut browser, "third").await;
    let csrf = browser.csrf("/console/profile").await;
    let bare = [("current", "a third password"), ("new", "a fourth password"), ("csrf", csrf.as_str())];
    assert_eq!(browser.post("/console/profile/password", &bare).await.0, StatusCode::OK);
    assert_eq!(me(&app, &third).await, 401);

    // A wrong current password changes nothing, tokens included.
    let fourth = console_token(&mut browser, "fourth").await;
    let csrf = browser.csrf("/console/profile").await;
    let wrong = [("current", "not it"), ("new", "a fifth password"), ("revoke_tokens", "1"), ("csrf", &csrf)];
    assert_eq!(browser.post("/console/profile/password", &wrong).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(me(&app, &fourth).await, 200);
}

const PUBLIC_URL: &str = "https://console.acme.example";

/// Asks for a reset link and returns its token (the `n`-th mail to `email`).
async fn reset_token(browser: &mut Browser<'_>, email: &str, n: usize) -> String {
    let csrf = browser.csrf("/forgot-password").await;
    browser.post("/forgot-password", &[("email", email), ("csrf", &csrf)]).await;
    let mail = sink().wait_for(email, n).remove(n - 1);
    let link = mail.link(&format!("{PUBLIC_URL}/reset-password?token="));
    link.split("token=").nth(1).unwrap().to_string()
}

async fn a_password_reset_can_also_revoke_access_tokens(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            smtp_env(env);
            env.insert("BURNCLOUD_PUBLIC_URL".into(), PUBLIC_URL.into());
        },
        |r| r,
    )
    .await;
    let email = address("tokens-reset");
    let (status, user) =
        app.admin("POST", "/api/admin/users", Some(json!({ "email": email, "password": "the old password" }))).await;
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_i64().unwrap();
    let (_, token) =
        burncloud::services::accounts::access_tokens::create(&app.state, user_id, "script", None).await.unwrap();
    assert_eq!(me(&app, &token).await, 200);

    let mut browser = Browser::new(&app);
    let secret = reset_token(&mut browser, &email, 1).await;
    let (_, _, page) = browser.get(&format!("/reset-password?token={secret}")).await;
    assert!(page.contains(r#"<input type="checkbox" name="revoke_tokens" value="1" checked>"#), "{page}");

    // Unticked: the password changes, the token stays.
    let csrf = browser.csrf("/forgot-password").await;
    let kept =
        [("token", secret.as_str()), ("password", "a brand new password"), ("tokens_choice", "1"), ("csrf", &csrf)];
    let (status, location, _) = browser.post("/reset-password", &kept).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login?done=reset"));
    assert_eq!(me(&app, &token).await, 200);

    // Ticked: the token is revoked with the reset.
    let secret = reset_token(&mut browser, &email, 2).await;
    let csrf = browser.csrf("/forgot-password").await;
    let revoke = [
        ("token", secret.as_str()),
        ("password", "a third new password"),
        ("tokens_choice", "1"),
        ("revoke_tokens", "1"),
        ("csrf", &csrf),
    ];
    let (status, location, _) = browser.post("/reset-password", &revoke).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login?done=reset"));
    assert_eq!(me(&app, &token).await, 401, "revoked with the reset");
    let remaining: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM access_tokens WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(remaining, 0);
}

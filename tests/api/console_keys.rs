//! `/console/keys`: a user creates a key (shown once), uses it, disables, re-enables and deletes
//! it; nobody else can see or touch it.

use reqwest::StatusCode;

use crate::console_auth::Browser;
use crate::support::helpers::{Backend, spawn_app};

db_tests!(a_key_is_shown_once_works_and_can_be_disabled_and_deleted, another_users_keys_are_out_of_reach);

fn new_key(page: &str) -> String {
    let start = page.find("data-testid=\"new-key\">").expect("the new key is shown") + 22;
    page[start..start + page[start..].find('<').unwrap()].to_string()
}

fn key_id(page: &str) -> String {
    let start = page.find("/console/keys/").unwrap() + 14;
    page[start..start + page[start..].find('/').unwrap()].to_string()
}

async fn a_key_is_shown_once_works_and_can_be_disabled_and_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("keys@example.com").await;
    let csrf = browser.csrf("/console/keys").await;
    let (status, _, page) =
        browser.post("/console/keys", &[("name", "laptop"), ("spend_limit", "2.50"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK);
    let key = new_key(&page);
    assert!(key.starts_with("sk-") && key.len() >= 43, "{key}");
    assert!(page.contains("laptop") && page.contains("2.50"));

    // Shown once: the list never carries the secret again.
    let (_, _, list) = browser.get("/console/keys").await;
    assert!(!list.contains(&key) && list.contains(&key[..7]), "only the prefix is listed");

    // The key works on the gateway, stops when disabled, works again when enabled.
    let models = |key: String| {
        let client = app.client.clone();
        let url = app.url("/v1/models");
        async move { client.get(url).bearer_auth(key).send().await.unwrap().status() }
    };
    assert_eq!(models(key.clone()).await, 200);
    let id = key_id(&list);
    let (status, location, _) =
        browser.post(&format!("/console/keys/{id}/status"), &[("status", "disabled"), ("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/keys"));
    assert_eq!(models(key.clone()).await, 401);
    browser.post(&format!("/console/keys/{id}/status"), &[("status", "active"), ("csrf", &csrf)]).await;
    assert_eq!(models(key.clone()).await, 200);

    let (status, _, _) = browser.post(&format!("/console/keys/{id}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(models(key).await, 401);
    let (_, _, list) = browser.get("/console/keys").await;
    assert!(list.contains("No keys yet."));

    // A bad limit is a form error, not a key.
    let (status, _, page) = browser.post("/console/keys", &[("spend_limit", "lots"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!page.contains("data-testid=\"new-key\""));
}

async fn another_users_keys_are_out_of_reach(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut owner = Browser::new(&app);
    owner.sign_up("owner@example.com").await;
    let csrf = owner.csrf("/console/keys").await;
    let (_, _, page) = owner.post("/console/keys", &[("name", "mine"), ("csrf", &csrf)]).await;
    let key = new_key(&page);
    let (_, _, list) = owner.get("/console/keys").await;
    let id = key_id(&list);

    let mut other = Browser::new(&app);
    other.sign_up("other@example.com").await;
    let (_, _, list) = other.get("/console/keys").await;
    assert!(!list.contains("mine") && !list.contains(&key[..7]), "not listed for others");
    let csrf = other.csrf("/console/keys").await;
    for path in [format!("/console/keys/{id}/status"), format!("/console/keys/{id}/delete")] {
        let (status, _, _) = other.post(&path, &[("status", "disabled"), ("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _, page) = other.post("/console/keys/999999/delete", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a missing key looks the same");
    // The console's one error answer: a page in the viewer's language, or for htmx the message.
    assert!(page.contains("data-testid=\"error-page\"") && page.contains("No such key."), "{page}");
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs([("csrf", csrf.as_str())]).finish();
    let request = other
        .client
        .post(app.url("/console/keys/999999/delete"))
        .header("hx-request", "true")
        .header("x-csrf-token", csrf.as_str())
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    let (status, _, fragment) = other.send(request).await;
    assert_eq!(
        (status, fragment.as_str()),
        (StatusCode::NOT_FOUND, "<p class=\"error\" role=\"alert\">No such key.</p>")
    );
    let response = app.client.get(app.url("/v1/models")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), 200, "the owner's key is untouched");

    // Self-service ignores a fixed key string and anything else it does not offer.
    let form = [("name", "x"), ("key", "sk-chosen-by-the-client-0123456789abcdef01234567"), ("csrf", csrf.as_str())];
    let (_, _, page) = other.post("/console/keys", &form).await;
    assert_ne!(new_key(&page), "sk-chosen-by-the-client-0123456789abcdef01234567");
}

//! Ids in paths are read one way (`routes::Id`) by the console and the API: anything that is not
//! a number answers as a missing row does, in the face's own shape, and changes nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::console_auth::Browser;
use crate::support::helpers::{Backend, spawn_app};

db_tests!(an_id_that_is_not_a_number_is_a_404_in_each_faces_shape);

async fn an_id_that_is_not_a_number_is_a_404_in_each_faces_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, key) = app.user_with_key("1.00").await;

    // The API: its JSON error, for reads and for writes.
    for (method, path, body) in [
        ("GET", "/api/admin/channels/abc", None),
        ("PATCH", "/api/admin/keys/1x", Some(json!({ "name": "renamed" }))),
        ("DELETE", "/api/admin/keys/%201", None),
        ("GET", "/api/admin/users/-/ledger", None),
        ("POST", "/api/admin/users/9e9/credit", Some(json!({ "amount": "5.00" }))),
    ] {
        let (status, answer) = app.admin(method, path, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "not_found", "{method} {path}: {answer}");
    }

    // The console: the friendly page, for the owner's pages and the operator's.
    let mut owner = Browser::new(&app);
    owner.sign_up("ids@example.com").await;
    let (status, _, page) = owner.get("/console/keys/abc/edit").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("There is nothing here."), "{page}");
    let csrf = owner.csrf("/console/keys").await;
    let (status, _, _) = owner.post("/console/keys/abc/delete", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (status, _, page) = root.get("/admin/users/abc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("There is nothing here."), "{page}");

    // Nothing changed: the key still works and the books still add up.
    let models = app.client.get(app.url("/v1/models")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(models.status(), StatusCode::OK);
    app.assert_ledger_consistent().await;
}

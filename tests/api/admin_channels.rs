//! `/admin/channels`, `/admin` monitoring, `/metrics` and `/api/admin/channels*`: every page and
//! action, bad input, audit rows, role boundaries, and a distinctive upstream key that must
//! appear in no page, no JSON answer and no log line.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin_console::{access_token, user_with_role};
use crate::console_auth::Browser;
use crate::support::chromium::{Chromium, LayoutNote, backend_name};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{ADMIN_TOKEN, Backend, TestApp, spawn_app, spawn_app_with};

db_tests!(
    channel_pages_create_edit_test_and_manage,
    channel_import_and_fetch_models_in_the_console,
    channel_api_actions_are_audited,
    bad_channel_input_changes_nothing,
    only_admins_reach_channels_monitoring_and_their_api,
    monitoring_shows_the_traffic_and_metrics_need_the_token,
    an_admin_adds_a_channel_and_sees_a_users_call_on_the_monitoring_chart,
);

const MODEL: &str = "gpt-watch";

/// The audit rows with `action`: their details (JSON).
async fn audit_rows(app: &TestApp, action: &str) -> Vec<Value> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT details FROM audit_log WHERE action = $1 ORDER BY id")
        .bind(action)
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    rows.iter().map(|d| serde_json::from_str(d).unwrap()).collect()
}

async fn all_audit_text(app: &TestApp) -> String {
    let rows: Vec<String> = sqlx::query_scalar("SELECT action || ' ' || details FROM audit_log ORDER BY id")
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    rows.join("\n")
}

async fn channel_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM channels").fetch_one(app.db.pool()).await.unwrap()
}

async fn root_browser(app: &TestApp) -> Browser<'_> {
    let mut browser = Browser::new(app);
    browser.log_in_as_root().await;
    browser
}

/// The id in the first `href="/admin/channels/{id}/edit"` after `after` in `page`.
fn channel_id_in(page: &str, name: &str) -> i64 {
    let at = page.find(&format!(">{name}</a>")).unwrap_or_else(|| panic!("{name} is listed: {page}"));
    let start = page[..at].rfind("/admin/channels/").unwrap() + "/admin/channels/".len();
    page[start..].split('/').next().unwrap().parse().unwrap()
}

fn form<'a>(csrf: &'a str, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("csrf", csrf)];
    all.extend_from_slice(fields);
    all
}

async fn channel_pages_create_edit_test_and_manage(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let mut root = root_browser(&app).await;
    let (status, _, page) = root.get("/admin/channels").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"no-channels\""), "an empty state first");

    let csrf = root.csrf("/admin/channels/new").await;
    let base = fake.base_url("one");
    let key = "sk-page-test-key-WXYZ";
    let fields = form(
        &csrf,
        &[
            ("name", "Main OpenAI"),
            ("type", "openai"),
            ("base_url", &base),
            ("key", key),
            ("models", "gpt-watch, gpt-other"),
            ("model_mapping", "gpt-other=gpt-4o"),
            ("groups", "default"),
            ("priority", "5"),
            ("weight", "3"),
            ("enabled", "on"),
        ],
    );
    let (status, location, _) = root.post("/admin/channels/new", &fields).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/channels"));
    let (_, _, page) = root.get("/admin/channels").await;
    assert!(page.contains("Main OpenAI") && page.contains("…WXYZ"), "listed with the key's last 4: {page}");
    assert!(!page.contains(key), "never the key");
    let id = channel_id_in(&page, "Main OpenAI");
    let (status, body) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!((body["priority"].as_i64(), body["weight"].as_i64()), (Some(5), Some(3)), "{body}");
    assert_eq!(body["model_mapping"]["gpt-other"], "gpt-4o");

    // Edit with the key left blank: the key stays.
    let (status, _, page) = root.get(&format!("/admin/channels/{id}/edit")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains(key) && page.contains("…WXYZ"), "the edit form never holds the key");
    let csrf = root.csrf(&format!("/admin/channels/{id}/edit")).await;
    let fields = form(
        &csrf,
        &[
            ("name", "Main OpenAI"),
            ("type", "openai"),
            ("base_url", &base),
            ("key", ""),
            ("models", "gpt-watch"),
            ("groups", "default"),
            ("priority", "7"),
            ("weight", "3"),
            ("enabled", "on"),
        ],
    );
    let (status, _, page) = root.post(&format!("/admin/channels/{id}/edit"), &fields).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Channel saved."));
    let (_, body) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    assert_eq!((body["priority"].as_i64(), body["key_hint"].as_str()), (Some(7), Some("…WXYZ")), "{body}");

    // A test through the console: it passes, with the latency and the reply.
    let (status, _, page) = root.post(&format!("/admin/channels/{id}/test"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"test-results\"") && page.contains("passed"), "{page}");
    assert!(fake.received().last().unwrap().headers["authorization"].to_str().unwrap().ends_with(key));
    let (status, _, page) = root.post("/admin/channels/test", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(" ms</span>"), "test all lists latencies: {page}");
    // A failing test records the last error (never the key, which this fake quotes).
    fake.set(Behavior::Status(400));
    let (_, _, page) = root.post(&format!("/admin/channels/{id}/test"), &[("csrf", &csrf)]).await;
    assert!(page.contains("failed") && page.contains("HTTP 400"), "{page}");
    assert!(page.contains("[redacted]"), "{page}");
    assert!(!page.contains(key), "an upstream quoting the key is redacted");
    fake.set(Behavior::default());

    // Disable, enable (htmx answers the section), copy, delete.
    let hx =
        |path: &str| app.client.post(app.url(path)).header("HX-Request", "true").header("x-csrf-token", csrf.clone());
    let (status, _, fragment) = root.send(hx(&format!("/admin/channels/{id}/disable"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(fragment.starts_with("<section") && fragment.contains("data-status=\"manually_disabled\""), "{fragment}");
    let (_, body) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    assert_eq!(body["status"], "manually_disabled");
    let (_, _, page) = root.post(&format!("/admin/channels/{id}/enable"), &[("csrf", &csrf)]).await;
    assert!(page.contains("Channel Main OpenAI enabled."), "{page}");
    let (_, _, page) = root.post(&format!("/admin/channels/{id}/copy"), &[("csrf", &csrf)]).await;
    assert!(page.contains("Main OpenAI (copy)"), "{page}");
    let copy = channel_id_in(&page, "Main OpenAI (copy)");
    let (_, body) = app.admin("GET", &format!("/api/admin/channels/{copy}"), None).await;
    assert_eq!((body["status"].as_str(), body["key_hint"].as_str()), (Some("manually_disabled"), Some("…WXYZ")));
    let (_, _, page) = root.post(&format!("/admin/channels/{copy}/delete"), &[("csrf", &csrf)]).await;
    assert!(page.contains("Channel deleted.") && !page.contains("Main OpenAI (copy)"), "{page}");
    let (status, _, _) = root.post("/admin/channels/999999/delete", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = root.get("/admin/channels/nope/edit").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for action in ["channel.create", "channel.update", "channel.test", "channel.test_all", "channel.disable"] {
        assert!(!audit_rows(&app, action).await.is_empty(), "{action} audited");
    }
    for action in ["channel.enable", "channel.copy", "channel.delete"] {
        assert!(!audit_rows(&app, action).await.is_empty(), "{action} audited");
    }
    let audit = all_audit_text(&app).await;
    assert!(!audit.contains(key) && !audit.contains("WXYZ"), "no key in the audit log: {audit}");
}

async fn channel_import_and_fetch_models_in_the_console(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let mut root = root_browser(&app).await;
    let base = fake.base_url("imp");
    let csrf = root.csrf("/admin/channels/import").await;
    let keys = "sk-import-one-AAAA\nsk-import-two-BBBB\n\nsk-import-three-CCCC\n";
    let fields = form(
        &csrf,
        &[
            ("name", "Pool"),
            ("type", "openai"),
            ("base_url", &base),
            ("models", MODEL),
            ("keys", keys),
            ("mode", "separate"),
            ("enabled", "on"),
        ],
    );
    let (status, location, page) = root.post("/admin/channels/import", &fields).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/channels"), "{page}");
    let (_, _, page) = root.get("/admin/channels").await;
    for (n, hint) in [(1, "…AAAA"), (2, "…BBBB"), (3, "…CCCC")] {
        assert!(page.contains(&format!(">Pool #{n}</a>")) && page.contains(hint), "{page}");
    }
    let fields = form(
        &csrf,
        &[
            ("name", "Rotating"),
            ("type", "openai"),
            ("base_url", &base),
            ("models", MODEL),
            ("keys", keys),
            ("mode", "rotation"),
            ("enabled", "on"),
        ],
    );
    let (status, _, _) = root.post("/admin/channels/import", &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = root.get("/admin/channels").await;
    assert!(page.contains(">Rotating</a>") && page.contains("× 3"), "one channel with 3 keys: {page}");
    assert_eq!(channel_count(&app).await, 4);
    // No keys: refused, nothing created.
    let fields = form(
        &csrf,
        &[("name", "Empty"), ("type", "openai"), ("base_url", &base), ("models", MODEL), ("keys", "\n \n")],
    );
    let (status, _, page) = root.post("/admin/channels/import", &fields).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("data-testid=\"form-error\""), "{page}");
    assert_eq!(channel_count(&app).await, 4);
    assert_eq!(audit_rows(&app, "channel.import").await.len(), 2);

    // Fetch models: the upstream's list lands in the form, unsaved.
    let id = channel_id_in(&page_of(&mut root).await, "Rotating");
    let edit = format!("/admin/channels/{id}/edit");
    let csrf = root.csrf(&edit).await;
    let fields = form(
        &csrf,
        &[
            ("name", "Rotating"),
            ("type", "openai"),
            ("base_url", &base),
            ("models", MODEL),
            ("groups", "default"),
            ("enabled", "on"),
        ],
    );
    let (status, _, page) = root.post(&format!("/admin/channels/{id}/models"), &fields).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Fetched 3 models") && page.contains("gpt-4o\ngpt-4o-mini\ntext-embedding-3-small"),
        "{page}"
    );
    assert!(fake.received().iter().any(|r| r.path == "/imp/v1/models"));
    let (_, body) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    assert_eq!(body["models"], json!([MODEL]), "not saved until the form is");
    // An upstream refusing the list: a message, nothing changes.
    fake.set(Behavior::Status(401));
    let (status, _, page) = root.post(&format!("/admin/channels/{id}/models"), &fields).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("HTTP 401") && !page.contains("sk-import"), "{page}");
}

async fn page_of(browser: &mut Browser<'_>) -> String {
    browser.get("/admin/channels").await.2
}

async fn channel_api_actions_are_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let key = "sk-api-audit-secret-QRST";
    let id = app
        .add_channel(
            json!({ "name": "api", "type": "openai", "base_url": fake.base_url("api"), "key": key, "models": [MODEL] }),
        )
        .await;
    let (status, body) = app.admin("POST", &format!("/api/admin/channels/{id}/disable"), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("manually_disabled")), "{body}");
    let (status, body) = app.admin("POST", &format!("/api/admin/channels/{id}/enable"), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("enabled")), "{body}");
    let (status, body) = app.admin("PATCH", &format!("/api/admin/channels/{id}"), Some(json!({ "weight": 9 }))).await;
    assert_eq!((status, body["weight"].as_i64()), (200, Some(9)), "{body}");
    let (status, body) =
        app.admin("PATCH", &format!("/api/admin/channels/{id}"), Some(json!({ "key": "sk-rotated-key-LMNO" }))).await;
    assert_eq!((status, body["key_hint"].as_str()), (200, Some("…LMNO")), "{body}");
    let (status, body) = app.admin("PATCH", &format!("/api/admin/channels/{id}"), Some(json!({ "key": " " }))).await;
    assert_eq!((status, body["key_hint"].as_str()), (200, Some("…LMNO")), "a blank key keeps the key: {body}");
    let (status, body) = app.admin("POST", &format!("/api/admin/channels/{id}/test"), None).await;
    assert_eq!((status, body["ok"].as_bool()), (200, Some(true)), "{body}");
    assert!(body["sample"].is_string(), "a sample reply: {body}");
    let (status, body) = app.admin("POST", "/api/admin/channels/test", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["id"].as_i64(), Some(id), "{body}");
    let (status, body) = app.admin("POST", &format!("/api/admin/channels/{id}/copy"), None).await;
    assert_eq!((status, body["status"].as_str()), (201, Some("manually_disabled")), "{body}");
    let copy = body["id"].as_i64().unwrap();
    let (status, body) =
        app.admin("POST", &format!("/api/admin/channels/{id}/models"), Some(json!({ "save": true }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["models"], json!(["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]));
    let (_, body) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    assert_eq!(body["models"], json!(["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]), "saved");
    let import = json!({ "channel": { "name": "bulk", "type": "openai", "base_url": fake.base_url("b"), "models": [MODEL] },
        "keys": "sk-bulk-1-1111\nsk-bulk-2-2222", "mode": "separate" });
    let (status, body) = app.admin("POST", "/api/admin/channels/import", Some(import)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["name"], "bulk #2");
    let (status, _) = app.admin("DELETE", &format!("/api/admin/channels/{copy}"), None).await;
    assert_eq!(status, 204);

    for action in [
        "channel.create",
        "channel.disable",
        "channel.enable",
        "channel.update",
        "channel.test",
        "channel.test_all",
        "channel.copy",
        "channel.import",
        "channel.delete",
    ] {
        assert!(!audit_rows(&app, action).await.is_empty(), "{action} audited");
    }
    let updates = audit_rows(&app, "channel.update").await;
    assert!(updates.iter().any(|d| d["after"]["weight"] == 9), "{updates:?}");
    assert!(updates.iter().any(|d| d["after"]["key"] == "[redacted]"), "a key change is noted, not shown: {updates:?}");
    let audit = all_audit_text(&app).await;
    for secret in [key, "sk-rotated-key-LMNO", "LMNO", "sk-bulk-1-1111", "QRST"] {
        assert!(!audit.contains(secret), "{secret} in the audit log: {audit}");
    }
}

async fn bad_channel_input_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut root = root_browser(&app).await;
    let csrf = root.csrf("/admin/channels/new").await;
    let cases: [&[(&str, &str)]; 5] = [
        &[("name", "x"), ("type", "openai"), ("models", MODEL)],
        &[("name", "x"), ("type", "nonsense"), ("key", "k"), ("models", MODEL)],
        &[("name", "x"), ("type", "openai"), ("key", "k"), ("models", MODEL), ("priority", "high")],
        &[("name", "x"), ("type", "openai-compatible"), ("key", "k"), ("models", MODEL)],
        &[("name", "x"), ("type", "bedrock"), ("key", "A:B"), ("models", MODEL), ("region", "Not A Region")],
    ];
    for fields in cases {
        let (status, _, page) = root.post("/admin/channels/new", &form(&csrf, fields)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert!(page.contains("data-testid=\"form-error\""), "{fields:?}: {page}");
        assert!(!page.contains("value=\"k\"") && !page.contains(">A:B<"), "the key is not sent back");
    }
    assert_eq!(channel_count(&app).await, 0);
    assert!(audit_rows(&app, "channel.create").await.is_empty());

    let (status, body) =
        app.admin("POST", "/api/admin/channels/import", Some(json!({ "channel": {}, "keys": "" }))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, _) = app
        .admin(
            "POST",
            "/api/admin/channels/import",
            Some(json!({ "channel": { "name": "n" }, "keys": "k", "mode": "zigzag" })),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app.admin("POST", "/api/admin/channels/42/enable", None).await;
    assert_eq!(status, 404);
    let (status, _) = app.admin("POST", "/api/admin/channels/abc/copy", None).await;
    assert_eq!(status, 404);
    // Fetching models needs an OpenAI-compatible upstream.
    let id = app
        .add_channel(json!({ "name": "claude", "type": "anthropic", "base_url": "http://127.0.0.1:9/v1", "key": "k", "models": ["c"] }))
        .await;
    let (status, body) = app.admin("POST", &format!("/api/admin/channels/{id}/models"), None).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = app.admin("POST", &format!("/api/admin/channels/{id}/models"), Some(json!({ "bogus": 1 }))).await;
    assert_eq!(status, 400);
    assert_eq!(channel_count(&app).await, 1);
}

/// Every admin page and action of this slice, and every API endpoint, refused to users and
/// resellers.
async fn only_admins_reach_channels_monitoring_and_their_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let id = app
        .add_channel(json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k-0000", "models": [MODEL] }))
        .await;
    let pages =
        ["/admin", "/admin/monitor?range=day", "/admin/channels", "/admin/channels/new", "/admin/channels/import"];
    let edit = format!("/admin/channels/{id}/edit");
    let posts: Vec<String> = ["test", "enable", "disable", "copy", "delete", "edit", "models"]
        .iter()
        .map(|a| format!("/admin/channels/{id}/{a}"))
        .chain(["/admin/channels/new".to_string(), "/admin/channels/import".into(), "/admin/channels/test".into()])
        .collect();
    let api: Vec<(&str, String)> = vec![
        ("GET", "/api/admin/channels".into()),
        ("POST", "/api/admin/channels".into()),
        ("GET", format!("/api/admin/channels/{id}")),
        ("PATCH", format!("/api/admin/channels/{id}")),
        ("DELETE", format!("/api/admin/channels/{id}")),
        ("POST", format!("/api/admin/channels/{id}/test")),
        ("POST", "/api/admin/channels/test".into()),
        ("POST", "/api/admin/channels/import".into()),
        ("POST", format!("/api/admin/channels/{id}/enable")),
        ("POST", format!("/api/admin/channels/{id}/disable")),
        ("POST", format!("/api/admin/channels/{id}/copy")),
        ("POST", format!("/api/admin/channels/{id}/models")),
    ];
    for role in ["user", "reseller"] {
        let email = user_with_role(&app, role, role).await;
        let mut browser = Browser::new(&app);
        browser.log_in(&email, "a fine password").await;
        for page in pages.iter().copied().chain([edit.as_str()]) {
            let (status, _, _) = browser.get(page).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{role} GET {page}");
        }
        let csrf = browser.csrf("/console/profile").await;
        for path in &posts {
            let (status, _, _) = browser
                .post(path, &[("csrf", &csrf), ("name", "x"), ("type", "openai"), ("key", "k"), ("keys", "k")])
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{role} POST {path}");
        }
        let token = access_token(&mut browser).await;
        for (method, path) in &api {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let response = app
                .client
                .request(method.clone(), app.url(path))
                .bearer_auth(&token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role} {method} {path}");
        }
    }
    assert_eq!(channel_count(&app).await, 1, "nothing changed");
    let (_, body) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    assert_eq!(body["status"], "enabled");
    let audited: Vec<String> =
        all_audit_text(&app).await.lines().filter(|l| l.starts_with("channel.")).map(str::to_string).collect();
    assert_eq!(audited.len(), 1, "only the root token's create: {audited:?}");
}

async fn monitoring_shows_the_traffic_and_metrics_need_the_token(backend: Backend) {
    let token = "metrics-token-0123456789abcdef-0123456789";
    let app = spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_METRICS_TOKEN".into(), token.into());
        },
        |r| r,
    )
    .await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let ok = app
        .add_channel(json!({ "name": "watched", "type": "openai", "base_url": fake.base_url("w"), "key": "k-1234", "models": [MODEL] }))
        .await;
    app.set_price(MODEL, json!({ "input": "2.50", "output": "10.00" })).await;
    let (_, key) = app.user_with_key("10").await;
    for _ in 0..3 {
        let response = app
            .v1(
                &key,
                "/v1/chat/completions",
                &json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }] }),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    app.wait_for_logs(3).await;
    app.settled().await;

    let mut root = root_browser(&app).await;
    let (status, _, page) = root.get("/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"requests\">3<"), "three requests in the last hour: {page}");
    assert!(page.contains("data-requests=\"3\""), "in one minute's column of the chart");
    assert!(
        page.contains("data-label-name=\"gpt-watch\"") && page.contains("data-label-name=\"watched\""),
        "per model and channel"
    );
    assert!(page.contains("data-testid=\"error-rate\">0.0%<"), "{page}");
    assert!(page.contains(&format!("data-channel=\"{ok}\" data-status=\"enabled\"")), "channel health");
    for range in ["day", "week", "nonsense"] {
        let request = app.client.get(app.url(&format!("/admin/monitor?range={range}"))).header("HX-Request", "true");
        let (status, _, fragment) = root.send(request).await;
        assert_eq!(status, StatusCode::OK);
        assert!(fragment.starts_with("<div id=\"monitor\""), "a fragment");
        assert!(fragment.contains("data-testid=\"requests\">3<"), "{range}");
    }
    let (_, _, page) = root.get("/admin/channels").await;
    assert!(page.contains("0.00024"), "the channel's used amount (3 × 12 in + 5 out at 2.50/10.00): {page}");

    // A request the upstream refuses counts as an error; a refused key disables the channel,
    // which the health list and the channel list show with the reason.
    fake.set(Behavior::Status(400));
    let chat = json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat).await.status(), 400);
    fake.set(Behavior::Status(401));
    app.v1(&key, "/v1/chat/completions", &chat).await;
    app.wait_for_logs(5).await;
    app.settled().await;
    let mut disabled = false;
    for _ in 0..100 {
        let (_, body) = app.admin("GET", &format!("/api/admin/channels/{ok}"), None).await;
        if body["status"] == "auto_disabled" {
            disabled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(disabled, "the refused key disabled the channel");
    let (_, _, page) = root.get("/admin").await;
    assert!(page.contains("data-testid=\"error-rate\">40.0%<"), "2 of 5 failed: {page}");
    assert!(page.contains(&format!("data-channel=\"{ok}\" data-status=\"auto_disabled\"")), "{page}");
    assert!(page.contains("upstream rejected the key (HTTP 401)"), "with the reason");
    let (_, _, page) = root.get("/admin/channels").await;
    assert!(page.contains("auto-disabled") && page.contains("upstream rejected the key (HTTP 401)"), "{page}");
    fake.set(Behavior::default());

    // /metrics: 401 without the token, the figures with it.
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app.client.get(app.url("/metrics")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app.client.get(app.url("/metrics")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains("burncloud_requests{window=\"1h\"} 5"), "{text}");
    assert!(text.contains("burncloud_errors{window=\"1h\"} 2"), "{text}");
    assert!(text.contains(&format!("burncloud_requests{{window=\"1h\",model=\"{MODEL}\"}} 5")), "{text}");
    assert!(text.contains(&format!("burncloud_channel_up{{channel_id=\"{ok}\",channel=\"watched\"")), "{text}");
    assert!(text.contains("burncloud_latency_ms{window=\"1h\",quantile=\"0.95\"}"), "{text}");
    assert!(!text.contains("k-1234"));
    // The text format's rule: a family's lines come together, after its HELP and TYPE.
    let mut seen: Vec<&str> = Vec::new();
    for line in text.lines() {
        let name = match line.strip_prefix("# TYPE ").or(line.strip_prefix("# HELP ")) {
            Some(rest) => rest.split(' ').next().unwrap(),
            None => line.split(['{', ' ']).next().unwrap(),
        };
        if seen.last() != Some(&name) {
            assert!(!seen.contains(&name), "{name} comes back after other families:\n{text}");
            seen.push(name);
        }
    }
    assert!(text.contains("# TYPE burncloud_tokens gauge"), "{text}");

    // Without the setting the endpoint does not exist.
    let plain = spawn_app(backend).await;
    let response = plain.client.get(plain.url("/metrics")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// A log sink for one test: everything the app logs on the test's thread.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `a_channel_key_appears_nowhere` on a single-threaded runtime with a subscriber
/// capturing every log line of the app (all its tasks run on this thread), at every level.
fn with_captured_logs(backend: Backend) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = format!("sk-SEEKRIT-{}", burncloud::domain::token::random_alphanumeric(24));
    tracing::subscriber::with_default(subscriber, || runtime.block_on(a_channel_key_appears_nowhere(backend, &key)));
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.lines().count() > 100, "the app's logs were captured ({} lines)", logs.lines().count());
    // The refused call disables its key (or, when it was the channel's last, the channel) in the
    // background: that task's log is captured too.
    assert!(
        logs.contains("upstream key disabled automatically") || logs.contains("channel disabled automatically"),
        "background tasks' logs too"
    );
    let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(&key) || l.contains("SEEKRIT")).collect();
    assert!(leaks.is_empty(), "the channel key in {} log lines: {:?}", leaks.len(), &leaks[..leaks.len().min(5)]);
}

#[test]
fn a_channel_key_appears_in_no_page_answer_or_log_sqlite() {
    with_captured_logs(Backend::Sqlite);
}

#[test]
fn a_channel_key_appears_in_no_page_answer_or_log_postgres() {
    with_captured_logs(Backend::Postgres);
}

/// Seeds the key through every way in (API, console form, import, rotation), uses it (calls,
/// tests, a refused key, model list), then reads every admin and console page and every
/// management answer: none holds it.
async fn a_channel_key_appears_nowhere(backend: Backend, key: &str) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let answers: std::cell::RefCell<Vec<(String, String)>> = std::cell::RefCell::new(Vec::new());
    let api = async |method: &str, path: &str, body: Option<Value>| -> Value {
        let (status, body) = app.admin(method, path, body).await;
        answers.borrow_mut().push((format!("{method} {path} → {status}"), body.to_string()));
        body
    };
    let created = api(
        "POST",
        "/api/admin/channels",
        Some(json!({ "name": "secret", "type": "openai", "base_url": fake.base_url("s"), "key": key, "models": [MODEL] })),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let import = json!({ "channel": { "name": "bulk", "type": "openai", "base_url": fake.base_url("s"), "models": [MODEL] },
        "keys": format!("{key}\nsk-other-0000"), "mode": "rotation" });
    api("POST", "/api/admin/channels/import", Some(import.clone())).await;
    let mut separate = import;
    separate["mode"] = json!("separate");
    api("POST", "/api/admin/channels/import", Some(separate)).await;
    for (method, path, body) in [
        ("GET", "/api/admin/channels".to_string(), None),
        ("GET", format!("/api/admin/channels/{id}"), None),
        ("PATCH", format!("/api/admin/channels/{id}"), Some(json!({ "key": format!("{key}\n{key}-2"), "weight": 2 }))),
        ("POST", format!("/api/admin/channels/{id}/test"), None),
        ("POST", "/api/admin/channels/test".to_string(), None),
        ("POST", format!("/api/admin/channels/{id}/copy"), None),
        ("POST", format!("/api/admin/channels/{id}/models"), Some(json!({ "save": false }))),
        ("POST", format!("/api/admin/channels/{id}/disable"), None),
        ("POST", format!("/api/admin/channels/{id}/enable"), None),
    ] {
        api(method, &path, body).await;
    }
    // Each key on its own: listed, added to, probed, disabled and enabled, by fingerprint.
    let listed = api("GET", &format!("/api/admin/channels/{id}/keys"), None).await;
    let fingerprint = listed["data"][0]["fingerprint"].as_str().unwrap().to_string();
    api("POST", &format!("/api/admin/channels/{id}/keys"), Some(json!({ "keys": format!("{key}-3\n{key}") }))).await;
    for action in ["test", "disable", "enable"] {
        api("POST", &format!("/api/admin/channels/{id}/keys/{fingerprint}/{action}"), None).await;
    }

    // The console's form too, and calls through the gateway (served, then the key refused).
    let mut root = root_browser(&app).await;
    let csrf = root.csrf("/admin/channels/new").await;
    let base = fake.base_url("s");
    let fields = form(
        &csrf,
        &[
            ("name", "console"),
            ("type", "openai"),
            ("base_url", &base),
            ("key", key),
            ("models", MODEL),
            ("enabled", "on"),
        ],
    );
    root.post("/admin/channels/new", &fields).await;
    app.set_price(MODEL, json!({ "input": "1", "output": "1" })).await;
    let (_, user_key) = app.user_with_key("10").await;
    let chat = json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }] });
    let response = app.v1(&user_key, "/v1/chat/completions", &chat).await;
    let text = response.text().await.unwrap();
    answers.borrow_mut().push(("gateway ok".into(), text));
    fake.set(Behavior::Status(401));
    let response = app.v1(&user_key, "/v1/chat/completions", &chat).await;
    let text = response.text().await.unwrap();
    answers.borrow_mut().push(("gateway refused".into(), text));
    fake.set(Behavior::Status(400));
    let response = app.v1(&user_key, "/v1/chat/completions", &chat).await;
    let text = response.text().await.unwrap();
    answers.borrow_mut().push(("gateway rejected".into(), text));
    api("POST", "/api/admin/channels/test", None).await;
    app.settled().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    api("GET", "/api/admin/channels", None).await;

    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM channels").fetch_all(app.db.pool()).await.unwrap();
    let mut pages: Vec<String> = [
        "/admin",
        "/admin/monitor?range=day",
        "/admin/channels",
        "/admin/channels/new",
        "/admin/channels/import",
        "/admin/users",
        "/admin/groups",
        "/admin/pricing",
        "/admin/codes",
        "/admin/settings",
        "/admin/logs",
        "/admin/audit",
        "/console",
        "/console/keys",
        "/console/logs",
        "/console/billing",
        "/console/profile",
        "/console/invitations",
        "/console/stats",
        "/pricing",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    pages.extend(ids.iter().map(|id| format!("/admin/channels/{id}/edit")));
    pages.extend(ids.iter().map(|id| format!("/admin/channels/{id}/keys")));
    let mut seen = 0;
    for page in &pages {
        let (status, _, body) = root.get(page).await;
        if status == StatusCode::OK {
            seen += 1;
        }
        answers.borrow_mut().push((format!("page {page} → {status}"), body));
    }
    assert!(seen >= 15, "the pages answered ({seen})");
    for action in ["test", "disable", "enable", "copy"] {
        let (_, _, body) = root.post(&format!("/admin/channels/{id}/{action}"), &[("csrf", &csrf)]).await;
        answers.borrow_mut().push((format!("console {action}"), body));
    }
    let (_, _, body) = root.post(&format!("/admin/channels/{id}/models"), &fields).await;
    answers.borrow_mut().push(("console fetch models".into(), body));
    for action in ["test", "disable", "enable"] {
        let path = format!("/admin/channels/{id}/keys/{fingerprint}/{action}");
        let (_, _, body) = root.post(&path, &[("csrf", &csrf)]).await;
        answers.borrow_mut().push((format!("console key {action}"), body));
    }
    let added = format!("{key}-4");
    let (_, _, body) = root.post(&format!("/admin/channels/{id}/keys"), &[("csrf", &csrf), ("keys", &added)]).await;
    answers.borrow_mut().push(("console add keys".into(), body));
    let (_, _, body) = root.post("/admin/channels/test", &[("csrf", &csrf)]).await;
    answers.borrow_mut().push(("console test all".into(), body));
    let text = all_audit_text(&app).await;
    answers.borrow_mut().push(("audit log".into(), text));

    let answers = answers.into_inner();
    for (what, text) in &answers {
        assert!(!text.contains(key) && !text.contains("SEEKRIT"), "the key in {what}: {text}");
    }
    assert!(answers.len() > 40);
}

/// Browser: the root admin logs in, adds a channel to a fake upstream on /admin/channels/new and
/// its price on /admin/pricing, a user calls the model, and the call shows on /admin's requests
/// chart and in /admin/logs; screenshots of /admin and /admin/channels at desktop and phone
/// widths.
async fn an_admin_adds_a_channel_and_sees_a_users_call_on_the_monitoring_chart(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let chrome = Chromium::start(&app, "admin-channels", backend).await;
    chrome.goto("/login").await;
    chrome.fill("email", crate::support::helpers::ADMIN_EMAIL).await;
    chrome.fill("password", crate::support::helpers::ADMIN_PASSWORD).await;
    chrome.click_and_wait("form[action='/login'] button[type=submit]").await;
    chrome.goto("/admin/channels").await;
    chrome.wait_for_text("No channels yet.").await;
    let mut notes: Vec<LayoutNote> = Vec::new();
    notes.extend(chrome.screenshot("admin-channels-empty").await);
    chrome.click_and_wait("[data-testid=add-channel]").await;
    chrome.wait_for_path("/admin/channels/new").await;
    chrome.fill("name", "Browser upstream").await;
    chrome.fill("base_url", &fake.base_url("br")).await;
    chrome.fill("models", MODEL).await;
    chrome.fill("key", "sk-browser-upstream-key-9876").await;
    notes.extend(chrome.screenshot("admin-channel-form").await);
    chrome.click_and_wait("form#channel-form button[type=submit]").await;
    chrome.wait_for_path("/admin/channels").await;
    chrome.wait_for_text("Browser upstream").await;
    let text = chrome.visible_text().await;
    assert!(text.contains("…9876") && !text.contains("sk-browser-upstream-key"), "the key masked: {text}");
    chrome.click("[data-testid=test-channel]").await;
    chrome.wait_for_text("passed").await;

    chrome.goto("/admin/pricing").await;
    chrome.fill("model", MODEL).await;
    chrome.fill("input", "2.50").await;
    chrome.fill("output", "10.00").await;
    chrome.click_and_wait("[data-testid=price-form] button[type=submit]").await;
    chrome.wait_for_text(MODEL).await;
    let (_, key) = app.user_with_key("1").await;
    let chat =
        json!({ "model": MODEL, "messages": [{ "role": "user", "content": "Hello from the admin's browser test" }] });
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat).await.status(), 200);
    app.wait_for_logs(1).await;
    app.settled().await;

    chrome.goto("/admin").await;
    chrome.wait_for_text("Channel health").await;
    assert_eq!(chrome.text("[data-testid=requests]").await, "1");
    let bars = chrome
        .script("return document.querySelectorAll('[data-testid=requests-chart] g[data-requests=\"1\"]').length;")
        .await;
    assert_eq!(bars, json!(1), "the call is one column of the requests chart");
    let models = chrome.text("[data-testid=by-model]").await;
    assert!(models.contains(MODEL), "{models}");
    notes.extend(chrome.screenshot("admin-overview").await);
    chrome.click("a[href='/admin?range=week']").await;
    chrome.wait_for_path("/admin?range=week").await;
    assert_eq!(chrome.text("[data-testid=requests]").await, "1");
    chrome.goto("/admin/logs").await;
    chrome.wait_for_text(MODEL).await;
    let row = chrome.text("table tbody tr").await;
    assert!(row.contains("0.00008") && row.contains("200"), "the user's call in the admin's log: {row}");
    chrome.goto("/admin/channels").await;
    chrome.wait_for_text("Browser upstream").await;
    notes.extend(chrome.screenshot("admin-channels").await);
    chrome.click("details.more > summary").await;
    chrome.wait_for_text("Copy").await;
    notes.extend(chrome.screenshot("admin-channels-menu").await);
    chrome.quit().await;

    let report: String = notes.iter().map(|LayoutNote { file, note }| format!("layout: {file}: {note}\n")).collect();
    let path =
        crate::support::chromium::artifacts_dir().join(format!("admin-channels-{}-layout.txt", backend_name(backend)));
    std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    assert!(report.is_empty(), "{report}");
}

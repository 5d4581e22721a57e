//! The model capabilities table (issue 14): `/api/admin/capabilities*`, its section on
//! `/admin/pricing`, and `/pricing` — the shipped default until an operator sets a row, the row
//! at once in the gateway's routing snapshot, the default again after a reset; bad input and
//! other roles change nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::admin_console::{access_token, user_with_role};
use crate::console_auth::Browser;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    api_round_trip_switches_between_custom_and_default,
    bad_input_is_refused_and_changes_nothing,
    users_and_resellers_cannot_touch_capabilities,
    console_section_edits_with_csrf,
    public_pricing_shows_capabilities,
);

/// The listed (effective) capabilities of `model`.
async fn listed(app: &TestApp, model: &str) -> Value {
    let (status, list) = app.admin("GET", "/api/admin/capabilities", None).await;
    assert_eq!(status, 200, "{list}");
    list["data"].as_array().unwrap().iter().find(|r| r["model"] == model).cloned().unwrap_or(Value::Null)
}

async fn audit_count(app: &TestApp, like: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM audit_log WHERE action LIKE $1")
        .bind(like)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0)
}

async fn stored_rows(app: &TestApp) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM model_capabilities").fetch_one(app.db.pool()).await.unwrap().get(0)
}

async fn api_round_trip_switches_between_custom_and_default(backend: Backend) {
    let app = spawn_app(backend).await;
    let shipped = listed(&app, "gpt-4o").await;
    assert_eq!(
        (&shipped["source"], &shipped["max_output_tokens"], &shipped["context_window"], &shipped["tools"]),
        (&json!("default"), &json!(16_384), &json!(128_000), &json!(true)),
        "{shipped}"
    );
    assert_eq!(shipped["priced"], false, "no prices yet");

    let body = json!({ "max_output_tokens": 4096, "context_window": 8192, "tools": false, "vision": null });
    let (status, set) = app.admin("PUT", "/api/admin/capabilities/gpt-4o", Some(body)).await;
    assert_eq!(status, 200, "{set}");
    let expected = json!({ "model": "gpt-4o", "max_output_tokens": 4096, "context_window": 8192, "reasoning": null,
        "tools": false, "vision": null, "audio": null, "source": "custom", "priced": false });
    assert_eq!(set, expected, "the row replaces the default as a whole");
    assert_eq!(listed(&app, "gpt-4o").await, expected);
    // The gateway's snapshot has it at once (no restart, no periodic reload).
    let live = app.state.routing().current().capabilities("gpt-4o");
    assert_eq!((live.max_output_tokens, live.tools, live.vision), (Some(4096), Some(false), None));
    assert_eq!(live.clamp_output(10_000), 4096);
    let audit: String = sqlx::query("SELECT details FROM audit_log WHERE action = 'capabilities.set'")
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    let audit: Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(
        (&audit["before"]["max_output_tokens"], &audit["after"]["max_output_tokens"]),
        (&json!(16_384), &json!(4096))
    );

    // A dated snapshot that is priced takes its family's default.
    app.set_price("gpt-4o-2024-08-06", json!({ "input": "2.5", "output": "10" })).await;
    let dated = listed(&app, "gpt-4o-2024-08-06").await;
    assert_eq!(
        (&dated["source"], &dated["priced"], &dated["max_output_tokens"]),
        (&json!("default"), &json!(true), &json!(16_384))
    );

    // A model without a shipped default, priced: custom, then nothing known after the reset.
    app.set_price("house-model", json!({ "input": "1", "output": "2" })).await;
    assert_eq!(listed(&app, "house-model").await["source"], "none");
    let (status, set) =
        app.admin("PUT", "/api/admin/capabilities/house-model", Some(json!({ "reasoning": true }))).await;
    assert_eq!(
        (status, &set["source"], &set["priced"], &set["reasoning"]),
        (200, &json!("custom"), &json!(true), &json!(true))
    );

    for model in ["gpt-4o", "house-model"] {
        let (status, body) = app.admin("DELETE", &format!("/api/admin/capabilities/{model}"), None).await;
        assert_eq!(status, 204, "{body}");
    }
    assert_eq!(listed(&app, "gpt-4o").await, shipped, "back to the shipped default");
    assert_eq!(listed(&app, "house-model").await["source"], "none");
    assert_eq!(app.state.routing().current().capabilities("gpt-4o").max_output_tokens, Some(16_384));
    let (status, body) = app.admin("DELETE", "/api/admin/capabilities/gpt-4o", None).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")), "nothing left to reset");
    assert_eq!(audit_count(&app, "capabilities.reset").await, 2);
    assert_eq!(stored_rows(&app).await, 0);
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, _) =
        app.admin("PUT", "/api/admin/capabilities/gpt-4o", Some(json!({ "max_output_tokens": 1000 }))).await;
    assert_eq!(status, 200);
    let before = listed(&app, "gpt-4o").await;
    let audits = audit_count(&app, "capabilities.%").await;
    for (body, field) in [
        (json!({ "max_output_tokens": -1 }), "max_output_tokens"),
        (json!({ "max_output_tokens": 0 }), "max_output_tokens"),
        (json!({ "context_window": 10_000_001 }), "context_window"),
        (json!({ "context_window": 9_223_372_036_854_775_807_i64 }), "context_window"),
        (json!({ "context_window": 1e30 }), "context_window"),
        (json!({ "max_output_tokens": 9000, "context_window": 8192 }), "max_output_tokens"),
        (json!({ "max_output_tokens": "8192" }), "max_output_tokens"),
        (json!({ "max_output_tokens": 1.5 }), "max_output_tokens"),
        (json!({ "tools": "yes" }), "tools"),
        (json!({ "audio": 1 }), "audio"),
        (json!({ "reasoning": [] }), "reasoning"),
        (json!({ "temperature": 1 }), "temperature"),
        (json!([1, 2]), "the body"),
    ] {
        let (status, answer) = app.admin("PUT", "/api/admin/capabilities/gpt-4o", Some(body.clone())).await;
        assert_eq!((status, &answer["error"]["code"]), (400, &json!("invalid_request")), "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body}: the error names {field}: {message}");
    }
    // Not JSON at all, and a model name longer than prices allow.
    let response = app
        .client
        .put(app.url("/api/admin/capabilities/gpt-4o"))
        .bearer_auth(crate::support::helpers::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let long = "m".repeat(201);
    let (status, answer) =
        app.admin("PUT", &format!("/api/admin/capabilities/{long}"), Some(json!({ "tools": true }))).await;
    assert_eq!((status, answer["error"]["message"].as_str().map(|m| m.starts_with("model"))), (400, Some(true)));

    assert_eq!(listed(&app, "gpt-4o").await, before, "refused input changed nothing");
    assert_eq!(app.state.routing().current().capabilities("gpt-4o").max_output_tokens, Some(1000));
    assert_eq!(audit_count(&app, "capabilities.%").await, audits, "and wrote no audit row");
    assert_eq!(stored_rows(&app).await, 1);
}

/// A management-API call with `token`.
async fn with_token(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn users_and_resellers_cannot_touch_capabilities(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, _) = app.admin("PUT", "/api/admin/capabilities/gpt-4o", Some(json!({ "tools": true }))).await;
    assert_eq!(status, 200);
    let before = listed(&app, "gpt-4o").await;
    let audits = audit_count(&app, "capabilities.%").await;
    for role in ["user", "reseller"] {
        let email = user_with_role(&app, &format!("caps-{role}"), role).await;
        let mut browser = Browser::new(&app);
        browser.log_in(&email, "a fine password").await;
        let token = access_token(&mut browser).await;
        for (method, path, body) in [
            ("GET", "/api/admin/capabilities", None),
            ("PUT", "/api/admin/capabilities/gpt-4o", Some(json!({ "max_output_tokens": 1 }))),
            ("PUT", "/api/admin/capabilities/new-model", Some(json!({ "tools": false }))),
            ("DELETE", "/api/admin/capabilities/gpt-4o", None),
        ] {
            let (status, answer) = with_token(&app, &token, method, path, body).await;
            assert_eq!((status, &answer["error"]["code"]), (403, &json!("forbidden")), "{role} {method} {path}");
        }
        assert_eq!(browser.get("/admin/pricing/capabilities/row?model=gpt-4o").await.0, StatusCode::FORBIDDEN);
        let csrf = browser.csrf("/console/profile").await;
        let form = [("csrf", csrf.as_str()), ("model", "gpt-4o"), ("max_output_tokens", "1")];
        assert_eq!(browser.post("/admin/pricing/capabilities", &form).await.0, StatusCode::FORBIDDEN, "{role}");
        let (status, _, _) = browser.post("/admin/pricing/capabilities/reset", &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
    assert_eq!(listed(&app, "gpt-4o").await, before, "nothing changed");
    assert_eq!(stored_rows(&app).await, 1);
    assert_eq!(audit_count(&app, "capabilities.%").await, audits);
}

async fn console_section_edits_with_csrf(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (status, _, page) = root.get("/admin/pricing").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"caps-table\"") && page.contains("<code>gpt-4o</code>"), "{page}");
    let title = &page[page.find("<title>").unwrap() + "<title>".len()..page.find("</title>").unwrap()];
    assert!(title.starts_with("Pricing · Admin") && !title.contains('<'), "{title}");
    assert_eq!(page.matches("data-testid=\"caps-table\"").count(), 1, "the section is on the page once");
    let (_, _, page) = root.get("/admin/pricing?q=claude").await;
    assert!(page.contains("<code>claude-sonnet-4-5</code>") && !page.contains("<code>gpt-4o</code>"), "searched");
    let (_, _, page) = root.get("/admin/pricing?caps_edit=gpt-4o").await;
    assert!(page.contains("data-testid=\"caps-edit-row\"") && page.contains("form=\"caps-gpt-4o\""), "no-JS edit");
    assert!(page.contains("value=\"16384\""), "the edit row holds the shipped default");

    // Without the CSRF token nothing is saved.
    let form = [("model", "gpt-4o"), ("max_output_tokens", "2048"), ("context_window", "64000"), ("tools", "no")];
    let (status, _, _) = root.post("/admin/pricing/capabilities", &form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(stored_rows(&app).await, 0);

    let csrf = root.csrf("/admin/pricing").await;
    let mut pairs = form.to_vec();
    pairs.push(("csrf", &csrf));
    let (status, location, _) = root.post("/admin/pricing/capabilities", &pairs).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/pricing?done=caps-saved#capabilities"));
    let live = app.state.routing().current().capabilities("gpt-4o");
    assert_eq!(
        (live.max_output_tokens, live.context_window, live.tools, live.vision),
        (Some(2048), Some(64_000), Some(false), None)
    );
    let (_, _, page) = root.get("/admin/pricing?done=caps-saved").await;
    assert!(page.contains("Capabilities saved.") && page.contains("data-testid=\"reset-caps\""), "{page}");

    // A refused save (no JS): 400, the reason, the form as sent, nothing changed.
    let bad =
        [("model", "gpt-4o"), ("max_output_tokens", "99999"), ("context_window", "1000"), ("csrf", csrf.as_str())];
    let (status, _, page) = root.post("/admin/pricing/capabilities", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("more than the context window") && page.contains("value=\"99999\""), "{page}");
    let (status, _, page) =
        root.post("/admin/pricing/capabilities", &[("model", "gpt-4o"), ("vision", "maybe"), ("csrf", &csrf)]).await;
    assert!(status == StatusCode::BAD_REQUEST && page.contains("vision:"), "{page}");
    assert_eq!(app.state.routing().current().capabilities("gpt-4o").max_output_tokens, Some(2048));

    // htmx: the row as a form, saved in place, refused in place, reset in place.
    let client = root.client.clone();
    let hx =
        |request: reqwest::RequestBuilder| request.header("HX-Request", "true").header("X-CSRF-Token", csrf.clone());
    let fragment = root.send(hx(client.get(app.url("/admin/pricing/capabilities/row?model=gpt-4o&edit=true")))).await;
    assert_eq!(fragment.0, StatusCode::OK);
    assert!(fragment.2.trim_start().starts_with("<tr") && fragment.2.contains("caps-edit-row"), "{}", fragment.2);
    let encode =
        |pairs: &[(&str, &str)]| url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let post = |body: String, path: &str| {
        hx(client.post(app.url(path)).header("content-type", "application/x-www-form-urlencoded").body(body))
    };
    let saved = root
        .send(post(
            encode(&[("model", "gpt-4o"), ("max_output_tokens", "3000"), ("audio", "yes")]),
            "/admin/pricing/capabilities",
        ))
        .await;
    assert_eq!(saved.0, StatusCode::OK);
    assert!(saved.2.contains("data-testid=\"caps-row\"") && saved.2.contains("3000"), "{}", saved.2);
    let refused = root
        .send(post(encode(&[("model", "gpt-4o"), ("max_output_tokens", "-5")]), "/admin/pricing/capabilities"))
        .await;
    assert!(refused.2.contains("caps-edit-row") && refused.2.contains("max_output_tokens:"), "{}", refused.2);
    assert!(refused.2.contains("value=\"-5\""), "the refused value is kept: {}", refused.2);
    assert_eq!(app.state.routing().current().capabilities("gpt-4o").audio, Some(true));
    let reset = root.send(post(encode(&[("model", "gpt-4o")]), "/admin/pricing/capabilities/reset")).await;
    assert_eq!(reset.0, StatusCode::OK);
    assert!(reset.2.contains("16384") && !reset.2.contains("reset-caps"), "the default again: {}", reset.2);

    // Reset without JS, on a model set from the "any model" form.
    let (status, _, _) =
        root.post("/admin/pricing/capabilities", &[("model", " upstream-x "), ("tools", "yes"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(listed(&app, "upstream-x").await["source"], "custom", "the name is trimmed");
    let (status, location, _) =
        root.post("/admin/pricing/capabilities/reset", &[("model", "upstream-x"), ("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/pricing?done=caps-reset#capabilities"));
    assert_eq!(listed(&app, "upstream-x").await, Value::Null, "no row, no default, no price: not listed");
    assert_eq!(stored_rows(&app).await, 0);
    assert_eq!((audit_count(&app, "capabilities.set").await, audit_count(&app, "capabilities.reset").await), (3, 2));
}

async fn public_pricing_shows_capabilities(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k",
                            "models": ["gpt-4o", "house-model"] }))
        .await;
    app.set_price("gpt-4o", json!({ "input": "2.5", "output": "10" })).await;
    app.set_price("house-model", json!({ "input": "1", "output": "1" })).await;
    let row = |page: &str, model: &str| {
        let start = page.find(&format!("<code>{model}</code>")).unwrap_or_else(|| panic!("{model} listed: {page}"));
        page[start..start + page[start..].find("</tr>").unwrap()].to_string()
    };
    let page = app.get("/pricing").await.text().await.unwrap();
    let gpt = row(&page, "gpt-4o");
    assert!(gpt.contains(">Context 128,000 · Max output 16,384<"), "the shipped default: {gpt}");
    assert!(gpt.contains(">Tools<") && gpt.contains(">Vision<") && !gpt.contains(">Audio<"), "{gpt}");
    let house = row(&page, "house-model");
    assert!(!house.contains("data-testid=\"limits\"") && !house.contains("cap-label"), "nothing known: {house}");

    let body = json!({ "context_window": 32_000, "max_output_tokens": 4000, "audio": true, "tools": false });
    assert_eq!(app.admin("PUT", "/api/admin/capabilities/house-model", Some(body)).await.0, 200);
    let page = app.get("/pricing").await.text().await.unwrap();
    let house = row(&page, "house-model");
    assert!(house.contains(">Context 32,000 · Max output 4,000<") && house.contains(">Audio<"), "{house}");
    assert!(!house.contains(">Tools<"), "a model known not to take tools gets no label: {house}");
    let zh = app.client.get(app.url("/pricing")).header("Accept-Language", "zh-CN").send().await.unwrap();
    let zh = zh.text().await.unwrap();
    assert!(
        row(&zh, "house-model").contains(">音频<")
            && row(&zh, "house-model").contains(">上下文 32,000 · 最大输出 4,000<"),
        "both languages"
    );
}
